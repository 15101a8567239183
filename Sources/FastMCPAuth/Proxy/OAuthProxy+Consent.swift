/// The authorization request, the consent page and its decision, and the upstream callback: the
/// driver of ConsentMachine. The browser that approves carries a random binding cookie (set by
/// the consent page when the browser has none); the approval and the callback both require it.
extension OAuthProxy {
    // MARK: - Browser binding

    var secureCookies: Bool { urlScheme(config.baseURL) == "https" }
    /// `__Host-` on https: only this origin can set it, on Path=/ only, never for a parent domain.
    var bindingCookieName: String { (secureCookies ? "__Host-" : "") + "fastmcpauth_browser" }
    static let bindingCookieLifetime = 86400

    /// The binding cookie the request carries, when it is one of ours in shape (43 base64url
    /// characters: 256 bits).
    func presentedBinding(_ request: AuthRequest) -> String? {
        guard let value = Responses.cookie(bindingCookieName, in: request.header("Cookie")), value.utf8.count == 43,
            Base64URL.decode(value)?.count == 32
        else { return nil }
        return value
    }

    /// This browser's binding: the one it carries, else a new one with the Set-Cookie to send.
    func browserBinding(_ request: AuthRequest) throws -> (hash: String, setCookie: String?) {
        if let value = presentedBinding(request) { return (try OpenSSL.sha256Hex(value), nil) }
        let value = try random(32)
        let attributes =
            "Path=/; HttpOnly; SameSite=Lax; Max-Age=\(Self.bindingCookieLifetime)" + (secureCookies ? "; Secure" : "")
        return (try OpenSSL.sha256Hex(value), "\(bindingCookieName)=\(value); \(attributes)")
    }

    func transaction(_ id: String?) throws -> (record: Transaction, stored: [String: JSONValue])? {
        guard let id, !id.isEmpty, id.utf8.count <= 128,
            let stored = try store.get(ProxyCollection.transactions, id)
        else { return nil }
        guard let record = Transaction(json: stored), record.id == id else {
            log("oauth proxy: a stored transaction is unreadable; treated as unknown")
            return nil
        }
        return (record, stored)
    }

    func transactionTimeLeft(_ transaction: Transaction) -> Double {
        max(1, min(transaction.createdAt + config.transactionLifetime - clock(), config.transactionLifetime))
    }

    // MARK: - Authorize

    func authorize(_ request: AuthRequest) throws -> AuthResponse {
        // Before anything else (a metadata document fetch included): strangers pay first.
        try checkRateLimit(authorizeLimit, address: request.clientAddress)
        guard let query = Form.decode(request.queryString ?? ""),
            query.allSatisfy({ $0.1.utf8.count <= Self.maxParameterBytes })
        else {
            throw OAuthError.page(400, "The authorization request is malformed.")
        }
        let parameters = Parameters(query)
        if parameters.hasDuplicates { throw OAuthError.page(400, "The authorization request repeats a parameter.") }
        // Until the client and its redirect URI are known, errors go to the browser, never to a URI.
        guard let clientID = parameters["client_id"], let client = try client(clientID) else {
            throw OAuthError.page(400, "The client is not registered (or its registration expired).")
        }
        let redirectURI: String
        if let asked = parameters["redirect_uri"] {
            guard client.redirectURIs.contains(where: { RedirectURIs.matches(requested: asked, registered: $0) }) else {
                throw OAuthError.page(400, "The redirect URI is not registered for this client.")
            }
            redirectURI = asked
        } else {
            guard client.redirectURIs.count == 1, let only = client.redirectURIs.first else {
                throw OAuthError.page(400, "The request must name its redirect URI.")
            }
            redirectURI = only
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
        let allowed = scopes.allowed(forClientScope: client.scope)
        guard let requested = ScopePolicy.narrowed(parameters["scope"], within: allowed) else {
            return fail("invalid_scope", "A requested scope is not offered to this client.")
        }
        // A client may have only so many sign-ins pending, and the server only so many in all.
        try checkLimit(pendingPerClient, subject: client.clientID) { retryAfter in
            OAuthError.rateLimited(
                retryAfter: retryAfter,
                "Too many pending sign-ins for this client; try again later."
            )
        }
        try checkCapacity(transactionCapacity)
        var transaction = Transaction(
            id: try random(32),
            clientID: client.clientID,
            clientRedirectURI: redirectURI,
            clientState: state ?? "",
            codeChallenge: challenge,
            scopes: requested,
            createdAt: clock(),
            resource: parameters["resource"],
            proxyCodeVerifier: try random(48)
        )
        if !config.requireConsent {
            // No page to approve: the browser that asked is the one that must finish.
            let binding = try browserBinding(request)
            transaction.approvedBinding = binding.hash
            transaction.approvedAt = clock()
            try store.put(
                ProxyCollection.transactions,
                transaction.id,
                transaction.json,
                ttl: config.transactionLifetime
            )
            return Responses.redirect(
                try upstreamAuthorizeURL(transaction),
                headers: binding.setCookie.map { ["Set-Cookie": $0] } ?? [:]
            )
        }
        try store.put(ProxyCollection.transactions, transaction.id, transaction.json, ttl: config.transactionLifetime)
        return Responses.redirect(config.url("/consent") + "?txn_id=" + Form.encode(transaction.id))
    }

    // MARK: - Consent page

    func consentPage(_ request: AuthRequest) throws -> AuthResponse {
        try checkRateLimit(consentLimit, address: request.clientAddress)
        let parameters = Parameters(Form.decode(request.queryString ?? "") ?? [])
        guard let (transaction, _) = try transaction(parameters["txn_id"]) else {
            throw OAuthError.page(
                400,
                "This authorization request is unknown or has expired. Start again from your MCP client."
            )
        }
        let client = try self.client(transaction.clientID)
        try checkCapacity(consentCapacity)
        let binding = try browserBinding(request)
        // Every render has its own CSRF token, recorded with the browser it was rendered for, so
        // several open consent pages (and a prefetch of one) all stay valid, each once.
        let csrf = try random(32)
        let timeLeft = transactionTimeLeft(transaction)
        let render = ConsentRender(
            transactionID: transaction.id,
            expiresAt: clock() + timeLeft,
            browserBinding: binding.hash
        )
        try store.put(ProxyCollection.csrf, try OpenSSL.sha256Hex(csrf), render.json, ttl: timeLeft)
        let page = ConsentPage(
            clientName: client?.clientName ?? transaction.clientID,
            verifiedHost: client?.isVerifiedByMetadataDocument == true ? urlHost(transaction.clientID) : nil,
            redirectURI: transaction.clientRedirectURI,
            scopes: transaction.scopes,
            action: config.url("/consent"),
            transactionID: transaction.id,
            csrfToken: csrf
        )
        var response = Responses.html(
            200,
            page.render(),
            formTargets: [config.url("/consent"), config.upstreamAuthorizationEndpoint]
        )
        // The POST must carry our Origin (or a same-origin fetch): keep the referrer same-origin.
        response.headers["Referrer-Policy"] = "same-origin"
        if let setCookie = binding.setCookie { response.headers["Set-Cookie"] = setCookie }
        return response
    }

    // MARK: - Consent decision

    func consentSubmitted(_ request: AuthRequest) throws -> AuthResponse {
        guard
            ConsentMachine.submissionOriginAllowed(
                origin: request.header("Origin"),
                fetchSite: request.header("Sec-Fetch-Site"),
                proxyOrigin: origin
            )
        else {
            throw OAuthError.page(403, "This form was not submitted from this server's consent page.")
        }
        try checkRateLimit(consentLimit, address: request.clientAddress)
        guard request.body.count <= Self.maxFormBytes,
            let form = Form.decode(String(decoding: request.body, as: UTF8.self))
        else {
            throw OAuthError.page(400, ConsentMachine.Messages.malformed)
        }
        let parameters = Parameters(form)
        guard let transactionID = parameters["txn_id"], transactionID.utf8.count <= 128,
            let csrf = parameters["csrf_token"], csrf.utf8.count <= 128
        else {
            throw OAuthError.page(403, ConsentMachine.Messages.formExpired)
        }
        // The CSRF token is taken: one use, whatever the outcome.
        let render = try store.take(ProxyCollection.csrf, try OpenSSL.sha256Hex(csrf)).flatMap(
            ConsentRender.init(json:)
        )
        let browser = try presentedBinding(request).map { try OpenSSL.sha256Hex($0) }
        let decision: ConsentMachine.Decision? =
            switch parameters["action"] {
            case "approve": .approve
            case "deny": .deny
            default: nil
            }
        for _ in 0..<3 {
            let loaded = try transaction(transactionID)
            let action = ConsentMachine.submit(
                ConsentMachine.Submission(
                    render: render,
                    transactionID: transactionID,
                    transaction: loaded?.record,
                    browser: browser,
                    decision: decision,
                    now: clock()
                )
            )
            switch action {
            case .refuse(let status, let message):
                throw OAuthError.page(status, message)
            case .deny(let transaction):
                _ = try store.delete(ProxyCollection.transactions, transaction.id)
                return Responses.redirect(
                    clientRedirect(
                        transaction.clientRedirectURI,
                        [("error", "access_denied"), ("error_description", "The user denied access.")],
                        state: transaction.returnedState
                    )
                )
            case .proceed(let transaction):
                return Responses.redirect(try upstreamAuthorizeURL(transaction))
            case .approve(let approved):
                guard let loaded else { continue }
                if try store.compareAndSwap(
                    ProxyCollection.transactions,
                    approved.id,
                    expected: loaded.stored,
                    new: approved.json,
                    ttl: transactionTimeLeft(approved)
                ) {
                    return Responses.redirect(try upstreamAuthorizeURL(approved))
                }
            // Changed meanwhile (approved from another page, or gone): decide again on what is there.
            }
        }
        throw OAuthError.page(409, "This authorization request changed while it was being approved. Start again.")
    }

    // MARK: - Upstream callback

    func callback(_ request: AuthRequest) throws -> AuthResponse {
        let parameters = Parameters(Form.decode(request.queryString ?? "") ?? [])
        let loaded = try transaction(parameters["state"])
        let browser = try presentedBinding(request).map { try OpenSSL.sha256Hex($0) }
        switch ConsentMachine.callback(transaction: loaded?.record, browser: browser) {
        case .refuse(let status, let message): throw OAuthError.page(status, message)
        case .finish: break
        }
        // Of concurrent callbacks for one sign-in, one takes the transaction.
        guard let loaded,
            try store.compareAndDelete(ProxyCollection.transactions, loaded.record.id, expected: loaded.stored)
        else {
            throw OAuthError.page(400, ConsentMachine.Messages.unknownSignIn)
        }
        let finished = loaded.record
        let state = finished.returnedState
        func fail(_ error: String, _ description: String) -> AuthResponse {
            Responses.redirect(
                clientRedirect(
                    finished.clientRedirectURI,
                    [("error", error), ("error_description", description)],
                    state: state
                )
            )
        }
        if let upstreamError = parameters["error"] {
            // Logged for the operator; the client gets a standard code, never the provider's text.
            log(
                "oauth proxy: the identity provider returned an error (\(Responses.printable(String(upstreamError.prefix(64)))))"
            )
            let passed =
                ["access_denied", "temporarily_unavailable"].contains(upstreamError) ? upstreamError : "server_error"
            return fail(passed, "The identity provider did not authorize the request.")
        }
        guard let upstreamCode = parameters["code"], !upstreamCode.isEmpty,
            upstreamCode.utf8.count <= Self.maxParameterBytes
        else {
            return fail("server_error", "The identity provider sent no code.")
        }
        let tokens: [String: JSONValue]
        do {
            tokens = try upstreamTokenRequest([
                ("grant_type", "authorization_code"), ("code", upstreamCode),
                ("redirect_uri", config.url(config.redirectPath)), ("code_verifier", finished.proxyCodeVerifier),
            ])
        } catch let failure as UpstreamFailure {
            log("oauth proxy: the upstream code exchange failed: \(failure)")
            if case .unavailable = failure {
                return fail("temporarily_unavailable", "The identity provider cannot be reached; try again.")
            }
            return fail("server_error", "The identity provider did not issue tokens.")
        }
        let now = clock()
        let code = AuthorizationCode(
            code: try random(32),
            clientID: finished.clientID,
            redirectURI: finished.clientRedirectURI,
            codeChallenge: finished.codeChallenge,
            // The grant: what was asked for, confined to what the upstream says it granted.
            scopes: scopes.confined(finished.scopes, byUpstream: tokens["scope"]?.stringValue),
            upstreamTokens: tokens,
            expiresAt: now + config.codeLifetime,
            createdAt: now,
            resource: finished.resource
        )
        try store.put(ProxyCollection.codes, code.code, code.json, ttl: config.codeLifetime)
        return Responses.redirect(clientRedirect(finished.clientRedirectURI, [("code", code.code)], state: state))
    }
}
