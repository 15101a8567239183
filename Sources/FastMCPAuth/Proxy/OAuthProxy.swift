import Synchronization

/// The OAuth proxy: to MCP clients a complete authorization server (RFC 8414 metadata, RFC 7591
/// registration, authorize with consent, token, RFC 7009 revocation); to the identity provider
/// one confidential client. It issues its own HS256 JWTs and keeps the upstream tokens encrypted
/// in the store, found by the `jti` of ours. All state lives in the store, so processes sharing
/// one Redis serve one flow interchangeably.
///
/// This file is the router; each multi-step rule is a state machine of its own (ConsentMachine,
/// CodeRedemption, RefreshRotation, FixedWindowRateLimit) driven by the extensions in the
/// OAuthProxy+*.swift files over one atomic store operation each. Thread-safe.
public final class OAuthProxy: Sendable {
    static let maxFormBytes = 64 * 1024
    /// Warned about a short jwt_signing_key already (the warning is once per process).
    static let warnedShortKey = Atomic(false)
    static let maxParameterBytes = 4096
    static let maxRedirectURIs = 10

    public let config: OAuthProxyConfig
    let store: Store
    let http: HTTPClient
    let clock: @Sendable () -> Double
    let log: @Sendable (String) -> Void
    let signingJWK: JSONWebKey
    let verifier: JWTVerifier
    let upstreamJWT: JWTVerifier?
    let upstreamUserinfo: RemoteTokenVerifier?
    let metadataDocuments: ClientMetadataDocuments
    let redirectPatterns: [RedirectPattern]?
    let scopes: ScopePolicy
    let registrationLimit: FixedWindowRateLimit
    let authorizeLimit: FixedWindowRateLimit
    let consentLimit: FixedWindowRateLimit
    /// Pending sign-ins per client, per transaction lifetime.
    let pendingPerClient: FixedWindowRateLimit
    /// Global caps on unauthenticated state, per window.
    let transactionCapacity: FixedWindowRateLimit
    let consentCapacity: FixedWindowRateLimit
    let registrationCapacity: FixedWindowRateLimit
    let trustedProxies: [AddressRange]
    /// "scheme://host[:port]" of the base URL: the only Origin a consent POST may come from.
    let origin: String
    private let routes: [String: Route]

    public init(
        config: OAuthProxyConfig,
        store: Store? = nil,
        http: HTTPClient = CurlHTTPClient(),
        clock: @escaping @Sendable () -> Double = JWTVerifier.systemClock,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) throws {
        self.config = config
        var options = Store.Options()
        options.encryptionKeys = config.storeEncryptionKeys
        self.store = try store ?? Store(url: config.storeURL, options: options, clock: clock)
        self.http = http
        self.clock = clock
        self.log = log
        guard let origin = AuthFacade.origin(of: config.baseURL) else {
            throw AuthError(.invalidConfig, "base_url: must be an absolute http(s) URL")
        }
        self.origin = origin
        if config.shortSigningKey,
            Self.warnedShortKey.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged
        {
            log("oauth proxy: warning: jwt_signing_key has fewer than 32 characters; use a longer random secret")
        }
        signingJWK = try JSONWebKey(sharedSecret: config.signingKey)
        routes = Self.routeTable(config)
        metadataDocuments = ClientMetadataDocuments(
            http: http,
            allowLoopback: config.clientMetadataTestAllowLoopback,
            clock: clock
        )
        redirectPatterns = try config.allowedClientRedirectURIs.map { try $0.map(RedirectPattern.init) }
        scopes = ScopePolicy(
            validScopes: config.validScopes,
            requiredScopes: config.requiredScopes,
            upstreamNames: config.upstreamScopeNames
        )
        registrationLimit = FixedWindowRateLimit(name: "register", limit: config.registrationsPerHour, window: 3600)
        authorizeLimit = FixedWindowRateLimit(name: "authorize", limit: config.authorizationsPerMinute, window: 60)
        consentLimit = FixedWindowRateLimit(name: "consent", limit: config.consentRequestsPerMinute, window: 60)
        pendingPerClient = FixedWindowRateLimit(
            name: "pending",
            limit: config.pendingTransactionsPerClient,
            window: config.transactionLifetime
        )
        transactionCapacity = FixedWindowRateLimit(
            name: "transactions",
            limit: config.maxPendingTransactions,
            window: config.transactionLifetime
        )
        consentCapacity = FixedWindowRateLimit(
            name: "consent-renders",
            limit: config.maxConsentRenders,
            window: config.transactionLifetime
        )
        registrationCapacity = FixedWindowRateLimit(
            name: "registrations",
            limit: config.maxRegistrationsPerHour,
            window: 3600
        )
        trustedProxies = config.trustedProxies.compactMap(AddressRange.init)
        let key = JSONValue.object([
            "keys": .array([.object(["kty": "oct", "k": .string(Base64URL.encode(config.signingKey))])])
        ])
        var verifierConfig = JWTVerifierConfig(keySource: .jwks(key), algorithms: [.HS256])
        verifierConfig.policy.issuers = [config.issuer]
        verifierConfig.policy.audiences = [config.resourceURL]
        verifier = try JWTVerifier(config: verifierConfig, http: http, clock: clock)
        switch config.upstreamValidation {
        case .exchangeOnly:
            upstreamJWT = nil
            upstreamUserinfo = nil
        case .userinfo(let url):
            upstreamJWT = nil
            upstreamUserinfo = try RemoteTokenVerifier(
                method: .userinfo(url: url),
                timeout: config.timeout,
                cacheLifetime: 60,
                // A provider's userinfo names our upstream client (or us) when it names anyone.
                audiences: [config.upstreamClientID, config.resourceURL],
                http: http,
                clock: clock
            )
        case .jwt(let jwtConfig):
            upstreamJWT = try JWTVerifier(config: jwtConfig, http: http, clock: clock)
            upstreamUserinfo = nil
        }
    }

    // MARK: - Routes

    enum Route {
        case metadata
        case register
        case authorize
        case consent
        case callback
        case token
        case revoke
    }

    /// Every path `handle` answers, and what each is (computed once: `handle` runs per request).
    static func routeTable(_ config: OAuthProxyConfig) -> [String: Route] {
        let root = "/.well-known/oauth-authorization-server"
        var table: [String: Route] = [root: .metadata]
        table[root + config.basePath] = .metadata
        for (route, name) in [
            ("/register", Route.register), ("/authorize", .authorize), ("/consent", .consent),
            (config.redirectPath, .callback), ("/token", .token), ("/revoke", .revoke),
        ] {
            table[config.path(route)] = name
        }
        return table
    }

    public var routePaths: [String] { routes.keys.sorted() }

    public func handle(_ incoming: AuthRequest) -> AuthResponse? {
        guard let route = routes[incoming.path] else { return nil }
        var request = incoming
        request.clientAddress = ClientAddress.effective(
            peer: incoming.clientAddress,
            forwardedFor: incoming.header("X-Forwarded-For"),
            trusted: trustedProxies
        )
        switch route {
        case .metadata: return get(request) { metadata() }
        case .register: return post(request) { try register(request) }
        case .authorize: return get(request) { try authorize(request) }
        case .consent:
            if request.method == "POST" { return guarded { try consentSubmitted(request) } }
            return get(request) { try consentPage(request) }
        case .callback: return get(request) { try callback(request) }
        case .token: return post(request) { try token(request) }
        case .revoke: return post(request) { try revoke(request) }
        }
    }

    private func get(_ request: AuthRequest, _ body: () throws -> AuthResponse) -> AuthResponse {
        guard request.method == "GET" || request.method == "HEAD" else {
            return Responses.methodNotAllowed("GET, HEAD")
        }
        return guarded(body)
    }

    private func post(_ request: AuthRequest, _ body: () throws -> AuthResponse) -> AuthResponse {
        if request.method == "OPTIONS" { return Responses.preflight() }
        guard request.method == "POST" else { return Responses.methodNotAllowed("POST") }
        guard request.body.count <= Self.maxFormBytes else {
            return Responses.oauthError(413, "invalid_request", "The request body is too large.")
        }
        return guarded(body)
    }

    /// Refusals become their OAuth answer; a store or upstream that cannot be reached is a 503
    /// the client may retry, never a crash or a half-done flow.
    private func guarded(_ body: () throws -> AuthResponse) -> AuthResponse {
        do {
            return try body()
        } catch let refusal as OAuthError {
            return refusal.response
        } catch let error as AuthError where error.code == .overCapacity {
            log("oauth proxy: over capacity: \(error.message)")
            return OAuthError.overCapacity(retryAfter: 60).response
        } catch let error as AuthError {
            log("oauth proxy: \(error.code.name): \(error.message)")
            return OAuthError.temporarilyUnavailable.response
        } catch {
            return Responses.oauthError(500, "server_error", "The authorization server failed.")
        }
    }

    // MARK: - Metadata (RFC 8414)

    public func metadataDocument() -> JSONValue {
        var document: [String: JSONValue] = [
            "issuer": .string(config.issuer),
            "authorization_endpoint": .string(config.url("/authorize")),
            "token_endpoint": .string(config.url("/token")),
            "registration_endpoint": .string(config.url("/register")),
            "revocation_endpoint": .string(config.url("/revoke")),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "authorization_response_iss_parameter_supported": true,
            "client_id_metadata_document_supported": .bool(config.clientMetadataDocuments),
        ]
        if !scopes.offered.isEmpty { document["scopes_supported"] = .array(scopes.offered.map { .string($0) }) }
        return .object(document)
    }

    private func metadata() -> AuthResponse {
        Responses.json(
            200,
            metadataDocument(),
            headers: ["Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=3600"]
        )
    }

    /// RFC 8707 resource comparison: the same URL, a trailing slash aside.
    static func sameResource(_ a: String, _ b: String) -> Bool {
        a.trimmingSuffix("/") == b.trimmingSuffix("/")
    }

    /// The client's redirect URI with the response parameters, `state` and our `iss` (RFC 9207).
    func clientRedirect(_ redirectURI: String, _ pairs: [(String, String)], state: String?) -> String {
        var all = pairs
        if let state, !state.isEmpty { all.append(("state", state)) }
        all.append(("iss", config.issuer))
        return Form.url(redirectURI, adding: all)
    }

    func random(_ count: Int) throws -> String { Base64URL.encode(try OpenSSL.randomBytes(count)) }

    // MARK: - Bearer tokens at the MCP endpoint

    /// Our access token → the access token the MCP server sees: the upstream token (for calling
    /// the provider's APIs), our client id and scopes, the upstream identity's claims. A token
    /// whose grant is gone is `token_revoked`; an upstream or store that cannot be reached is
    /// `upstream_unavailable` / `store_unavailable`, which the facade answers with a 503.
    public func verify(_ token: String, requiredScopes: [String]) throws -> AccessToken {
        let claims = try verifier.verify(token).claims
        if let use = claims["token_use"]?.stringValue, use != "access" {
            throw AuthError(.invalidClaim, "a refresh token is not an access token")
        }
        guard let jti = claims["jti"]?.stringValue, let mapping = try jtiMapping(jti),
            var tokenSet = try upstreamTokenSet(mapping.upstreamTokenID)
        else {
            throw AuthError(.tokenRevoked, "the token has been revoked")
        }
        tokenSet = try refreshUpstreamIfDue(tokenSet, mustBeUsable: true)
        var identity: [String: JSONValue] = [:]
        if let upstreamJWT {
            identity = try upstreamJWT.verify(tokenSet.accessToken).claims
        } else if let upstreamUserinfo {
            identity = try upstreamUserinfo.verify(tokenSet.accessToken).claims
        } else if clock() >= tokenSet.expiresAt {
            throw AuthError(.expired, "the upstream token has expired")
        }
        // The upstream identity, with our token's own registered claims and grant on top.
        var merged = identity
        for name in ["iss", "aud", "exp", "iat", "jti", "client_id", "scope", "scp", "azp"] {
            merged[name] = claims[name]
        }
        let access = AccessToken(token: tokenSet.accessToken, claims: merged)
        let missing = requiredScopes.filter { !access.scopes.contains($0) }
        if !missing.isEmpty { throw AuthError(.insufficientScope, "missing scope") }
        return access
    }
}

/// Query or form parameters; the first value of each name, and whether any name repeats.
package struct Parameters {
    private var values: [String: String] = [:]
    package private(set) var hasDuplicates = false

    package init(_ pairs: [(String, String)]) {
        for (name, value) in pairs {
            if values[name] != nil { hasDuplicates = true } else { values[name] = value }
        }
    }

    package subscript(_ name: String) -> String? { values[name] }
}
