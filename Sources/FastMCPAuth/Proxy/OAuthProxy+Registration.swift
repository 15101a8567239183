/// RFC 7591 registration of public clients, the registration rate limit, and client lookup
/// (registered clients and Client ID Metadata Documents).
extension OAuthProxy {
    func register(_ request: AuthRequest) throws -> AuthResponse {
        guard let body = try? JSONValue.parse(request.body), case .object(let metadata) = body else {
            throw OAuthError.invalidClientMetadata("The body must be a JSON object.")
        }
        guard case .array(let uriValues)? = metadata["redirect_uris"], !uriValues.isEmpty,
            uriValues.count <= Self.maxRedirectURIs
        else {
            throw OAuthError.invalidRedirectURI(
                "redirect_uris: between 1 and \(Self.maxRedirectURIs) URIs are required."
            )
        }
        let applicationType = metadata["application_type"]?.stringValue ?? "web"
        guard applicationType == "web" || applicationType == "native" else {
            throw OAuthError.invalidClientMetadata("application_type: must be web or native.")
        }
        var uris = [String]()
        for value in uriValues {
            guard let uri = value.stringValue else {
                throw OAuthError.invalidRedirectURI("redirect_uris: must be strings.")
            }
            if let problem = RedirectURIs.problem(
                uri,
                applicationType: applicationType,
                allowedPatterns: redirectPatterns
            ) {
                throw OAuthError.invalidRedirectURI(problem + ".")
            }
            uris.append(uri)
        }
        if let method = metadata["token_endpoint_auth_method"]?.stringValue, method != "none",
            method != "client_secret_post", method != "client_secret_basic"
        {
            throw OAuthError.invalidClientMetadata(
                "token_endpoint_auth_method: only public clients (none) are registered."
            )
        }
        for (key, allowed) in [
            ("grant_types", ["authorization_code", "refresh_token"]), ("response_types", ["code"]),
        ] {
            if case .array(let values)? = metadata[key],
                values.contains(where: { !allowed.contains($0.stringValue ?? "") })
            {
                throw OAuthError.invalidClientMetadata(
                    "\(key): only \(allowed.joined(separator: " and ")) are supported."
                )
            }
        }
        if metadata["scope"] != nil, metadata["scope"]?.stringValue == nil {
            throw OAuthError.invalidClientMetadata("scope: must be a string of space-separated scopes.")
        }
        guard let registeredScopes = scopes.registered(metadata["scope"]?.stringValue) else {
            throw OAuthError.invalidClientMetadata(
                scopes.offered.isEmpty
                    ? "scope: this server offers no scopes."
                    : "scope: only \(scopes.offered.joined(separator: " ")) are offered."
            )
        }
        // Only registrations that would be stored count: they are what a flood fills the store with.
        try checkRateLimit(registrationLimit, address: request.clientAddress)
        try checkCapacity(registrationCapacity)
        let client = ClientRecord(
            clientID: try random(24),
            redirectURIs: uris,
            applicationType: applicationType,
            clientName: metadata["client_name"]?.stringValue.map { String($0.prefix(200)) },
            // As registered ("" is "no scope at all"); without a `scope`, the offered set.
            scope: metadata["scope"] == nil ? nil : registeredScopes.joined(separator: " "),
            issuedAt: clock().rounded(.down)
        )
        try store.put(ProxyCollection.clients, client.clientID, client.json, ttl: config.clientLifetime)
        log("oauth proxy: registered client \(client.clientID)")
        return Responses.json(
            201,
            .object(client.json),
            headers: ["Cache-Control": "no-store", "Access-Control-Allow-Origin": "*"]
        )
    }

    /// One attempt against a per-address limit: allowed, or 429 rate_limited with Retry-After.
    func checkRateLimit(_ limit: FixedWindowRateLimit, address: String?) throws {
        try checkLimit(limit, subject: FixedWindowRateLimit.subject(forAddress: address)) { retryAfter in
            OAuthError.rateLimited(retryAfter: retryAfter, "Too many requests from this address; try again later.")
        }
    }

    /// One more unauthenticated record against a global cap: allowed, or 503 over_capacity.
    func checkCapacity(_ cap: FixedWindowRateLimit) throws {
        try checkLimit(cap, subject: "global") { OAuthError.overCapacity(retryAfter: $0) }
    }

    func checkLimit(
        _ limit: FixedWindowRateLimit,
        subject: String,
        refusal: (Int) -> OAuthError
    ) throws {
        let now = clock()
        let key = try limit.counterKey(subject: subject, now: now)
        // The counter itself may meet a full memory store: that is over capacity as well.
        let count: Int64
        do {
            count = try store.increment(ProxyCollection.rateLimits, key, ttl: limit.window)
        } catch let error as AuthError where error.code == .overCapacity {
            throw OAuthError.overCapacity(retryAfter: Int(min(limit.window, 3600)))
        }
        if case .refuse(let retryAfter) = limit.decide(count: count, now: now) { throw refusal(retryAfter) }
    }

    /// A registered client, or a client named by its metadata document URL (CIMD).
    func client(_ clientID: String) throws -> ClientRecord? {
        guard !clientID.isEmpty, clientID.utf8.count <= 2048 else { return nil }
        if let known = try store.get(ProxyCollection.clients, clientID) {
            guard let record = ClientRecord(json: known) else {
                log("oauth proxy: a stored client is unreadable; treated as unknown")
                return nil
            }
            return record
        }
        guard config.clientMetadataDocuments, metadataDocuments.isClientIDURL(clientID) else { return nil }
        let fetched: (document: [String: JSONValue], lifetime: Double)
        do {
            fetched = try metadataDocuments.fetch(clientID)
        } catch ClientMetadataDocuments.Failure.refused(let why) {
            log("oauth proxy: client metadata document refused: \(why)")
            return nil
        } catch ClientMetadataDocuments.Failure.unreachable(let why) {
            // An outage of the client's host is not a reason to call the client unknown (401).
            log("oauth proxy: client metadata document unavailable: \(why)")
            throw AuthError(.upstreamUnavailable, "the client's metadata document cannot be fetched now")
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
                RedirectURIs.problem(uri, applicationType: applicationType, allowedPatterns: redirectPatterns) == nil
            else {
                log("oauth proxy: client metadata document refused: a redirect URI is not acceptable")
                return nil
            }
            uris.append(uri)
        }
        let record = ClientRecord(
            clientID: clientID,
            redirectURIs: uris,
            applicationType: applicationType,
            clientName: document["client_name"]?.stringValue.map { String($0.prefix(200)) },
            scope: document["scope"]?.stringValue,
            issuedAt: nil,
            metadataFetchedAt: clock()
        )
        if fetched.lifetime > 0 {
            try store.put(ProxyCollection.clients, clientID, record.json, ttl: fetched.lifetime)
        }
        return record
    }
}
