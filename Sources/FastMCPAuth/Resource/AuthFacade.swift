import Synchronization

/// What an HTTP host hands the facade, and what the facade answers.
public struct AuthRequest: Sendable {
    public var method: String
    /// Path plus query, as on the request line.
    public var target: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// The peer's IP address as the host sees it (rate limits key on it); nil when unknown.
    public var clientAddress: String?

    public init(
        method: String,
        target: String,
        headers: [(name: String, value: String)] = [],
        body: [UInt8] = [],
        clientAddress: String? = nil
    ) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.clientAddress = clientAddress
    }

    public func header(_ name: String) -> String? {
        let lowered = name.lowercased()
        return headers.first { $0.name.lowercased() == lowered }?.value
    }

    public var path: String { String(target.prefix { $0 != "?" && $0 != "#" }) }
    /// The target's query (after "?"), if any.
    public var queryString: String? { target.firstIndex(of: "?").map { String(target[target.index(after: $0)...]) } }
}

/// An HTTP response: a route's answer or an authentication challenge.
public struct AuthResponse: Sendable, Equatable {
    public var status: Int
    /// Every header the library emits passes through here: control characters never reach the
    /// wire (configuration refuses them; this is the last line of defence).
    public var headers: [String: String] {
        didSet { if !Self.allSafe(headers) { headers = Self.sanitized(headers) } }
    }
    public var body: [UInt8]

    public init(status: Int, headers: [String: String], body: [UInt8]) {
        self.status = status
        self.headers = Self.allSafe(headers) ? headers : Self.sanitized(headers)
        self.body = body
    }

    static func allSafe(_ headers: [String: String]) -> Bool {
        headers.allSatisfy { HeaderValues.isToken($0.key) && HeaderValues.isSafe($0.value) }
    }

    static func sanitized(_ headers: [String: String]) -> [String: String] {
        var out = [String: String]()
        for (name, value) in headers where HeaderValues.isToken(name) { out[name] = HeaderValues.safe(value) }
        return out
    }

    static func json(_ status: Int, _ value: JSONValue, extraHeaders: [String: String] = [:]) -> AuthResponse {
        var headers = ["Content-Type": "application/json", "Cache-Control": "no-store"]
        headers.merge(extraHeaders) { _, new in new }
        return AuthResponse(status: status, headers: headers, body: Array(value.serialized().utf8))
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// The one auth object of an MCP server in resource-server mode: it serves the discovery routes
/// (RFC 9728 protected-resource metadata; for AuthKit, the mirrored authorization-server
/// metadata) and turns an Authorization header into an access token or the exact 401/403 the
/// MCP authorization spec requires. Immutable configuration; thread-safe.
public final class AuthFacade: Sendable {
    public enum Provider: String, CaseIterable, Sendable {
        case jwt, remote, authkit, `static`, introspection
        case workosUserinfo = "workos-userinfo"
        case oauthProxy = "oauth_proxy"
        case oidcProxy = "oidc_proxy"
        case workos
    }

    public let provider: Provider
    /// The protected resource: base_url + mcp_path (nil without a base_url: then no discovery
    /// routes are served, as for a bare JWT verifier).
    public let resourceURL: String?
    public let requiredScopes: [String]
    public let authorizationServers: [String]
    public let resourceName: String?
    private let verify: @Sendable (String, [String]) throws -> AccessToken
    /// The OAuth proxy, for the proxy providers: it serves the authorization-server routes.
    public let proxy: OAuthProxy?
    private let authKitDomain: String?
    private let http: HTTPClient
    private let clock: @Sendable () -> Double
    private let metadataCache = Locked<(document: [UInt8], expiresAt: Double)?>(nil)
    /// Seconds the mirrored AuthKit metadata is reused.
    static let metadataLifetime: Double = 300

    /// The metadata document's path: RFC 9728 inserts the resource's path after the well-known name.
    public let metadataPath: String
    public let metadataURL: String?

    public init(
        provider: Provider,
        baseURL: String?,
        mcpPath: String = "/mcp",
        requiredScopes: [String] = [],
        authorizationServers: [String] = [],
        resourceName: String? = nil,
        authKitDomain: String? = nil,
        proxy: OAuthProxy? = nil,
        verify: @escaping @Sendable (String, [String]) throws -> AccessToken,
        http: HTTPClient = CurlHTTPClient(),
        clock: @escaping @Sendable () -> Double = JWTVerifier.systemClock
    ) throws {
        guard mcpPath.hasPrefix("/") else { throw AuthError(.invalidConfig, "mcp_path: must start with /") }
        try HeaderValues.checkConfig(mcpPath, key: "mcp_path")
        guard !mcpPath.contains(" "), !mcpPath.contains("?"), !mcpPath.contains("#"), !mcpPath.contains("\"") else {
            throw AuthError(.invalidConfig, "mcp_path: a path without spaces, quotes, query or fragment")
        }
        try ScopeNames.checkConfig(requiredScopes, key: "required_scopes")
        if let baseURL {
            try HeaderValues.checkConfig(baseURL, key: "base_url")
            guard !baseURL.contains(" "), !baseURL.contains("\""), !baseURL.contains("#"), !baseURL.contains("?") else {
                throw AuthError(.invalidConfig, "base_url: an absolute URL without spaces, quotes, query or fragment")
            }
        }
        if let baseURL {
            guard let origin = AuthFacade.origin(of: baseURL) else {
                throw AuthError(.invalidConfig, "base_url: must be an absolute http(s) URL")
            }
            let basePath = String(baseURL.dropFirst(origin.count)).trimmingSuffix("/")
            self.resourceURL = origin + basePath + mcpPath
            self.metadataPath = "/.well-known/oauth-protected-resource" + basePath + mcpPath
            self.metadataURL = origin + metadataPath
        } else {
            // Without a base URL nothing can name the resource, so no metadata is advertised.
            guard authorizationServers.isEmpty else {
                throw AuthError(
                    .invalidConfig,
                    "base_url: is required with authorization servers (it names the protected resource)"
                )
            }
            self.resourceURL = nil
            self.metadataPath = "/.well-known/oauth-protected-resource" + mcpPath
            self.metadataURL = nil
        }
        self.provider = provider
        self.requiredScopes = requiredScopes
        self.authorizationServers = authorizationServers
        self.resourceName = resourceName
        self.authKitDomain = authKitDomain
        self.proxy = proxy
        self.verify = verify
        self.http = http
        self.clock = clock
    }

    /// "https://host:port" of an http(s) URL, or nil.
    static func origin(of url: String) -> String? {
        guard let scheme = urlScheme(url), scheme == "http" || scheme == "https", urlHost(url) != nil else {
            return nil
        }
        let afterScheme = url.index(url.startIndex, offsetBy: scheme.count + 3)
        let end = url[afterScheme...].firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? url.endIndex
        return String(url[..<end])
    }

    // MARK: - Routes

    /// The answer to a discovery route, or nil when the request is not one of ours.
    public func handle(_ request: AuthRequest) -> AuthResponse? {
        let path = request.path
        if resourceURL != nil, !authorizationServers.isEmpty,
            path == metadataPath || path == "/.well-known/oauth-protected-resource"
        {
            guard request.method == "GET" || request.method == "HEAD" || request.method == "OPTIONS" else {
                return .json(405, ["error": "method_not_allowed"], extraHeaders: ["Allow": "GET, HEAD, OPTIONS"])
            }
            return .json(200, protectedResourceMetadata(), extraHeaders: ["Access-Control-Allow-Origin": "*"])
        }
        if provider == .authkit, path == "/.well-known/oauth-authorization-server" {
            return authorizationServerMetadata()
        }
        return proxy?.handle(request)
    }

    /// The paths `handle` answers, for hosts whose router needs them up front.
    public var routePaths: [String] {
        var paths = [String]()
        if resourceURL != nil, !authorizationServers.isEmpty {
            paths.append(metadataPath)
            if metadataPath != "/.well-known/oauth-protected-resource" {
                paths.append("/.well-known/oauth-protected-resource")
            }
        }
        if provider == .authkit { paths.append("/.well-known/oauth-authorization-server") }
        if let proxy { paths += proxy.routePaths.filter { !paths.contains($0) } }
        return paths
    }

    /// Whether `handle` may answer a request for this path (no I/O: hosts call it on the event loop).
    public func answers(path: String) -> Bool {
        (path.hasPrefix("/.well-known/") || proxy != nil) && routePaths.contains(path)
    }

    /// What a host framework needs to know of the configuration, with no secret in it.
    public var description: JSONValue {
        var object: [String: JSONValue] = [
            "provider": .string(provider.rawValue),
            "required_scopes": .array(requiredScopes.map { .string($0) }),
            "authorization_servers": .array(authorizationServers.map { .string($0) }),
            "routes": .array(routePaths.map { .string($0) }),
        ]
        if let resourceURL { object["resource"] = .string(resourceURL) }
        if let metadataURL, !authorizationServers.isEmpty { object["resource_metadata"] = .string(metadataURL) }
        return .object(object)
    }

    public func protectedResourceMetadata() -> JSONValue {
        var document: [String: JSONValue] = [
            "resource": resourceURL.map { .string($0) } ?? .null,
            "authorization_servers": .array(authorizationServers.map { .string($0) }),
            "bearer_methods_supported": ["header"],
        ]
        if !requiredScopes.isEmpty { document["scopes_supported"] = .array(requiredScopes.map { .string($0) }) }
        if let resourceName { document["resource_name"] = .string(resourceName) }
        return .object(document)
    }

    /// AuthKit's own metadata, fetched once per lifetime; a failed fetch is a 502 JSON error.
    private func authorizationServerMetadata() -> AuthResponse {
        let now = clock()
        if let cached = metadataCache.withLock({ $0 }), now < cached.expiresAt {
            return AuthResponse(
                status: 200,
                headers: ["Content-Type": "application/json", "Access-Control-Allow-Origin": "*"],
                body: cached.document
            )
        }
        let url = (authKitDomain ?? "") + "/.well-known/oauth-authorization-server"
        guard
            let response = try? http.send(
                HTTPRequest(
                    url: url,
                    headers: [("Accept", "application/json")],
                    timeout: 10,
                    maxResponseBytes: 256 * 1024
                )
            ),
            response.status == 200, (try? JSONValue.parse(response.body))?.objectValue != nil
        else {
            return .json(
                502,
                ["error": "bad_gateway", "error_description": "the authorization server metadata could not be fetched"]
            )
        }
        metadataCache.withLock { $0 = (response.body, now + Self.metadataLifetime) }
        return AuthResponse(
            status: 200,
            headers: ["Content-Type": "application/json", "Access-Control-Allow-Origin": "*"],
            body: response.body
        )
    }

    // MARK: - Authentication

    /// The outcome of authenticating one request.
    public enum Outcome: Sendable {
        case authenticated(AccessToken)
        case challenge(AuthResponse)
    }

    /// Authenticates a request's Authorization header (nil when absent) for an operation that
    /// needs `requiredScopes` beyond the configured ones. Tokens in the query string are refused.
    public func authenticate(
        authorization: String?,
        requiredScopes extra: [String] = [],
        query: String? = nil
    ) -> Outcome {
        let needed = requiredScopes + extra.filter { !requiredScopes.contains($0) }
        if let query, query.split(separator: "&").contains(where: { $0.hasPrefix("access_token=") }) {
            return .challenge(
                challenge(
                    401,
                    error: "invalid_request",
                    description: "Access tokens are accepted only in the Authorization header.",
                    scopes: needed
                )
            )
        }
        guard let authorization, !authorization.isEmpty else {
            return .challenge(challenge(401, error: nil, description: nil, scopes: needed))
        }
        let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer", !parts[1].contains(" ") else {
            return .challenge(
                challenge(
                    401,
                    error: "invalid_token",
                    description: "The Authorization header must be: Bearer <token>.",
                    scopes: needed
                )
            )
        }
        do {
            return .authenticated(try verify(String(parts[1]), needed))
        } catch let error as AuthError where error.code == .insufficientScope {
            return .challenge(
                challenge(
                    403,
                    error: "insufficient_scope",
                    description: "The token lacks a required scope.",
                    scopes: needed
                )
            )
        } catch let error as AuthError where Self.isOutage(error.code) {
            // The token may be fine: a client told 401 would throw it away and sign in again, so
            // an outage (store, upstream, JWKS) is a 503 to retry.
            return .challenge(unavailable(error.code))
        } catch let error as AuthError {
            // The code names the reason without echoing any token bytes.
            return .challenge(
                challenge(
                    401,
                    error: "invalid_token",
                    description: "The token is not valid (\(error.code.name)).",
                    scopes: needed
                )
            )
        } catch {
            return .challenge(
                challenge(401, error: "invalid_token", description: "The token is not valid.", scopes: needed)
            )
        }
    }

    /// Failures that say nothing about the token: something it depends on cannot be reached or
    /// read (a store-side problem must not make clients throw their tokens away either).
    static func isOutage(_ code: ErrorCode) -> Bool {
        [
            .storeUnavailable, .upstreamUnavailable, .jwksUnavailable, .corruptedValue, .undecryptableValue,
            .plaintextValue,
        ].contains(code)
    }

    /// 503 with Retry-After: the token could not be checked now.
    func unavailable(_ code: ErrorCode) -> AuthResponse {
        .json(
            503,
            [
                "error": "temporarily_unavailable",
                "error_description": .string("The token cannot be checked right now (\(code.name)); retry shortly."),
            ],
            extraHeaders: ["Retry-After": "5"]
        )
    }

    /// A 401/403 with `WWW-Authenticate: Bearer …` and a JSON body.
    func challenge(_ status: Int, error: String?, description: String?, scopes: [String]) -> AuthResponse {
        var parameters = [String]()
        if let error { parameters.append("error=\"\(error)\"") }
        if let description { parameters.append("error_description=\"\(description)\"") }
        if !authorizationServers.isEmpty, let metadataURL { parameters.append("resource_metadata=\"\(metadataURL)\"") }
        if !scopes.isEmpty { parameters.append("scope=\"\(scopes.joined(separator: " "))\"") }
        var body: [String: JSONValue] = [
            "error": .string(error ?? "unauthorized"),
            "error_description": .string(description ?? "Authentication required."),
        ]
        if status == 403 { body["required_scopes"] = .array(scopes.map { .string($0) }) }
        let header = parameters.isEmpty ? "Bearer" : "Bearer " + parameters.joined(separator: ", ")
        return .json(status, .object(body), extraHeaders: ["WWW-Authenticate": header])
    }
}

extension String {
    /// The text without any trailing repetitions of `suffix` ("https://h/" -> "https://h").
    public func trimmingSuffix(_ suffix: String) -> String {
        var text = self
        while text.hasSuffix(suffix) { text.removeLast(suffix.count) }
        return text
    }
}
