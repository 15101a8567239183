import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The OAuth proxy: to MCP clients a complete authorization server (RFC 8414 metadata, RFC 7591
/// registration, authorize with consent, token, RFC 7009 revocation); to the identity provider
/// one confidential client. It issues its own HS256 JWTs and keeps the upstream tokens encrypted
/// in the store, found by the `jti` of ours. All state lives in the store, so processes sharing
/// one Redis serve one flow interchangeably. Thread-safe.
public final class OAuthProxy: @unchecked Sendable {
    /// py-key-value collections, as FastMCP names them.
    enum Collection {
        static let clients = "mcp-oauth-proxy-clients"
        static let transactions = "mcp-oauth-transactions"
        static let csrf = "mcp-consent-csrf-tokens"
        static let codes = "mcp-authorization-codes"
        static let upstreamTokens = "mcp-upstream-tokens"
        static let jtiMappings = "mcp-jti-mappings"
        static let refreshTokens = "mcp-refresh-tokens"
        static let registrations = "fastmcpauth-registrations"
    }

    static let maxFormBytes = 64 * 1024
    static let maxParameterBytes = 4096
    static let maxRedirectURIs = 10

    public let config: OAuthProxyConfig
    let store: Store
    let http: HTTPClient
    let clock: @Sendable () -> Double
    private let signingJWK: JSONWebKey
    private let verifier: JWTVerifier
    private let upstreamJWT: JWTVerifier?
    private let upstreamUserinfo: RemoteTokenVerifier?
    private let log: @Sendable (String) -> Void
    private let metadataDocuments: ClientMetadataDocuments
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
        signingJWK = try JSONWebKey(sharedSecret: config.signingKey)
        routes = Self.routeTable(config)
        metadataDocuments = ClientMetadataDocuments(http: http, allowLoopback: config.clientMetadataTestAllowLoopback)
        var verifierConfig = JWTVerifierConfig(
            keySource: .jwks(
                JSONValue.object([
                    "keys": .array([.object(["kty": "oct", "k": .string(Base64URL.encode(config.signingKey))])])
                ])
            ),
            algorithms: [.HS256]
        )
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
                http: http,
                clock: clock
            )
        case .jwt(let jwtConfig):
            upstreamJWT = try JWTVerifier(config: jwtConfig, http: http, clock: clock)
            upstreamUserinfo = nil
        }
    }

    // MARK: - Routes

    enum Route { case metadata, register, authorize, consent, callback, token, revoke }

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

    public func handle(_ request: AuthRequest) -> AuthResponse? {
        guard let route = routes[request.path] else { return nil }
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

    /// A store that cannot be reached is a 503, never a crash or a half-done flow.
    private func guarded(_ body: () throws -> AuthResponse) -> AuthResponse {
        do {
            return try body()
        } catch let error as AuthError {
            log("oauth proxy: \(error.code.name): \(error.message)")
            return Responses.oauthError(
                503,
                "temporarily_unavailable",
                "The authorization server cannot serve this request now."
            )
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
        if let scopes = config.validScopes ?? (config.requiredScopes.isEmpty ? nil : config.requiredScopes) {
            document["scopes_supported"] = .array(scopes.map { .string($0) })
        }
        return .object(document)
    }

    private func metadata() -> AuthResponse {
        Responses.json(
            200,
            metadataDocument(),
            headers: ["Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=3600"]
        )
    }

    // MARK: - Registration (RFC 7591)

    private func register(_ request: AuthRequest) throws -> AuthResponse {
        guard let body = try? JSONValue.parse(request.body), case .object(let metadata) = body else {
            return Responses.oauthError(400, "invalid_client_metadata", "The body must be a JSON object.")
        }
        guard case .array(let uriValues)? = metadata["redirect_uris"], !uriValues.isEmpty,
            uriValues.count <= Self.maxRedirectURIs
        else {
            return Responses.oauthError(
                400,
                "invalid_redirect_uri",
                "redirect_uris: between 1 and \(Self.maxRedirectURIs) URIs are required."
            )
        }
        let applicationType = metadata["application_type"]?.stringValue ?? "web"
        guard applicationType == "web" || applicationType == "native" else {
            return Responses.oauthError(400, "invalid_client_metadata", "application_type: must be web or native.")
        }
        var uris = [String]()
        for value in uriValues {
            guard let uri = value.stringValue else {
                return Responses.oauthError(400, "invalid_redirect_uri", "redirect_uris: must be strings.")
            }
            if let problem = RedirectURIs.problem(
                uri,
                applicationType: applicationType,
                allowedPatterns: config.allowedClientRedirectURIs
            ) {
                return Responses.oauthError(400, "invalid_redirect_uri", problem + ".")
            }
            uris.append(uri)
        }
        if let method = metadata["token_endpoint_auth_method"]?.stringValue, method != "none",
            method != "client_secret_post", method != "client_secret_basic"
        {
            return Responses.oauthError(
                400,
                "invalid_client_metadata",
                "token_endpoint_auth_method: only public clients (none) are registered."
            )
        }
        for (key, allowed) in [("grant_types", ["authorization_code", "refresh_token"]), ("response_types", ["code"])] {
            if case .array(let values)? = metadata[key],
                values.contains(where: { !allowed.contains($0.stringValue ?? "") })
            {
                return Responses.oauthError(
                    400,
                    "invalid_client_metadata",
                    "\(key): only \(allowed.joined(separator: " and ")) are supported."
                )
            }
        }
        var scope: String? = nil
        if let requested = metadata["scope"]?.stringValue {
            let scopes = requested.split(separator: " ").map(String.init)
            if let valid = config.validScopes, let bad = scopes.first(where: { !valid.contains($0) }) {
                return Responses.oauthError(
                    400,
                    "invalid_client_metadata",
                    "scope: \(Responses.printable(bad)) is not offered."
                )
            }
            scope = scopes.joined(separator: " ")
        }
        // Only registrations that would be stored count: they are what a flood fills the store with.
        if let limited = try rateLimited(request.clientAddress) { return limited }
        let clientName = metadata["client_name"]?.stringValue.map { String($0.prefix(200)) }
        let clientID = Base64URL.encode(try OpenSSL.randomBytes(24))
        let now = clock()
        var record: [String: JSONValue] = [
            "client_id": .string(clientID), "client_id_issued_at": .int(Int64(now)),
            "redirect_uris": .array(uris.map { .string($0) }), "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"], "token_endpoint_auth_method": "none",
            "application_type": .string(applicationType),
        ]
        if let clientName { record["client_name"] = .string(clientName) }
        if let scope { record["scope"] = .string(scope) }
        try store.put(Collection.clients, clientID, record, ttl: config.clientLifetime)
        log("oauth proxy: registered client \(clientID)")
        return Responses.json(
            201,
            .object(record),
            headers: ["Cache-Control": "no-store", "Access-Control-Allow-Origin": "*"]
        )
    }

    /// At most `registrationsPerHour` registrations per client address per clock hour, counted
    /// in the store (so several hosts count together; an optimistic update loses no count).
    private func rateLimited(_ address: String?) throws -> AuthResponse? {
        let now = clock()
        let window = (now / 3600).rounded(.down)
        let key = OpenSSL.sha256Hex(address ?? "unknown") + "." + String(Int64(window))
        for _ in 0..<8 {
            let existing = try store.get(Collection.registrations, key)
            let count = existing?["count"]?.numberValue ?? 0
            if count >= Double(config.registrationsPerHour) {
                let retry = Int((window + 1) * 3600 - now) + 1
                return Responses.oauthError(
                    429,
                    "too_many_requests",
                    "Too many registrations from this address; try again later.",
                    headers: ["Retry-After": String(retry)]
                )
            }
            if let existing {
                guard try store.compareAndDelete(Collection.registrations, key, expected: existing) else { continue }
            }
            if try store.putIfAbsent(Collection.registrations, key, ["count": .int(Int64(count) + 1)], ttl: 3600) {
                return nil
            }
        }
        return Responses.oauthError(429, "too_many_requests", "Too many concurrent registrations; try again.")
    }

    /// A registered client, or a client named by its metadata document URL (CIMD).
    func client(_ clientID: String) throws -> [String: JSONValue]? {
        guard !clientID.isEmpty, clientID.utf8.count <= 2048 else { return nil }
        if let known = try store.get(Collection.clients, clientID) { return known }
        guard config.clientMetadataDocuments, metadataDocuments.isClientIDURL(clientID) else { return nil }
        let fetched: (document: [String: JSONValue], lifetime: Double)
        do {
            fetched = try metadataDocuments.fetch(clientID)
        } catch ClientMetadataDocuments.Failure.refused(let why) {
            log("oauth proxy: client metadata document refused: \(why)")
            return nil
        }
        let document = fetched.document
        let applicationType = document["application_type"]?.stringValue ?? "web"
        guard case .array(let values)? = document["redirect_uris"], !values.isEmpty,
            values.count <= Self.maxRedirectURIs
        else {
            log("oauth proxy: client metadata document refused: redirect_uris missing")
            return nil
        }
        var uris = [String]()
        for value in values {
            guard let uri = value.stringValue,
                RedirectURIs.problem(
                    uri,
                    applicationType: applicationType,
                    allowedPatterns: config.allowedClientRedirectURIs
                ) == nil
            else {
                log("oauth proxy: client metadata document refused: a redirect URI is not acceptable")
                return nil
            }
            uris.append(uri)
        }
        var record: [String: JSONValue] = [
            "client_id": .string(clientID), "redirect_uris": .array(uris.map { .string($0) }),
            "token_endpoint_auth_method": "none", "application_type": .string(applicationType),
            "cimd_fetched_at": .double(clock()),
        ]
        if let name = document["client_name"]?.stringValue { record["client_name"] = .string(String(name.prefix(200))) }
        if fetched.lifetime > 0 { try store.put(Collection.clients, clientID, record, ttl: fetched.lifetime) }
        return record
    }

    // MARK: - Authorize

    private func authorize(_ request: AuthRequest) throws -> AuthResponse {
        guard let query = Form.decode(request.queryString ?? ""),
            query.allSatisfy({ $0.1.utf8.count <= Self.maxParameterBytes })
        else {
            return Responses.errorPage(400, "The authorization request is malformed.")
        }
        let parameters = Parameters(query)
        if parameters.hasDuplicates {
            return Responses.errorPage(400, "The authorization request repeats a parameter.")
        }
        // Until the client and its redirect URI are known, errors go to the browser, never to a URI.
        guard let clientID = parameters["client_id"], let client = try client(clientID) else {
            return Responses.errorPage(400, "The client is not registered (or its registration expired).")
        }
        let registered = (client["redirect_uris"]?.arrayValue ?? []).compactMap(\.stringValue)
        let redirectURI: String
        if let asked = parameters["redirect_uri"] {
            guard registered.contains(where: { RedirectURIs.matches(requested: asked, registered: $0) }) else {
                return Responses.errorPage(400, "The redirect URI is not registered for this client.")
            }
            redirectURI = asked
        } else {
            guard registered.count == 1 else {
                return Responses.errorPage(400, "The request must name its redirect URI.")
            }
            redirectURI = registered[0]
        }
        let state = parameters["state"]
        func fail(_ error: String, _ description: String) -> AuthResponse {
            Responses.redirect(
                clientRedirect(redirectURI, [("error", error), ("error_description", description)], state: state)
            )
        }
        guard parameters["response_type"] == "code" else {
            return fail("unsupported_response_type", "Only response_type=code is supported.")
        }
        guard let challenge = parameters["code_challenge"] else {
            return fail("invalid_request", "PKCE is required: send code_challenge.")
        }
        guard parameters["code_challenge_method"] == "S256" else {
            return fail("invalid_request", "code_challenge_method must be S256.")
        }
        guard challenge.utf8.count == 43, Base64URL.decode(challenge)?.count == 32 else {
            return fail("invalid_request", "code_challenge must be the base64url SHA-256 of the verifier.")
        }
        if let resource = parameters["resource"], !Self.sameResource(resource, config.resourceURL) {
            return fail("invalid_target", "The resource is not served by this authorization server.")
        }
        var scopes = (parameters["scope"] ?? "").split(separator: " ").map(String.init)
        if scopes.isEmpty { scopes = config.requiredScopes }
        if let valid = config.validScopes, scopes.contains(where: { !valid.contains($0) }) {
            return fail("invalid_scope", "A requested scope is not offered.")
        }
        let transactionID = Base64URL.encode(try OpenSSL.randomBytes(32))
        let transaction: [String: JSONValue] = [
            "txn_id": .string(transactionID), "client_id": .string(clientID),
            "client_redirect_uri": .string(redirectURI),
            "client_state": .string(state ?? ""), "code_challenge": .string(challenge), "code_challenge_method": "S256",
            "scopes": .array(scopes.map { .string($0) }), "created_at": .double(clock()),
            "resource": parameters["resource"].map { .string($0) } ?? .null,
            "proxy_code_verifier": .string(Base64URL.encode(try OpenSSL.randomBytes(48))),
        ]
        try store.put(Collection.transactions, transactionID, transaction, ttl: config.transactionLifetime)
        if !config.requireConsent {
            let binding = try newBinding(transactionID)
            return Responses.redirect(upstreamAuthorizeURL(transaction), headers: ["Set-Cookie": binding])
        }
        return Responses.redirect(config.url("/consent") + "?txn_id=" + Form.encode(transactionID))
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

    func upstreamAuthorizeURL(_ transaction: [String: JSONValue]) -> String {
        var pairs: [(String, String)] = [
            ("response_type", "code"), ("client_id", config.upstreamClientID),
            ("redirect_uri", config.url(config.redirectPath)),
            ("state", transaction["txn_id"]?.stringValue ?? ""),
        ]
        let scopes = (transaction["scopes"]?.arrayValue ?? []).compactMap(\.stringValue)
        if !scopes.isEmpty { pairs.append(("scope", scopes.joined(separator: " "))) }
        if let verifier = transaction["proxy_code_verifier"]?.stringValue {
            pairs.append(("code_challenge", Base64URL.encode(OpenSSL.sha256(Array(verifier.utf8)))))
            pairs.append(("code_challenge_method", "S256"))
        }
        for (name, value) in config.extraAuthorizeParams {
            pairs.removeAll { $0.0 == name }
            pairs.append((name, value))
        }
        return Form.url(config.upstreamAuthorizationEndpoint, adding: pairs)
    }

    // MARK: - Consent

    var cookiePrefix: String { urlScheme(config.baseURL) == "https" ? "__Host-" : "" }
    var bindingCookieName: String { cookiePrefix + "fastmcpauth_flow" }

    /// A fresh browser binding for a transaction: the cookie to set; its hash goes in the store.
    private func newBinding(_ transactionID: String) throws -> String {
        let value = Base64URL.encode(try OpenSSL.randomBytes(32))
        try store.put(
            Collection.transactions,
            transactionID + ".binding",
            ["binding_hash": .string(OpenSSL.sha256Hex(value))],
            ttl: config.transactionLifetime
        )
        let secure = urlScheme(config.baseURL) == "https" ? "; Secure" : ""
        return
            "\(bindingCookieName)=\(value); Path=/; HttpOnly; SameSite=Lax; Max-Age=\(Int(config.transactionLifetime))\(secure)"
    }

    private func consentPage(_ request: AuthRequest) throws -> AuthResponse {
        let parameters = Parameters(Form.decode(request.queryString ?? "") ?? [])
        guard let transactionID = parameters["txn_id"], transactionID.utf8.count <= 128,
            let transaction = try store.get(Collection.transactions, transactionID)
        else {
            return Responses.errorPage(
                400,
                "This authorization request is unknown or has expired. Start again from your MCP client."
            )
        }
        let clientID = transaction["client_id"]?.stringValue ?? ""
        let client = try self.client(clientID)
        // Every render has its own CSRF token, so several open consent pages all stay valid.
        let csrf = Base64URL.encode(try OpenSSL.randomBytes(32))
        let created = transaction["created_at"]?.numberValue ?? clock()
        let remaining = max(1, created + config.transactionLifetime - clock())
        try store.put(
            Collection.csrf,
            OpenSSL.sha256Hex(csrf),
            ["txn_id": .string(transactionID), "expires_at": .double(clock() + remaining)],
            ttl: remaining
        )
        let redirectURI = transaction["client_redirect_uri"]?.stringValue ?? ""
        // A metadata document's name is self-asserted: the page also names the host vouching for it.
        var name = client?["client_name"]?.stringValue ?? clientID
        if client?["cimd_fetched_at"] != nil, let host = urlHost(clientID) { name += " (\(host))" }
        let page = ConsentPage(
            clientName: name,
            redirectHost: RedirectURIs.parts(redirectURI)?.host ?? redirectURI,
            scopes: (transaction["scopes"]?.arrayValue ?? []).compactMap(\.stringValue),
            action: config.url("/consent"),
            transactionID: transactionID,
            csrfToken: csrf
        )
        return Responses.html(
            200,
            page.render(),
            formTargets: [config.url("/consent"), config.upstreamAuthorizationEndpoint]
        )
    }

    private func consentSubmitted(_ request: AuthRequest) throws -> AuthResponse {
        guard request.body.count <= Self.maxFormBytes,
            let form = Form.decode(String(decoding: request.body, as: UTF8.self))
        else {
            return Responses.errorPage(400, "The form is malformed.")
        }
        let parameters = Parameters(form)
        guard let transactionID = parameters["txn_id"], let csrf = parameters["csrf_token"], csrf.utf8.count <= 128,
            let record = try store.take(Collection.csrf, OpenSSL.sha256Hex(csrf)),
            record["txn_id"]?.stringValue == transactionID
        else {
            return Responses.errorPage(
                403,
                "This form has expired or was not issued by this server. Start again from your MCP client."
            )
        }
        guard let transaction = try store.get(Collection.transactions, transactionID) else {
            return Responses.errorPage(400, "This authorization request is unknown or has expired.")
        }
        let redirectURI = transaction["client_redirect_uri"]?.stringValue ?? ""
        let state = transaction["client_state"]?.stringValue
        guard parameters["action"] == "approve" else {
            _ = try store.delete(Collection.transactions, transactionID)
            return Responses.redirect(
                clientRedirect(
                    redirectURI,
                    [("error", "access_denied"), ("error_description", "The user denied access.")],
                    state: state
                )
            )
        }
        let cookie = try newBinding(transactionID)
        return Responses.redirect(upstreamAuthorizeURL(transaction), headers: ["Set-Cookie": cookie])
    }

    // MARK: - Upstream callback

    private func callback(_ request: AuthRequest) throws -> AuthResponse {
        let parameters = Parameters(Form.decode(request.queryString ?? "") ?? [])
        guard let transactionID = parameters["state"], transactionID.utf8.count <= 128,
            try store.get(Collection.transactions, transactionID) != nil
        else {
            return Responses.errorPage(400, "This sign-in is unknown or has expired. Start again from your MCP client.")
        }
        // The browser that approved must be the one finishing: the binding cookie proves it.
        let binding = try store.get(Collection.transactions, transactionID + ".binding")?["binding_hash"]?.stringValue
        guard let presented = Responses.cookie(bindingCookieName, in: request.header("Cookie")), let binding,
            OpenSSL.constantTimeEqual(Array(OpenSSL.sha256Hex(presented).utf8), Array(binding.utf8))
        else {
            return Responses.errorPage(
                403,
                "This sign-in was started in another browser. Start again from your MCP client."
            )
        }
        guard let finished = try store.take(Collection.transactions, transactionID) else {
            return Responses.errorPage(400, "This sign-in was already completed.")
        }
        _ = try store.delete(Collection.transactions, transactionID + ".binding")
        let redirectURI = finished["client_redirect_uri"]?.stringValue ?? ""
        let state = finished["client_state"]?.stringValue
        let clearCookie =
            "\(bindingCookieName)=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
            + (cookiePrefix.isEmpty ? "" : "; Secure")
        if let upstreamError = parameters["error"] {
            // Logged for the operator; the client gets a standard code, never the provider's text.
            log(
                "oauth proxy: the identity provider returned an error (\(Responses.printable(String(upstreamError.prefix(64)))))"
            )
            let code = upstreamError == "access_denied" ? "access_denied" : "server_error"
            return Responses.redirect(
                clientRedirect(
                    redirectURI,
                    [("error", code), ("error_description", "The identity provider did not authorize the request.")],
                    state: state
                ),
                headers: ["Set-Cookie": clearCookie]
            )
        }
        guard let upstreamCode = parameters["code"], upstreamCode.utf8.count <= Self.maxParameterBytes else {
            return Responses.redirect(
                clientRedirect(
                    redirectURI,
                    [("error", "server_error"), ("error_description", "The identity provider sent no code.")],
                    state: state
                ),
                headers: ["Set-Cookie": clearCookie]
            )
        }
        let tokens: [String: JSONValue]
        do {
            var form: [(String, String)] = [
                ("grant_type", "authorization_code"), ("code", upstreamCode),
                ("redirect_uri", config.url(config.redirectPath)),
            ]
            if let verifier = finished["proxy_code_verifier"]?.stringValue { form.append(("code_verifier", verifier)) }
            tokens = try upstreamTokenRequest(form)
        } catch let error as AuthError {
            log("oauth proxy: the upstream code exchange failed: \(error.message)")
            return Responses.redirect(
                clientRedirect(
                    redirectURI,
                    [("error", "server_error"), ("error_description", "The identity provider did not issue tokens.")],
                    state: state
                ),
                headers: ["Set-Cookie": clearCookie]
            )
        }
        let code = Base64URL.encode(try OpenSSL.randomBytes(32))
        let now = clock()
        let record: [String: JSONValue] = [
            "code": .string(code), "client_id": finished["client_id"] ?? "", "redirect_uri": .string(redirectURI),
            "code_challenge": finished["code_challenge"] ?? .null, "code_challenge_method": "S256",
            "scopes": finished["scopes"] ?? [], "idp_tokens": .object(tokens),
            "expires_at": .double(now + config.codeLifetime),
            "created_at": .double(now), "resource": finished["resource"] ?? .null,
        ]
        try store.put(Collection.codes, code, record, ttl: config.codeLifetime)
        return Responses.redirect(
            clientRedirect(redirectURI, [("code", code)], state: state),
            headers: ["Set-Cookie": clearCookie]
        )
    }

    /// A form for the upstream's token or revocation endpoint with our client authentication
    /// (HTTP Basic, form fields, or the client id alone), and its headers.
    func authenticatedUpstreamForm(
        _ pairs: [(String, String)]
    ) -> (form: [(String, String)], headers: [(name: String, value: String)]) {
        var form = pairs
        var headers: [(name: String, value: String)] = [("Content-Type", "application/x-www-form-urlencoded")]
        switch config.upstreamClientAuth {
        case .clientSecretBasic:
            let credentials =
                Form.encode(config.upstreamClientID) + ":" + Form.encode(config.upstreamClientSecret ?? "")
            headers.append(("Authorization", "Basic " + Base64.encode(Array(credentials.utf8), alphabet: .standard)))
        case .clientSecretPost:
            form += [("client_id", config.upstreamClientID), ("client_secret", config.upstreamClientSecret ?? "")]
        case .none:
            form.append(("client_id", config.upstreamClientID))
        }
        return (form, headers)
    }

    /// POSTs to the upstream token endpoint with our client authentication; the token response.
    func upstreamTokenRequest(_ pairs: [(String, String)]) throws -> [String: JSONValue] {
        var (form, headers) = authenticatedUpstreamForm(pairs)
        headers.append(("Accept", "application/json"))
        form += config.extraTokenParams
        let response: HTTPResponse
        do {
            response = try http.send(
                HTTPRequest(
                    method: "POST",
                    url: config.upstreamTokenEndpoint,
                    headers: headers,
                    body: Array(Form.encode(form).utf8),
                    timeout: config.timeout,
                    maxResponseBytes: 256 * 1024
                )
            )
        } catch {
            throw AuthError(.jwksUnavailable, "the upstream token endpoint could not be reached")
        }
        guard let body = (try? JSONValue.parse(response.body))?.objectValue else {
            throw AuthError(
                .jwksUnavailable,
                "the upstream token endpoint answered HTTP \(response.status) without JSON"
            )
        }
        guard response.status == 200, let access = body["access_token"]?.stringValue, !access.isEmpty else {
            let code = body["error"]?.stringValue.map { Responses.printable(String($0.prefix(64))) } ?? "none"
            throw AuthError(
                .badSignature,
                "the upstream token endpoint answered HTTP \(response.status) (error \(code))"
            )
        }
        return body
    }

    // MARK: - Token endpoint

    private func token(_ request: AuthRequest) throws -> AuthResponse {
        guard let form = Form.decode(String(decoding: request.body, as: UTF8.self)),
            form.allSatisfy({ $0.1.utf8.count <= Self.maxParameterBytes })
        else {
            return Responses.oauthError(400, "invalid_request", "The form is malformed.")
        }
        let parameters = Parameters(form)
        if parameters.hasDuplicates { return Responses.oauthError(400, "invalid_request", "A parameter is repeated.") }
        let clientID: String
        switch try authenticateClient(parameters, authorization: request.header("Authorization")) {
        case .failure(let response): return response
        case .success(let id): clientID = id
        }
        if let resource = parameters["resource"], !Self.sameResource(resource, config.resourceURL) {
            return Responses.oauthError(
                400,
                "invalid_target",
                "The resource is not served by this authorization server."
            )
        }
        switch parameters["grant_type"] {
        case "authorization_code": return try exchangeCode(parameters, clientID: clientID)
        case "refresh_token": return try refresh(parameters, clientID: clientID)
        case nil: return Responses.oauthError(400, "invalid_request", "grant_type is required.")
        default:
            return Responses.oauthError(
                400,
                "unsupported_grant_type",
                "Only authorization_code and refresh_token are supported."
            )
        }
    }

    enum ClientCheck {
        case success(String)
        case failure(AuthResponse)
    }

    /// Public clients: client_id in the form (or HTTP Basic with an empty secret); an empty
    /// `client_secret=` is tolerated, as the mcp client sends one.
    func authenticateClient(_ parameters: Parameters, authorization: String?) throws -> ClientCheck {
        var clientID = parameters["client_id"]
        var secret = parameters["client_secret"]
        if let authorization, authorization.lowercased().hasPrefix("basic ") {
            guard
                let decoded = Base64.decode(
                    String(authorization.dropFirst(6)).trimmingCharacters(),
                    alphabet: .standard
                ),
                let text = String(validating: decoded, as: UTF8.self), let colon = text.firstIndex(of: ":"),
                let id = Form.unescape(text[..<colon]), let password = Form.unescape(text[text.index(after: colon)...])
            else {
                return .failure(
                    Responses.oauthError(
                        401,
                        "invalid_client",
                        "The client credentials are malformed.",
                        headers: ["WWW-Authenticate": "Basic"]
                    )
                )
            }
            if let clientID, clientID != id {
                return .failure(Responses.oauthError(401, "invalid_client", "Two different client ids."))
            }
            clientID = id
            secret = password
        }
        guard let clientID, let known = try client(clientID) else {
            return .failure(
                Responses.oauthError(
                    401,
                    "invalid_client",
                    "The client is not registered (or its registration expired)."
                )
            )
        }
        if let secret, !secret.isEmpty {
            return .failure(Responses.oauthError(401, "invalid_client", "This client is public: it has no secret."))
        }
        return .success(known["client_id"]?.stringValue ?? clientID)
    }

    private func exchangeCode(_ parameters: Parameters, clientID: String) throws -> AuthResponse {
        guard let code = parameters["code"], code.utf8.count <= 128 else {
            return Responses.oauthError(400, "invalid_request", "code is required.")
        }
        guard let record = try store.take(Collection.codes, code) else {
            // A replayed code: revoke everything it issued (RFC 6749 §4.1.2).
            if let redeemed = try store.get(Collection.codes, code + ".redeemed"),
                let upstreamID = redeemed["upstream_token_id"]?.stringValue
            {
                try revokeGrant(upstreamTokenID: upstreamID)
                log("oauth proxy: authorization code replayed; its tokens are revoked")
            }
            return Responses.oauthError(
                400,
                "invalid_grant",
                "The authorization code is invalid, expired or already used."
            )
        }
        guard record["client_id"]?.stringValue == clientID else {
            return Responses.oauthError(400, "invalid_grant", "The authorization code was issued to another client.")
        }
        guard let expires = record["expires_at"]?.numberValue, clock() < expires else {
            return Responses.oauthError(400, "invalid_grant", "The authorization code has expired.")
        }
        guard let redirect = parameters["redirect_uri"], redirect == record["redirect_uri"]?.stringValue else {
            return Responses.oauthError(400, "invalid_grant", "redirect_uri does not match the authorization request.")
        }
        guard let verifier = parameters["code_verifier"], Self.validVerifier(verifier),
            let challenge = record["code_challenge"]?.stringValue,
            OpenSSL.constantTimeEqual(
                Array(Base64URL.encode(OpenSSL.sha256(Array(verifier.utf8))).utf8),
                Array(challenge.utf8)
            )
        else {
            return Responses.oauthError(
                400,
                "invalid_grant",
                "The PKCE code_verifier does not match the code_challenge."
            )
        }
        if let resource = record["resource"]?.stringValue, let asked = parameters["resource"],
            !Self.sameResource(asked, resource)
        {
            return Responses.oauthError(400, "invalid_target", "The resource differs from the authorization request.")
        }
        let scopes = (record["scopes"]?.arrayValue ?? []).compactMap(\.stringValue)
        guard case .object(let upstream)? = record["idp_tokens"] else {
            return Responses.oauthError(400, "invalid_grant", "The authorization code is incomplete.")
        }
        let now = clock()
        let upstreamID = Base64URL.encode(try OpenSSL.randomBytes(24))
        let upstreamExpires = upstream["expires_in"]?.numberValue.map { now + $0 }
        let upstreamRefresh = upstream["refresh_token"]?.stringValue
        let refreshExpires = upstream["refresh_expires_in"]?.numberValue.map { now + $0 }
        let tokenSet: [String: JSONValue] = [
            "upstream_token_id": .string(upstreamID), "access_token": upstream["access_token"] ?? "",
            "refresh_token": upstreamRefresh.map { .string($0) } ?? .null,
            "refresh_token_expires_at": refreshExpires.map { .double($0) } ?? .null,
            "expires_at": .double(upstreamExpires ?? now + config.accessTokenLifetime),
            "token_type": upstream["token_type"] ?? "Bearer", "scope": .string(scopes.joined(separator: " ")),
            "client_id": .string(clientID), "created_at": .double(now),
            // The rest of the token response (id_token, …); the tokens themselves are stored once, above.
            "raw_token_data": .object(upstream.filter { $0.key != "access_token" && $0.key != "refresh_token" }),
        ]
        try store.put(Collection.upstreamTokens, upstreamID, tokenSet, ttl: config.refreshTokenLifetime)
        try store.put(
            Collection.codes,
            code + ".redeemed",
            ["upstream_token_id": .string(upstreamID)],
            ttl: config.codeLifetime
        )
        // Without an upstream refresh token, our access token cannot outlive the upstream one.
        var accessLifetime = config.accessTokenLifetime
        if upstreamRefresh == nil, let upstreamExpires {
            accessLifetime = max(1, min(accessLifetime, upstreamExpires - now))
        }
        return try issueTokens(
            clientID: clientID,
            scopes: scopes,
            upstreamTokenID: upstreamID,
            accessLifetime: accessLifetime
        )
    }

    /// RFC 7636: 43 to 128 unreserved characters.
    static func validVerifier(_ verifier: String) -> Bool {
        (43...128).contains(verifier.utf8.count)
            && verifier.utf8.allSatisfy { byte in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                    || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || "-._~".utf8.contains(byte)
            }
    }

    /// A new access and refresh token pair for one grant (family = its upstream token set).
    private func issueTokens(
        clientID: String,
        scopes: [String],
        upstreamTokenID: String,
        accessLifetime: Double
    ) throws -> AuthResponse {
        let now = clock()
        let accessJTI = Base64URL.encode(try OpenSSL.randomBytes(24))
        let refreshJTI = Base64URL.encode(try OpenSSL.randomBytes(24))
        let scope = scopes.joined(separator: " ")
        let common: [String: JSONValue] = [
            "iss": .string(config.issuer), "aud": .string(config.resourceURL), "client_id": .string(clientID),
            "scope": .string(scope), "iat": .int(Int64(now)),
        ]
        var accessClaims = common
        accessClaims["exp"] = .int(Int64(now + accessLifetime))
        accessClaims["jti"] = .string(accessJTI)
        var refreshClaims = common
        refreshClaims["exp"] = .int(Int64(now + config.refreshTokenLifetime))
        refreshClaims["jti"] = .string(refreshJTI)
        refreshClaims["token_use"] = "refresh"
        let accessToken = try JWT.sign(claims: .object(accessClaims), key: signingJWK, algorithm: .HS256)
        let refreshToken = try JWT.sign(claims: .object(refreshClaims), key: signingJWK, algorithm: .HS256)
        try store.put(
            Collection.jtiMappings,
            accessJTI,
            ["jti": .string(accessJTI), "upstream_token_id": .string(upstreamTokenID), "created_at": .double(now)],
            ttl: accessLifetime
        )
        try store.put(
            Collection.jtiMappings,
            refreshJTI,
            ["jti": .string(refreshJTI), "upstream_token_id": .string(upstreamTokenID), "created_at": .double(now)],
            ttl: config.refreshTokenLifetime
        )
        try store.put(
            Collection.refreshTokens,
            OpenSSL.sha256Hex(refreshToken),
            [
                "client_id": .string(clientID), "scopes": .array(scopes.map { .string($0) }),
                "expires_at": .int(Int64(now + config.refreshTokenLifetime)), "created_at": .double(now),
                "upstream_token_id": .string(upstreamTokenID), "access_jti": .string(accessJTI),
            ],
            ttl: config.refreshTokenLifetime
        )
        var body: [String: JSONValue] = [
            "access_token": .string(accessToken), "token_type": "Bearer", "expires_in": .int(Int64(accessLifetime)),
            "refresh_token": .string(refreshToken),
        ]
        if !scope.isEmpty { body["scope"] = .string(scope) }
        // Browser-based MCP clients call /token cross-origin: public clients, no cookies involved.
        return Responses.json(
            200,
            .object(body),
            headers: ["Cache-Control": "no-store", "Pragma": "no-cache", "Access-Control-Allow-Origin": "*"]
        )
    }

    // MARK: - Refresh

    private func refresh(_ parameters: Parameters, clientID: String) throws -> AuthResponse {
        guard let presented = parameters["refresh_token"] else {
            return Responses.oauthError(400, "invalid_request", "refresh_token is required.")
        }
        guard let claims = try? verifier.verify(presented).claims, claims["token_use"]?.stringValue == "refresh",
            let jti = claims["jti"]?.stringValue
        else {
            return Responses.oauthError(400, "invalid_grant", "The refresh token is invalid or expired.")
        }
        guard claims["client_id"]?.stringValue == clientID else {
            return Responses.oauthError(400, "invalid_grant", "The refresh token was issued to another client.")
        }
        let key = OpenSSL.sha256Hex(presented)
        var record = try store.take(Collection.refreshTokens, key)
        if record == nil {
            // Rotated already: within the grace window the replaced token works once more, so
            // concurrent refreshes do not log the user out; after it, reuse revokes the family.
            record = try store.take(Collection.refreshTokens, key + ".grace")
            if record == nil {
                if let upstreamID = try store.get(Collection.jtiMappings, jti)?["upstream_token_id"]?.stringValue {
                    try revokeGrant(upstreamTokenID: upstreamID)
                    log("oauth proxy: a rotated refresh token was reused; the grant is revoked")
                }
                return Responses.oauthError(400, "invalid_grant", "The refresh token was already used.")
            }
        } else if config.refreshGracePeriod > 0 {
            var grace = record!
            grace["rotated_at"] = .double(clock())
            try store.put(Collection.refreshTokens, key + ".grace", grace, ttl: config.refreshGracePeriod)
        }
        guard let record, let upstreamID = record["upstream_token_id"]?.stringValue,
            var tokenSet = try store.get(Collection.upstreamTokens, upstreamID)
        else {
            return Responses.oauthError(400, "invalid_grant", "The grant has been revoked.")
        }
        let granted = (record["scopes"]?.arrayValue ?? []).compactMap(\.stringValue)
        var scopes = granted
        if let asked = parameters["scope"] {
            let narrowed = asked.split(separator: " ").map(String.init)
            guard narrowed.allSatisfy(granted.contains) else {
                return Responses.oauthError(400, "invalid_scope", "A refresh may only narrow the granted scope.")
            }
            scopes = narrowed
        }
        if let accessJTI = record["access_jti"]?.stringValue { _ = try store.delete(Collection.jtiMappings, accessJTI) }
        if let renewed = try refreshUpstreamIfDue(upstreamID, tokenSet, force: false) { tokenSet = renewed }
        var accessLifetime = config.accessTokenLifetime
        if tokenSet["refresh_token"]?.stringValue == nil, let expires = tokenSet["expires_at"]?.numberValue {
            accessLifetime = max(1, min(accessLifetime, expires - clock()))
        }
        return try issueTokens(
            clientID: clientID,
            scopes: scopes,
            upstreamTokenID: upstreamID,
            accessLifetime: accessLifetime
        )
    }

    /// Refreshes the upstream token when it is near expiry and refreshable; one refresh at a time
    /// per token, across processes (a store lease). Returns the new token set, or nil.
    func refreshUpstreamIfDue(
        _ upstreamID: String,
        _ tokenSet: [String: JSONValue],
        force: Bool
    ) throws -> [String: JSONValue]? {
        guard let refreshToken = tokenSet["refresh_token"]?.stringValue,
            let expires = tokenSet["expires_at"]?.numberValue
        else { return nil }
        guard force || expires - clock() < config.upstreamRefreshMargin else { return nil }
        let leaseName = "upstream-refresh:" + upstreamID
        var holder: String? = nil
        for _ in 0..<40 {
            holder = try store.acquireLease(leaseName, ttl: config.timeout + 5)
            if holder != nil { break }
            usleep(50_000)
            // Another process may have finished the refresh meanwhile.
            if let current = try store.get(Collection.upstreamTokens, upstreamID),
                let newExpiry = current["expires_at"]?.numberValue, newExpiry - clock() >= config.upstreamRefreshMargin
            {
                return current
            }
        }
        guard let holder else { return nil }
        defer { _ = try? store.releaseLease(leaseName, holder: holder) }
        guard var current = try store.get(Collection.upstreamTokens, upstreamID) else { return nil }
        if let newExpiry = current["expires_at"]?.numberValue, newExpiry - clock() >= config.upstreamRefreshMargin,
            !force
        {
            return current
        }
        let renewed: [String: JSONValue]
        do {
            renewed = try upstreamTokenRequest([
                ("grant_type", "refresh_token"),
                ("refresh_token", current["refresh_token"]?.stringValue ?? refreshToken),
            ])
        } catch let error as AuthError {
            log("oauth proxy: the upstream refresh failed: \(error.message)")
            return nil
        }
        let now = clock()
        current["access_token"] = renewed["access_token"] ?? current["access_token"]
        if let rotated = renewed["refresh_token"]?.stringValue { current["refresh_token"] = .string(rotated) }
        current["expires_at"] = .double(
            renewed["expires_in"]?.numberValue.map { now + $0 } ?? now + config.accessTokenLifetime
        )
        current["raw_token_data"] = .object(renewed.filter { $0.key != "access_token" && $0.key != "refresh_token" })
        try store.put(Collection.upstreamTokens, upstreamID, current, ttl: config.refreshTokenLifetime)
        return current
    }

    // MARK: - Revocation (RFC 7009)

    private func revoke(_ request: AuthRequest) throws -> AuthResponse {
        guard let form = Form.decode(String(decoding: request.body, as: UTF8.self)) else {
            return Responses.oauthError(400, "invalid_request", "The form is malformed.")
        }
        let parameters = Parameters(form)
        let clientID: String
        switch try authenticateClient(parameters, authorization: request.header("Authorization")) {
        case .failure(let response): return response
        case .success(let id): clientID = id
        }
        guard let token = parameters["token"], !token.isEmpty else {
            return Responses.oauthError(400, "invalid_request", "token is required.")
        }
        // Tokens that are not ours, or no longer valid, need no revoking (RFC 7009 §2.2).
        if let claims = try? verifier.verify(token).claims, claims["client_id"]?.stringValue == clientID,
            let jti = claims["jti"]?.stringValue
        {
            if claims["token_use"]?.stringValue == "refresh" {
                if let upstreamID = try store.get(Collection.jtiMappings, jti)?["upstream_token_id"]?.stringValue {
                    try revokeGrant(upstreamTokenID: upstreamID)
                }
                _ = try store.delete(Collection.refreshTokens, OpenSSL.sha256Hex(token))
            } else {
                _ = try store.delete(Collection.jtiMappings, jti)
            }
        }
        return Responses.json(
            200,
            .object([:]),
            headers: ["Cache-Control": "no-store", "Access-Control-Allow-Origin": "*"]
        )
    }

    /// Ends a whole grant: the upstream token set goes (so every token of the family is refused
    /// at once) and the upstream revocation endpoint is told when configured.
    func revokeGrant(upstreamTokenID: String) throws {
        guard let tokenSet = try store.take(Collection.upstreamTokens, upstreamTokenID) else { return }
        guard let endpoint = config.upstreamRevocationEndpoint else { return }
        let (token, hint) =
            tokenSet["refresh_token"]?.stringValue.map { ($0, "refresh_token") }
            ?? (tokenSet["access_token"]?.stringValue ?? "", "access_token")
        let (form, headers) = authenticatedUpstreamForm([("token", token), ("token_type_hint", hint)])
        let status =
            (try? http.send(
                HTTPRequest(
                    method: "POST",
                    url: endpoint,
                    headers: headers,
                    body: Array(Form.encode(form).utf8),
                    timeout: config.timeout,
                    maxResponseBytes: 64 * 1024
                )
            ))?.status
        if status != 200 { log("oauth proxy: upstream revocation answered \(status.map(String.init) ?? "nothing")") }
    }

    // MARK: - Bearer tokens at the MCP endpoint

    /// Our access token → the access token the MCP server sees: the upstream token (for calling
    /// the provider's APIs), our client id and scopes, the upstream identity's claims.
    public func verify(_ token: String, requiredScopes: [String]) throws -> AccessToken {
        let claims = try verifier.verify(token).claims
        if let use = claims["token_use"]?.stringValue, use != "access" {
            throw AuthError(.invalidClaim, "a refresh token is not an access token")
        }
        guard let jti = claims["jti"]?.stringValue, let mapping = try store.get(Collection.jtiMappings, jti),
            let upstreamID = mapping["upstream_token_id"]?.stringValue,
            var tokenSet = try store.get(Collection.upstreamTokens, upstreamID)
        else {
            throw AuthError(.badSignature, "the token has been revoked")
        }
        if let renewed = try refreshUpstreamIfDue(upstreamID, tokenSet, force: false) { tokenSet = renewed }
        guard let upstreamToken = tokenSet["access_token"]?.stringValue else {
            throw AuthError(.badSignature, "the grant is incomplete")
        }
        var identity: [String: JSONValue] = [:]
        if let upstreamJWT {
            identity = try upstreamJWT.verify(upstreamToken).claims
        } else if let upstreamUserinfo {
            identity = try upstreamUserinfo.verify(upstreamToken).claims
        } else if let expires = tokenSet["expires_at"]?.numberValue, clock() >= expires {
            throw AuthError(.expired, "the upstream token has expired")
        }
        // The upstream identity, with our token's own registered claims and grant on top.
        var merged = identity
        for name in ["iss", "aud", "exp", "iat", "jti", "client_id", "scope", "scp", "azp"] {
            merged[name] = claims[name]
        }
        let access = AccessToken(token: upstreamToken, claims: merged)
        let missing = requiredScopes.filter { !access.scopes.contains($0) }
        if !missing.isEmpty { throw AuthError(.insufficientScope, "missing scope") }
        return access
    }
}

/// Query or form parameters; the first value of each name, and whether any name repeats.
struct Parameters {
    private var values: [String: String] = [:]
    private(set) var hasDuplicates = false

    init(_ pairs: [(String, String)]) {
        for (name, value) in pairs {
            if values[name] != nil { hasDuplicates = true } else { values[name] = value }
        }
    }

    subscript(_ name: String) -> String? { values[name] }
}
