/// The proxy's stored records as typed values. Each reads and writes the JSON of FastMCP's model
/// of the same name (the same field names, timestamps as epoch numbers), so a FastMCP process and
/// ours read each other's state; fields a record does not model are kept in `extra` and written
/// back unchanged. Reading a stored object that lacks a required field yields nil: the caller
/// treats it as absent (and logs), never as a crash.
enum ProxyCollection {
    // FastMCP's collections, with FastMCP's keys.
    static let clients = "mcp-oauth-proxy-clients"
    static let transactions = "mcp-oauth-transactions"
    /// Keyed by the SHA-256 hex of the CSRF token.
    static let csrf = "mcp-consent-csrf-tokens"
    static let codes = "mcp-authorization-codes"
    static let upstreamTokens = "mcp-upstream-tokens"
    static let jtiMappings = "mcp-jti-mappings"
    /// Keyed by the SHA-256 hex of the refresh JWT.
    static let refreshTokens = "mcp-refresh-tokens"
    // Ours, each keyed by the SHA-256 hex of the secret it is about.
    static let codeRedemptions = "fastmcpauth-code-redemptions"
    static let refreshRotations = "fastmcpauth-refresh-rotations"
    /// The sealed successor response of a rotation, kept for the grace window only.
    static let refreshSuccessors = "fastmcpauth-refresh-successors"
    static let rateLimits = "fastmcpauth-rate-limits"
}

/// Typed access to a JSON object's fields, for the records' decoders.
struct Fields {
    var object: [String: JSONValue]

    func string(_ name: String) -> String? { object[name]?.stringValue }
    func number(_ name: String) -> Double? {
        guard let value = object[name]?.numberValue, value.isFinite else { return nil }
        return value
    }
    func strings(_ name: String) -> [String]? {
        guard case .array(let items)? = object[name] else { return nil }
        var out = [String]()
        for item in items {
            guard let text = item.stringValue else { return nil }
            out.append(text)
        }
        return out
    }
    func dictionary(_ name: String) -> [String: JSONValue]? { object[name]?.objectValue }

    /// The fields not in `modelled`.
    func extra(_ modelled: Set<String>) -> [String: JSONValue] { object.filter { !modelled.contains($0.key) } }
}

extension Dictionary where Key == String, Value == JSONValue {
    /// Sets `name` when the value is non-nil, removes it otherwise.
    mutating func set(_ name: String, _ value: JSONValue?) { self[name] = value }
}

private func optionalString(_ text: String?) -> JSONValue? { text.map { .string($0) } }
private func optionalNumber(_ number: Double?) -> JSONValue? { number.map { .double($0) } }
private func stringArray(_ items: [String]) -> JSONValue { .array(items.map { .string($0) }) }

/// A registered client (FastMCP's ProxyDCRClient / OAuthClientInformationFull).
struct ClientRecord: Equatable {
    var clientID: String
    var redirectURIs: [String]
    var applicationType: String
    var clientName: String?
    /// Space-separated, as registered; nil: the offered set.
    var scope: String?
    var issuedAt: Double?
    /// Set when the client was vouched for by its metadata document (CIMD).
    var metadataFetchedAt: Double?
    var extra: [String: JSONValue] = [:]

    static let modelled: Set<String> = [
        "client_id", "redirect_uris", "application_type", "client_name", "scope", "client_id_issued_at",
        "cimd_fetched_at",
    ]

    init(
        clientID: String,
        redirectURIs: [String],
        applicationType: String,
        clientName: String?,
        scope: String?,
        issuedAt: Double?,
        metadataFetchedAt: Double? = nil
    ) {
        self.clientID = clientID
        self.redirectURIs = redirectURIs
        self.applicationType = applicationType
        self.clientName = clientName
        self.scope = scope
        self.issuedAt = issuedAt
        self.metadataFetchedAt = metadataFetchedAt
        extra = [
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        ]
    }

    init?(json: [String: JSONValue]) {
        let fields = Fields(object: json)
        guard let clientID = fields.string("client_id"), let uris = fields.strings("redirect_uris") else { return nil }
        self.clientID = clientID
        redirectURIs = uris
        applicationType = fields.string("application_type") ?? "web"
        clientName = fields.string("client_name")
        scope = fields.string("scope")
        issuedAt = fields.number("client_id_issued_at")
        metadataFetchedAt = fields.number("cimd_fetched_at")
        extra = fields.extra(Self.modelled)
    }

    var json: [String: JSONValue] {
        var object = extra
        object["client_id"] = .string(clientID)
        object["redirect_uris"] = stringArray(redirectURIs)
        object["application_type"] = .string(applicationType)
        object.set("client_name", optionalString(clientName))
        object.set("scope", optionalString(scope))
        object.set("client_id_issued_at", issuedAt.map { .int(Int64(exactly: $0.rounded(.down)) ?? 0) })
        object.set("cimd_fetched_at", optionalNumber(metadataFetchedAt))
        return object
    }

    /// Whether the client's identity was vouched for by its metadata document's host.
    var isVerifiedByMetadataDocument: Bool { metadataFetchedAt != nil }
}

/// A pending authorization (FastMCP's OAuthTransaction), keyed by `txn_id`.
struct Transaction: Equatable {
    var id: String
    var clientID: String
    var clientRedirectURI: String
    var clientState: String
    var codeChallenge: String
    var scopes: [String]
    var createdAt: Double
    var resource: String?
    var proxyCodeVerifier: String
    /// Ours: the SHA-256 hex of the browser-binding cookie of the browser that approved.
    var approvedBinding: String?
    var approvedAt: Double?
    var extra: [String: JSONValue] = [:]

    static let modelled: Set<String> = [
        "txn_id", "client_id", "client_redirect_uri", "client_state", "code_challenge", "code_challenge_method",
        "scopes", "created_at", "resource", "proxy_code_verifier", "browser_binding", "approved_at",
    ]

    init(
        id: String,
        clientID: String,
        clientRedirectURI: String,
        clientState: String,
        codeChallenge: String,
        scopes: [String],
        createdAt: Double,
        resource: String?,
        proxyCodeVerifier: String
    ) {
        self.id = id
        self.clientID = clientID
        self.clientRedirectURI = clientRedirectURI
        self.clientState = clientState
        self.codeChallenge = codeChallenge
        self.scopes = scopes
        self.createdAt = createdAt
        self.resource = resource
        self.proxyCodeVerifier = proxyCodeVerifier
    }

    init?(json: [String: JSONValue]) {
        let fields = Fields(object: json)
        guard let id = fields.string("txn_id"), let clientID = fields.string("client_id"),
            let redirect = fields.string("client_redirect_uri"), let challenge = fields.string("code_challenge"),
            fields.string("code_challenge_method") == "S256", let scopes = fields.strings("scopes"),
            let createdAt = fields.number("created_at"), let verifier = fields.string("proxy_code_verifier")
        else { return nil }
        self.id = id
        self.clientID = clientID
        clientRedirectURI = redirect
        clientState = fields.string("client_state") ?? ""
        codeChallenge = challenge
        self.scopes = scopes
        self.createdAt = createdAt
        resource = fields.string("resource")
        proxyCodeVerifier = verifier
        approvedBinding = fields.string("browser_binding")
        approvedAt = fields.number("approved_at")
        extra = fields.extra(Self.modelled)
    }

    var json: [String: JSONValue] {
        var object = extra
        object["txn_id"] = .string(id)
        object["client_id"] = .string(clientID)
        object["client_redirect_uri"] = .string(clientRedirectURI)
        object["client_state"] = .string(clientState)
        object["code_challenge"] = .string(codeChallenge)
        object["code_challenge_method"] = "S256"
        object["scopes"] = stringArray(scopes)
        object["created_at"] = .double(createdAt)
        object["resource"] = optionalString(resource) ?? .null
        object["proxy_code_verifier"] = .string(proxyCodeVerifier)
        object.set("browser_binding", optionalString(approvedBinding))
        object.set("approved_at", optionalNumber(approvedAt))
        return object
    }

    /// The client state to return, nil when the client sent none.
    var returnedState: String? { clientState.isEmpty ? nil : clientState }
}

/// One rendering of the consent page (FastMCP's ConsentCSRFToken), keyed by the SHA-256 hex of
/// its CSRF token; ours also records the browser binding it was rendered for.
struct ConsentRender: Equatable {
    var transactionID: String
    var expiresAt: Double
    /// SHA-256 hex of the browser-binding cookie the page was rendered for.
    var browserBinding: String?
    var extra: [String: JSONValue] = [:]

    static let modelled: Set<String> = ["txn_id", "expires_at", "browser_binding"]

    init(transactionID: String, expiresAt: Double, browserBinding: String) {
        self.transactionID = transactionID
        self.expiresAt = expiresAt
        self.browserBinding = browserBinding
    }

    init?(json: [String: JSONValue]) {
        let fields = Fields(object: json)
        guard let id = fields.string("txn_id"), let expires = fields.number("expires_at") else { return nil }
        transactionID = id
        expiresAt = expires
        browserBinding = fields.string("browser_binding")
        extra = fields.extra(Self.modelled)
    }

    var json: [String: JSONValue] {
        var object = extra
        object["txn_id"] = .string(transactionID)
        object["expires_at"] = .double(expiresAt)
        object.set("browser_binding", optionalString(browserBinding))
        return object
    }
}

/// A one-time code for the MCP client (FastMCP's ClientCode), keyed by the code.
struct AuthorizationCode: Equatable {
    var code: String
    var clientID: String
    var redirectURI: String
    var codeChallenge: String
    var scopes: [String]
    /// The upstream token response.
    var upstreamTokens: [String: JSONValue]
    var expiresAt: Double
    var createdAt: Double
    var resource: String?
    var extra: [String: JSONValue] = [:]

    static let modelled: Set<String> = [
        "code", "client_id", "redirect_uri", "code_challenge", "code_challenge_method", "scopes", "idp_tokens",
        "expires_at", "created_at", "resource",
    ]

    init(
        code: String,
        clientID: String,
        redirectURI: String,
        codeChallenge: String,
        scopes: [String],
        upstreamTokens: [String: JSONValue],
        expiresAt: Double,
        createdAt: Double,
        resource: String?
    ) {
        self.code = code
        self.clientID = clientID
        self.redirectURI = redirectURI
        self.codeChallenge = codeChallenge
        self.scopes = scopes
        self.upstreamTokens = upstreamTokens
        self.expiresAt = expiresAt
        self.createdAt = createdAt
        self.resource = resource
    }

    init?(json: [String: JSONValue]) {
        let fields = Fields(object: json)
        guard let code = fields.string("code"), let clientID = fields.string("client_id"),
            let redirect = fields.string("redirect_uri"), let challenge = fields.string("code_challenge"),
            let scopes = fields.strings("scopes"), let tokens = fields.dictionary("idp_tokens"),
            let expires = fields.number("expires_at"), let created = fields.number("created_at")
        else { return nil }
        self.code = code
        self.clientID = clientID
        redirectURI = redirect
        codeChallenge = challenge
        self.scopes = scopes
        upstreamTokens = tokens
        expiresAt = expires
        createdAt = created
        resource = fields.string("resource")
        extra = fields.extra(Self.modelled)
    }

    var json: [String: JSONValue] {
        var object = extra
        object["code"] = .string(code)
        object["client_id"] = .string(clientID)
        object["redirect_uri"] = .string(redirectURI)
        object["code_challenge"] = .string(codeChallenge)
        object["code_challenge_method"] = "S256"
        object["scopes"] = stringArray(scopes)
        object["idp_tokens"] = .object(upstreamTokens)
        object["expires_at"] = .double(expiresAt)
        object["created_at"] = .double(createdAt)
        object["resource"] = optionalString(resource) ?? .null
        return object
    }
}

/// The upstream provider's tokens for one grant (FastMCP's UpstreamTokenSet), keyed by its id.
struct UpstreamTokenSet: Equatable {
    var id: String
    var accessToken: String
    var refreshToken: String?
    var refreshTokenExpiresAt: Double?
    var expiresAt: Double
    var tokenType: String
    /// The grant's scopes, space-separated (our names).
    var scope: String
    var clientID: String
    var createdAt: Double
    /// The rest of the token response (id_token, …), without the tokens themselves.
    var rawTokenData: [String: JSONValue]
    var extra: [String: JSONValue] = [:]

    static let modelled: Set<String> = [
        "upstream_token_id", "access_token", "refresh_token", "refresh_token_expires_at", "expires_at", "token_type",
        "scope", "client_id", "created_at", "raw_token_data",
    ]

    init(
        id: String,
        accessToken: String,
        refreshToken: String?,
        refreshTokenExpiresAt: Double?,
        expiresAt: Double,
        tokenType: String,
        scope: String,
        clientID: String,
        createdAt: Double,
        rawTokenData: [String: JSONValue]
    ) {
        self.id = id
        self.accessToken = accessToken
        self.refreshToken = refreshToken
        self.refreshTokenExpiresAt = refreshTokenExpiresAt
        self.expiresAt = expiresAt
        self.tokenType = tokenType
        self.scope = scope
        self.clientID = clientID
        self.createdAt = createdAt
        self.rawTokenData = rawTokenData
    }

    init?(json: [String: JSONValue]) {
        let fields = Fields(object: json)
        guard let id = fields.string("upstream_token_id"), let access = fields.string("access_token"),
            let expires = fields.number("expires_at"), let clientID = fields.string("client_id")
        else { return nil }
        self.id = id
        accessToken = access
        refreshToken = fields.string("refresh_token")
        refreshTokenExpiresAt = fields.number("refresh_token_expires_at")
        expiresAt = expires
        tokenType = fields.string("token_type") ?? "Bearer"
        scope = fields.string("scope") ?? ""
        self.clientID = clientID
        createdAt = fields.number("created_at") ?? 0
        rawTokenData = fields.dictionary("raw_token_data") ?? [:]
        extra = fields.extra(Self.modelled)
    }

    var json: [String: JSONValue] {
        var object = extra
        object["upstream_token_id"] = .string(id)
        object["access_token"] = .string(accessToken)
        object["refresh_token"] = optionalString(refreshToken) ?? .null
        object["refresh_token_expires_at"] = optionalNumber(refreshTokenExpiresAt) ?? .null
        object["expires_at"] = .double(expiresAt)
        object["token_type"] = .string(tokenType)
        object["scope"] = .string(scope)
        object["client_id"] = .string(clientID)
        object["created_at"] = .double(createdAt)
        object["raw_token_data"] = .object(rawTokenData)
        return object
    }

    var scopes: [String] { scope.split(separator: " ").map(String.init) }
}

/// Our token's `jti` → its grant (FastMCP's JTIMapping), keyed by the jti.
struct JTIMapping: Equatable {
    var jti: String
    var upstreamTokenID: String
    var createdAt: Double
    var extra: [String: JSONValue] = [:]

    static let modelled: Set<String> = ["jti", "upstream_token_id", "created_at"]

    init(jti: String, upstreamTokenID: String, createdAt: Double) {
        self.jti = jti
        self.upstreamTokenID = upstreamTokenID
        self.createdAt = createdAt
    }

    init?(json: [String: JSONValue]) {
        let fields = Fields(object: json)
        guard let upstream = fields.string("upstream_token_id") else { return nil }
        jti = fields.string("jti") ?? ""
        upstreamTokenID = upstream
        createdAt = fields.number("created_at") ?? 0
        extra = fields.extra(Self.modelled)
    }

    var json: [String: JSONValue] {
        var object = extra
        object["jti"] = .string(jti)
        object["upstream_token_id"] = .string(upstreamTokenID)
        object["created_at"] = .double(createdAt)
        return object
    }
}

/// A live refresh token (FastMCP's RefreshTokenMetadata), keyed by the SHA-256 hex of the JWT.
/// FastMCP's records have no `upstream_token_id`: the grant is then found through the refresh
/// token's `jti` mapping, as FastMCP finds it.
struct RefreshRecord: Equatable {
    var clientID: String
    var scopes: [String]
    var expiresAt: Double?
    var createdAt: Double
    /// Ours: the grant, and the access token issued beside this refresh token.
    var upstreamTokenID: String?
    var accessJTI: String?
    var extra: [String: JSONValue] = [:]

    static let modelled: Set<String> = [
        "client_id", "scopes", "expires_at", "created_at", "upstream_token_id", "access_jti",
    ]

    init(
        clientID: String,
        scopes: [String],
        expiresAt: Double,
        createdAt: Double,
        upstreamTokenID: String,
        accessJTI: String
    ) {
        self.clientID = clientID
        self.scopes = scopes
        self.expiresAt = expiresAt
        self.createdAt = createdAt
        self.upstreamTokenID = upstreamTokenID
        self.accessJTI = accessJTI
    }

    init?(json: [String: JSONValue]) {
        let fields = Fields(object: json)
        guard let clientID = fields.string("client_id"), let scopes = fields.strings("scopes") else { return nil }
        self.clientID = clientID
        self.scopes = scopes
        expiresAt = fields.number("expires_at")
        createdAt = fields.number("created_at") ?? 0
        upstreamTokenID = fields.string("upstream_token_id")
        accessJTI = fields.string("access_jti")
        extra = fields.extra(Self.modelled)
    }

    var json: [String: JSONValue] {
        var object = extra
        object["client_id"] = .string(clientID)
        object["scopes"] = stringArray(scopes)
        // FastMCP's model has an int here.
        object["expires_at"] = expiresAt.map { .int(Int64(exactly: $0.rounded(.down)) ?? 0) } ?? .null
        object["created_at"] = .double(createdAt)
        object.set("upstream_token_id", optionalString(upstreamTokenID))
        object.set("access_jti", optionalString(accessJTI))
        return object
    }
}
