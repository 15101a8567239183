#if canImport(Glibc)
import Glibc
#endif

/// Grants: the upstream token set that every token of one authorization belongs to, the tokens
/// we issue for it, and its end.
extension OAuthProxy {
    func jtiMapping(_ jti: String) throws -> JTIMapping? {
        guard !jti.isEmpty, jti.utf8.count <= 256 else { return nil }
        return try store.get(ProxyCollection.jtiMappings, jti).flatMap(JTIMapping.init(json:))
    }

    func upstreamTokenSet(_ id: String) throws -> UpstreamTokenSet? {
        try storedTokenSet(id)?.record
    }

    /// The token set and the object stored for it (what a compare-and-swap expects).
    func storedTokenSet(_ id: String) throws -> (record: UpstreamTokenSet, stored: [String: JSONValue])? {
        guard !id.isEmpty, id.utf8.count <= 256 else { return nil }
        guard let object = try store.get(ProxyCollection.upstreamTokens, id) else { return nil }
        guard let tokenSet = UpstreamTokenSet(json: object) else {
            log("oauth proxy: an upstream token set is unreadable; treated as revoked")
            return nil
        }
        return (tokenSet, object)
    }

    func storeTokenSet(_ tokenSet: UpstreamTokenSet) throws {
        try store.put(ProxyCollection.upstreamTokens, tokenSet.id, tokenSet.json, ttl: config.refreshTokenLifetime)
    }

    /// Without an upstream refresh token, our access token cannot outlive the upstream one.
    func accessLifetime(for tokenSet: UpstreamTokenSet) -> Double {
        guard tokenSet.refreshToken == nil else { return config.accessTokenLifetime }
        return max(1, min(config.accessTokenLifetime, tokenSet.expiresAt - clock()))
    }

    struct IssuedTokens {
        /// The token response body.
        var body: [String: JSONValue]
        var refreshToken: String
    }

    /// A new access and refresh token pair for one grant, with its mappings and refresh record.
    func issueTokens(clientID: String, scopes: [String], tokenSet: UpstreamTokenSet) throws -> IssuedTokens {
        let now = clock()
        let accessLifetime = accessLifetime(for: tokenSet)
        let accessJTI = try random(24)
        let refreshJTI = try random(24)
        let scope = scopes.joined(separator: " ")
        let common: [String: JSONValue] = [
            "iss": .string(config.issuer), "aud": .string(config.resourceURL), "client_id": .string(clientID),
            "scope": .string(scope), "iat": .int(Self.seconds(now)),
        ]
        var accessClaims = common
        accessClaims["exp"] = .int(Self.seconds(now + accessLifetime))
        accessClaims["jti"] = .string(accessJTI)
        var refreshClaims = common
        refreshClaims["exp"] = .int(Self.seconds(now + config.refreshTokenLifetime))
        refreshClaims["jti"] = .string(refreshJTI)
        refreshClaims["token_use"] = "refresh"
        let accessToken = try JWT.sign(claims: .object(accessClaims), key: signingJWK, algorithm: .HS256)
        let refreshToken = try JWT.sign(claims: .object(refreshClaims), key: signingJWK, algorithm: .HS256)
        try store.put(
            ProxyCollection.jtiMappings,
            accessJTI,
            JTIMapping(jti: accessJTI, upstreamTokenID: tokenSet.id, createdAt: now).json,
            ttl: accessLifetime
        )
        try store.put(
            ProxyCollection.jtiMappings,
            refreshJTI,
            JTIMapping(jti: refreshJTI, upstreamTokenID: tokenSet.id, createdAt: now).json,
            ttl: config.refreshTokenLifetime
        )
        let record = RefreshRecord(
            clientID: clientID,
            scopes: scopes,
            expiresAt: now + config.refreshTokenLifetime,
            createdAt: now,
            upstreamTokenID: tokenSet.id,
            accessJTI: accessJTI
        )
        try store.put(
            ProxyCollection.refreshTokens,
            try OpenSSL.sha256Hex(refreshToken),
            record.json,
            ttl: config.refreshTokenLifetime
        )
        var body: [String: JSONValue] = [
            "access_token": .string(accessToken), "token_type": "Bearer",
            "expires_in": .int(Self.seconds(accessLifetime)),
            "refresh_token": .string(refreshToken),
        ]
        if !scope.isEmpty { body["scope"] = .string(scope) }
        return IssuedTokens(body: body, refreshToken: refreshToken)
    }

    /// Whole seconds of a finite, bounded time (configured lifetimes are bounded; never traps).
    static func seconds(_ value: Double) -> Int64 {
        guard value.isFinite, abs(value) < 9e15 else { return 0 }
        return Int64(value.rounded(.down))
    }

    /// A token response as it goes to the client.
    static func tokenResponse(_ body: [String: JSONValue]) -> AuthResponse {
        // Browser-based MCP clients call /token cross-origin: public clients, no cookies involved.
        Responses.json(
            200,
            .object(body),
            headers: ["Cache-Control": "no-store", "Pragma": "no-cache", "Access-Control-Allow-Origin": "*"]
        )
    }

    /// Ends a whole grant: the upstream token set goes (so every token of the grant is refused at
    /// once) and the upstream revocation endpoint is told when configured.
    func revokeGrant(upstreamTokenID: String) throws {
        guard let object = try store.take(ProxyCollection.upstreamTokens, upstreamTokenID) else { return }
        log("oauth proxy: a grant was revoked")
        if let tokenSet = UpstreamTokenSet(json: object) { revokeUpstream(tokenSet) }
    }

    /// Tells the upstream revocation endpoint (when configured) to end these tokens.
    func revokeUpstream(_ tokenSet: UpstreamTokenSet) {
        guard let endpoint = config.upstreamRevocationEndpoint else { return }
        let (token, hint) =
            tokenSet.refreshToken.map { ($0, "refresh_token") } ?? (tokenSet.accessToken, "access_token")
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

    /// The grant of one of our tokens (by its `jti` mapping), revoked; nothing when unknown.
    func revokeGrant(ofJTI jti: String) throws {
        if let mapping = try jtiMapping(jti) { try revokeGrant(upstreamTokenID: mapping.upstreamTokenID) }
    }

    /// Refreshes the upstream token when it is near expiry and refreshable; one refresh at a time
    /// per grant, across processes (a store lease). Returns the token set to use. With
    /// `mustBeUsable`, an expired upstream token that cannot be renewed because the upstream
    /// cannot be reached is `upstream_unavailable`; an upstream that refuses the renewal
    /// (`invalid_grant`) ends the grant (`token_revoked`).
    func refreshUpstreamIfDue(_ tokenSet: UpstreamTokenSet, mustBeUsable: Bool) throws -> UpstreamTokenSet {
        guard tokenSet.refreshToken != nil, tokenSet.expiresAt - clock() < config.upstreamRefreshMargin else {
            return tokenSet
        }
        func unusable(_ current: UpstreamTokenSet) throws -> UpstreamTokenSet {
            if mustBeUsable, clock() >= current.expiresAt {
                throw AuthError(.upstreamUnavailable, "the upstream token expired and could not be renewed")
            }
            return current
        }
        let leaseName = "upstream-refresh:" + tokenSet.id
        var holder: String? = nil
        for _ in 0..<40 {
            holder = try store.acquireLease(leaseName, ttl: config.timeout + 5)
            if holder != nil { break }
            usleep(50_000)
            // Another process may have finished the refresh meanwhile.
            if let current = try upstreamTokenSet(tokenSet.id),
                current.expiresAt - clock() >= config.upstreamRefreshMargin
            {
                return current
            }
        }
        guard let holder else { return try unusable(tokenSet) }
        defer { _ = try? store.releaseLease(leaseName, holder: holder) }
        guard let loaded = try storedTokenSet(tokenSet.id) else {
            throw AuthError(.tokenRevoked, "the grant has been revoked")
        }
        var current = loaded.record
        if current.expiresAt - clock() >= config.upstreamRefreshMargin { return current }
        guard let refreshToken = current.refreshToken else { return try unusable(current) }
        let renewed: [String: JSONValue]
        do {
            renewed = try upstreamTokenRequest([("grant_type", "refresh_token"), ("refresh_token", refreshToken)])
        } catch UpstreamFailure.refused(let code) where code == "invalid_grant" {
            log("oauth proxy: the upstream refused to renew a grant (invalid_grant); the grant is revoked")
            try revokeGrant(upstreamTokenID: current.id)
            throw AuthError(.tokenRevoked, "the upstream provider ended the grant")
        } catch let failure as UpstreamFailure {
            log("oauth proxy: the upstream refresh failed: \(failure)")
            return try unusable(current)
        }
        let now = clock()
        if let access = renewed["access_token"]?.stringValue { current.accessToken = access }
        if let rotated = renewed["refresh_token"]?.stringValue { current.refreshToken = rotated }
        current.expiresAt = now + Self.lifetime(renewed["expires_in"], default: config.accessTokenLifetime)
        if let scope = renewed["scope"]?.stringValue {
            current.scope = scopes.confined(current.scopes, byUpstream: scope).joined(separator: " ")
        }
        current.rawTokenData = renewed.filter { $0.key != "access_token" && $0.key != "refresh_token" }
        // Written back only over what was read: a grant revoked during the upstream round trip
        // stays revoked (and the tokens just obtained are handed back to the upstream).
        if try store.compareAndSwap(
            ProxyCollection.upstreamTokens,
            current.id,
            expected: loaded.stored,
            new: current.json,
            ttl: config.refreshTokenLifetime
        ) {
            return current
        }
        guard let now = try upstreamTokenSet(current.id) else {
            revokeUpstream(current)
            throw AuthError(.tokenRevoked, "the grant was revoked while it was being renewed")
        }
        return now
    }

    /// An upstream `expires_in`: a positive number of seconds, at most 10 years; else the default.
    static func lifetime(_ value: JSONValue?, default fallback: Double) -> Double {
        guard let seconds = value?.numberValue, seconds.isFinite, seconds > 0 else { return fallback }
        return min(seconds, Store.maxTTL)
    }
}
