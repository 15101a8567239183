/// The OAuth proxy's configuration: FastMCP's OAuthProxy / OIDCProxy / WorkOSProvider arguments,
/// with FastMCP's lifetimes and our limits as defaults (the README's proxy section lists them).
public struct OAuthProxyConfig: Sendable {
    public enum ClientAuthMethod: String, Sendable {
        case clientSecretBasic = "client_secret_basic"
        case clientSecretPost = "client_secret_post"
        case none
    }

    /// How the upstream access token is checked when a client presents one of our tokens.
    public enum UpstreamValidation: Sendable {
        /// The token came straight from the upstream token endpoint; trust it until it expires.
        case exchangeOnly
        /// GET the userinfo endpoint with the upstream token (OIDC, WorkOS); results cached.
        case userinfo(url: String)
        /// Verify the upstream token as a JWT. (Boxed: the enum stays two words, its bytes
        /// initialised in every case, which valgrind checks in the C tests.)
        indirect case jwt(JWTVerifierConfig)
    }

    public var baseURL: String
    /// The authorization server's issuer: byte for byte the same in metadata, `iss` redirect
    /// parameters and token `iss`. Default: base URL with a trailing slash, as FastMCP.
    public var issuer: String
    public var resourceURL: String
    public var redirectPath = "/auth/callback"

    public var upstreamAuthorizationEndpoint: String
    public var upstreamTokenEndpoint: String
    public var upstreamRevocationEndpoint: String?
    public var upstreamClientID: String
    public var upstreamClientSecret: String?
    public var upstreamClientAuth: ClientAuthMethod = .clientSecretBasic
    public var extraAuthorizeParams: [(String, String)] = []
    public var extraTokenParams: [(String, String)] = []
    public var upstreamValidation: UpstreamValidation = .exchangeOnly

    /// Scopes clients may ask for (nil: the required scopes); scopes every token must carry.
    public var validScopes: [String]?
    public var requiredScopes: [String] = []
    /// Upstream scope name → ours, for reading what the upstream says it granted (identity when
    /// a name is not in it).
    public var upstreamScopeNames: [String: String] = [:]
    /// Patterns (`*` wildcard) a client's redirect URIs must match; nil: any safe URI.
    public var allowedClientRedirectURIs: [String]?
    public var requireConsent = true
    /// Accept client_id URLs naming Client ID Metadata Documents.
    public var clientMetadataDocuments = true
    /// Tests only: fetch metadata documents over http from loopback.
    public var clientMetadataTestAllowLoopback = false
    /// The configuration is a test's (loopback base URL): the test-only settings are allowed.
    public var testing = false
    /// `jwt_signing_key` has 16 to 31 characters: allowed, with a warning (once per process).
    public var shortSigningKey = false

    public var signingKey: [UInt8]
    public var storeURL = "memory://"
    public var storeEncryptionKeys: [String] = []

    public var accessTokenLifetime: Double = 3600
    public var refreshTokenLifetime: Double = 30 * 86400
    public var refreshGracePeriod: Double = 30
    public var transactionLifetime: Double = 15 * 60
    public var codeLifetime: Double = 5 * 60
    public var clientLifetime: Double = 90 * 86400
    public var registrationsPerHour = 20
    /// Per client address (an IPv4 address, an IPv6 /64) per minute.
    public var authorizationsPerMinute = 60
    public var consentRequestsPerMinute = 60
    /// Pending sign-ins one client may start per transaction lifetime.
    public var pendingTransactionsPerClient = 100
    /// Unauthenticated state the whole server accepts, per collection and window: transactions
    /// and consent renders per transaction lifetime, registrations per hour. Past a cap: 503
    /// over_capacity (nothing stored is evicted).
    public var maxPendingTransactions = 100_000
    public var maxConsentRenders = 100_000
    public var maxRegistrationsPerHour = 10_000
    /// Peers whose X-Forwarded-For is believed (CIDRs); any other peer is the client itself.
    public var trustedProxies: [String] = []
    public var timeout: Double = 10
    /// Seconds before the upstream token's expiry at which it is refreshed.
    public var upstreamRefreshMargin: Double = 60

    public init(
        baseURL: String,
        resourceURL: String,
        upstreamAuthorizationEndpoint: String,
        upstreamTokenEndpoint: String,
        upstreamClientID: String,
        signingKey: [UInt8]
    ) {
        self.baseURL = baseURL
        self.issuer = baseURL.trimmingSuffix("/") + "/"
        self.resourceURL = resourceURL
        self.upstreamAuthorizationEndpoint = upstreamAuthorizationEndpoint
        self.upstreamTokenEndpoint = upstreamTokenEndpoint
        self.upstreamClientID = upstreamClientID
        self.signingKey = signingKey
    }

    /// The route under the base URL's path (a server mounted under /prefix serves /prefix/token).
    func path(_ route: String) -> String {
        basePath + route
    }

    var basePath: String {
        guard let origin = AuthFacade.origin(of: baseURL) else { return "" }
        return String(baseURL.dropFirst(origin.count)).trimmingSuffix("/")
    }

    func url(_ route: String) -> String { baseURL.trimmingSuffix("/") + route }

    static let proxyKeys: Set<String> = [
        "upstream_authorization_endpoint", "upstream_token_endpoint", "upstream_revocation_endpoint",
        "upstream_client_id",
        "upstream_client_secret", "token_endpoint_auth_method", "extra_authorize_params", "extra_token_params",
        "valid_scopes",
        "allowed_client_redirect_uris", "jwt_signing_key", "storage", "storage_encryption_keys", "issuer_url",
        "redirect_path",
        "token_verifier", "userinfo_endpoint", "access_token_lifetime", "refresh_token_lifetime",
        "refresh_grace_period",
        "transaction_lifetime", "code_lifetime", "client_lifetime", "registration_rate_limit",
        "require_authorization_consent",
        "timeout_seconds", "pbkdf2_iterations", "client_id_metadata_documents", "cimd_test_allow_loopback", "testing",
        "upstream_scope_names", "authorize_rate_limit", "consent_rate_limit", "max_pending_transactions_per_client",
        "max_pending_transactions", "max_consent_renders", "max_registrations_per_hour", "trusted_proxies",
    ]
    /// Accepted only beside `"testing": true` with a loopback base URL, never from FastMCP's
    /// environment variables: each weakens a defence that production must keep.
    static let testOnlyKeys: Set<String> = ["cimd_test_allow_loopback", "pbkdf2_iterations"]
    static let oidcKeys: Set<String> = proxyKeys.subtracting([
        "upstream_authorization_endpoint", "upstream_token_endpoint",
        "upstream_client_id", "upstream_client_secret",
    ])
    .union(["config_url", "client_id", "client_secret"])
    static let workosKeys: Set<String> = oidcKeys.subtracting(["config_url"]).union(["authkit_domain"])

    /// From the facade's JSON configuration (keys as the Python keyword names).
    static func parse(
        provider: AuthFacade.Provider,
        reader: ConfigReader,
        values: [String: JSONValue],
        baseURL: String,
        resourceURL: String,
        requiredScopes: [String],
        http: HTTPClient
    ) throws -> OAuthProxyConfig {
        let timeout = try reader.timeout("timeout_seconds") ?? 10
        var authorize: String
        var token: String
        var clientID: String
        var secret: String?
        var revocation = try reader.string("upstream_revocation_endpoint")
        var validation = UpstreamValidation.exchangeOnly
        switch provider {
        case .oauthProxy:
            guard let a = try reader.string("upstream_authorization_endpoint"),
                let t = try reader.string("upstream_token_endpoint"),
                let c = try reader.string("upstream_client_id")
            else {
                throw AuthError(
                    .invalidConfig,
                    "upstream_authorization_endpoint, upstream_token_endpoint and upstream_client_id: are required"
                )
            }
            (authorize, token, clientID, secret) = (a, t, c, try reader.string("upstream_client_secret"))
        case .oidcProxy:
            guard let configURL = try reader.string("config_url"), let c = try reader.string("client_id") else {
                throw AuthError(.invalidConfig, "config_url and client_id: are required")
            }
            let discovery = try OAuthProxyConfig.discover(configURL, http: http, timeout: timeout)
            guard let a = discovery["authorization_endpoint"]?.stringValue,
                let t = discovery["token_endpoint"]?.stringValue
            else {
                throw AuthError(
                    .invalidConfig,
                    "config_url: the discovery document names no authorization or token endpoint"
                )
            }
            (authorize, token, clientID, secret) = (a, t, c, try reader.string("client_secret"))
            revocation = revocation ?? discovery["revocation_endpoint"]?.stringValue
            if let userinfo = discovery["userinfo_endpoint"]?.stringValue { validation = .userinfo(url: userinfo) }
        case .workos:
            guard let text = try reader.string("authkit_domain"), let domain = AuthFacade.origin(of: text),
                let c = try reader.string("client_id")
            else {
                throw AuthError(
                    .invalidConfig,
                    "authkit_domain (a URL such as https://your-app.authkit.app) and client_id: are required"
                )
            }
            (authorize, token, clientID, secret) = (
                domain + "/oauth2/authorize", domain + "/oauth2/token", c, try reader.string("client_secret")
            )
            validation = .userinfo(url: domain + "/oauth2/userinfo")
        default:
            throw AuthError(.internalError, "not a proxy provider")
        }
        for (name, url) in [("authorization endpoint", authorize), ("token endpoint", token)]
            + (revocation.map { [("revocation endpoint", $0)] } ?? [])
        {
            guard let scheme = urlScheme(url), scheme == "https" || (scheme == "http" && isLoopbackURL(url)) else {
                throw AuthError(.invalidConfig, "the upstream \(name) must be https (plain http only on loopback)")
            }
        }
        if let userinfo = try reader.string("userinfo_endpoint") { validation = .userinfo(url: userinfo) }
        if case .object(let verifier)? = values["token_verifier"] {
            validation = .jwt(try JWTVerifierConfig(json: .object(verifier)))
        } else if values["token_verifier"] != nil {
            throw AuthError(.invalidConfig, "token_verifier: must be a JWTVerifier configuration object")
        }
        let testing = try reader.bool("testing") ?? false
        if testing, !isLoopbackURL(baseURL) {
            throw AuthError(.invalidConfig, "testing: is allowed only with a loopback base_url")
        }
        if !testing, let key = testOnlyKeys.sorted().first(where: { values[$0] != nil }) {
            throw AuthError(
                .invalidConfig,
                "\(key): is a test-only setting; it needs \"testing\": true and a loopback base_url"
            )
        }
        guard urlScheme(baseURL) == "https" || isLoopbackURL(baseURL) else {
            throw AuthError(
                .invalidConfig,
                "base_url: the proxy must be served over https (plain http only on loopback)"
            )
        }
        let jwtSigningKey = try reader.string("jwt_signing_key")
        if let jwtSigningKey, jwtSigningKey.count < ProxyKeys.minimumSigningKeyLength {
            throw AuthError(
                .weakKey,
                "jwt_signing_key: at least \(ProxyKeys.minimumSigningKeyLength) characters (32 or more recommended)"
            )
        }
        let iterations =
            try reader.count("pbkdf2_iterations", minimum: 1, maximum: 10_000_000) ?? ProxyKeys.pbkdf2Iterations
        let signingKey = try ProxyKeys.signingKey(
            jwtSigningKey: jwtSigningKey,
            upstreamClientSecret: secret,
            iterations: iterations
        )
        var config = OAuthProxyConfig(
            baseURL: baseURL,
            resourceURL: resourceURL,
            upstreamAuthorizationEndpoint: authorize,
            upstreamTokenEndpoint: token,
            upstreamClientID: clientID,
            signingKey: signingKey
        )
        config.upstreamClientSecret = secret
        config.upstreamRevocationEndpoint = revocation
        config.upstreamValidation = validation
        config.timeout = timeout
        config.requiredScopes = requiredScopes
        if let issuer = try reader.string("issuer_url") {
            try HeaderValues.checkConfig(issuer, key: "issuer_url")
            config.issuer = issuer
        }
        if let path = try reader.string("redirect_path") {
            guard path.hasPrefix("/") else { throw AuthError(.invalidConfig, "redirect_path: must start with /") }
            try HeaderValues.checkConfig(path, key: "redirect_path")
            config.redirectPath = path
        }
        if let method = try reader.string("token_endpoint_auth_method") {
            guard let parsed = ClientAuthMethod(rawValue: method) else {
                throw AuthError(
                    .invalidConfig,
                    "token_endpoint_auth_method: client_secret_basic, client_secret_post or none"
                )
            }
            config.upstreamClientAuth = parsed
        }
        if config.upstreamClientAuth != .none, (secret ?? "").isEmpty {
            throw AuthError(
                .invalidConfig,
                "upstream client secret: is required unless token_endpoint_auth_method is none"
            )
        }
        config.extraAuthorizeParams = try stringPairs(values["extra_authorize_params"], "extra_authorize_params")
        config.extraTokenParams = try stringPairs(values["extra_token_params"], "extra_token_params")
        config.validScopes = try reader.stringList("valid_scopes")
        try ScopeNames.checkConfig(config.validScopes ?? [], key: "valid_scopes")
        config.upstreamScopeNames = Dictionary(
            try stringPairs(values["upstream_scope_names"], "upstream_scope_names"),
            uniquingKeysWith: { first, _ in first }
        )
        config.allowedClientRedirectURIs = try reader.stringList("allowed_client_redirect_uris")
        config.requireConsent = try reader.bool("require_authorization_consent") ?? true
        config.clientMetadataDocuments = try reader.bool("client_id_metadata_documents") ?? true
        config.clientMetadataTestAllowLoopback = try reader.bool("cimd_test_allow_loopback") ?? false
        config.testing = testing
        config.shortSigningKey = (jwtSigningKey?.count ?? 32) < 32
        config.storeURL = try reader.string("storage") ?? "memory://"
        config.storeEncryptionKeys =
            try reader.stringList("storage_encryption_keys") ?? [try ProxyKeys.storageKey(signingKey: signingKey)]
        for (key, keyPath) in [
            ("access_token_lifetime", \OAuthProxyConfig.accessTokenLifetime),
            ("refresh_token_lifetime", \.refreshTokenLifetime),
            ("refresh_grace_period", \.refreshGracePeriod), ("transaction_lifetime", \.transactionLifetime),
            ("code_lifetime", \.codeLifetime), ("client_lifetime", \.clientLifetime),
        ] {
            if let value = try reader.seconds(key) {
                guard value > 0 || key == "refresh_grace_period" else {
                    throw AuthError(.invalidConfig, "\(key): must be positive")
                }
                config[keyPath: keyPath] = value
            }
        }
        config.registrationsPerHour =
            try reader.count("registration_rate_limit", minimum: 1) ?? config.registrationsPerHour
        config.authorizationsPerMinute =
            try reader.count("authorize_rate_limit", minimum: 1) ?? config.authorizationsPerMinute
        config.consentRequestsPerMinute =
            try reader.count("consent_rate_limit", minimum: 1) ?? config.consentRequestsPerMinute
        config.pendingTransactionsPerClient =
            try reader.count("max_pending_transactions_per_client", minimum: 1) ?? config.pendingTransactionsPerClient
        config.maxPendingTransactions =
            try reader.count("max_pending_transactions", minimum: 1) ?? config.maxPendingTransactions
        config.maxConsentRenders = try reader.count("max_consent_renders", minimum: 1) ?? config.maxConsentRenders
        config.maxRegistrationsPerHour =
            try reader.count("max_registrations_per_hour", minimum: 1) ?? config.maxRegistrationsPerHour
        config.trustedProxies = try reader.stringList("trusted_proxies") ?? []
        for cidr in config.trustedProxies where AddressRange(cidr) == nil {
            throw AuthError(
                .invalidConfig,
                "trusted_proxies: \"\(Responses.printable(String(cidr.prefix(60))))\" is not an address or CIDR"
            )
        }
        return config
    }

    static func stringPairs(_ value: JSONValue?, _ key: String) throws -> [(String, String)] {
        guard let value, value != .null else { return [] }
        guard case .object(let object) = value else {
            throw AuthError(.invalidConfig, "\(key): must be an object of strings")
        }
        return try object.keys.sorted().map { name in
            guard let text = object[name]?.stringValue else {
                throw AuthError(.invalidConfig, "\(key): must be an object of strings")
            }
            return (name, text)
        }
    }

    /// The provider's OpenID configuration document.
    static func discover(_ url: String, http: HTTPClient, timeout: Double) throws -> [String: JSONValue] {
        guard let scheme = urlScheme(url), scheme == "https" || (scheme == "http" && isLoopbackURL(url)) else {
            throw AuthError(.invalidConfig, "config_url: must be https (plain http only on loopback)")
        }
        guard
            let response = try? http.send(
                HTTPRequest(
                    url: url,
                    headers: [("Accept", "application/json")],
                    timeout: timeout,
                    maxResponseBytes: 256 * 1024
                )
            ),
            response.status == 200, let document = (try? JSONValue.parse(response.body))?.objectValue
        else {
            throw AuthError(.invalidConfig, "config_url: the OpenID configuration could not be fetched")
        }
        return document
    }
}
