import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The token endpoint (code redemption and refresh rotation, each the driver of its state
/// machine) and RFC 7009 revocation.
extension OAuthProxy {
    func token(_ request: AuthRequest) throws -> AuthResponse {
        guard let form = Form.decode(String(decoding: request.body, as: UTF8.self)),
            form.allSatisfy({ $0.1.utf8.count <= Self.maxParameterBytes })
        else {
            throw OAuthError.invalidRequest("The form is malformed.")
        }
        let parameters = Parameters(form)
        if parameters.hasDuplicates { throw OAuthError.invalidRequest("A parameter is repeated.") }
        let clientID = try authenticateClient(parameters, authorization: request.header("Authorization"))
        if let resource = parameters["resource"], !Self.sameResource(resource, config.resourceURL) {
            throw OAuthError.invalidTarget("The resource is not served by this authorization server.")
        }
        switch parameters["grant_type"] {
        case "authorization_code": return try exchangeCode(parameters, clientID: clientID)
        case "refresh_token": return try refresh(parameters, clientID: clientID)
        case nil: throw OAuthError.invalidRequest("grant_type is required.")
        default: throw OAuthError.unsupportedGrantType("Only authorization_code and refresh_token are supported.")
        }
    }

    /// Public clients: client_id in the form (or HTTP Basic with an empty secret); an empty
    /// `client_secret=` is tolerated, as the mcp client sends one. Returns the client id.
    func authenticateClient(_ parameters: Parameters, authorization: String?) throws -> String {
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
                throw OAuthError.invalidClient("The client credentials are malformed.", basic: true)
            }
            if let clientID, clientID != id { throw OAuthError.invalidClient("Two different client ids.") }
            clientID = id
            secret = password
        }
        guard let clientID, let known = try client(clientID) else {
            throw OAuthError.invalidClient("The client is not registered (or its registration expired).")
        }
        if let secret, !secret.isEmpty { throw OAuthError.invalidClient("This client is public: it has no secret.") }
        return known.clientID
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

    // MARK: - Code redemption

    func exchangeCode(_ parameters: Parameters, clientID: String) throws -> AuthResponse {
        guard let code = parameters["code"], !code.isEmpty, code.utf8.count <= 128 else {
            throw OAuthError.invalidRequest("code is required.")
        }
        let verifier = parameters["code_verifier"].flatMap { Self.validVerifier($0) ? $0 : nil }
        let presentation = CodeRedemption.Presentation(
            clientID: clientID,
            redirectURI: parameters["redirect_uri"],
            verifierChallenge: try verifier.map { Base64URL.encode(try OpenSSL.sha256(Array($0.utf8))) },
            verifierHash: try verifier.map { try OpenSSL.sha256Hex($0) },
            resource: parameters["resource"],
            now: clock()
        )
        let redemptionKey = try OpenSSL.sha256Hex(code)
        func redemption() throws -> CodeRedemption.Redemption? {
            try store.get(ProxyCollection.codeRedemptions, redemptionKey).flatMap(CodeRedemption.Redemption.init(json:))
        }
        var state: CodeRedemption.State
        if let stored = try store.get(ProxyCollection.codes, code), let record = AuthorizationCode(json: stored),
            record.code == code
        {
            state = .issued(record)
        } else {
            state = try redemption().map { .redeemed($0) } ?? .unknown
        }
        for _ in 0..<2 {
            switch CodeRedemption.decide(state, presentation) {
            case .refuse(let error, let description):
                throw OAuthError(400, error, description)
            case .refuseDuplicate:
                throw OAuthError.invalidGrant("The authorization code was already used.")
            case .revokeAndRefuse(let upstreamTokenID):
                try markRedemptionRevoked(redemptionKey)
                try revokeGrant(upstreamTokenID: upstreamTokenID)
                log("oauth proxy: an authorization code was replayed; its grant is revoked")
                throw OAuthError.invalidGrant("The authorization code was already used.")
            case .redeem(let record):
                let claim = CodeRedemption.Redemption(
                    clientID: clientID,
                    verifierHash: presentation.verifierHash ?? "",
                    redeemedAt: presentation.now,
                    upstreamTokenID: try random(24)
                )
                // The one atomic step: of concurrent redemptions, one claims the code. (A claim
                // whose reply was lost is recognised by its grant id.)
                let claimed = try store.putIfAbsent(
                    ProxyCollection.codeRedemptions,
                    redemptionKey,
                    claim.json,
                    ttl: max(config.codeLifetime, CodeRedemption.duplicateWindow)
                )
                guard try claimed || redemption()?.upstreamTokenID == claim.upstreamTokenID else {
                    state = try redemption().map { .redeemed($0) } ?? .unknown
                    continue
                }
                do {
                    let response = try issueForCode(
                        record,
                        upstreamTokenID: claim.upstreamTokenID,
                        redemptionKey: redemptionKey
                    )
                    // Used up only once its tokens exist.
                    _ = try? store.delete(ProxyCollection.codes, code)
                    return response
                } catch let refusal as OAuthError {
                    throw refusal
                } catch {
                    // Nothing was issued (the store failed midway): the code stays redeemable.
                    _ = try? store.compareAndDelete(
                        ProxyCollection.codeRedemptions,
                        redemptionKey,
                        expected: claim.json
                    )
                    throw error
                }
            }
        }
        throw OAuthError.invalidGrant("The authorization code is invalid, expired or already used.")
    }

    private func markRedemptionRevoked(_ key: String) throws {
        for _ in 0..<3 {
            guard let stored = try store.get(ProxyCollection.codeRedemptions, key),
                var redemption = CodeRedemption.Redemption(json: stored)
            else { return }
            if redemption.revoked { return }
            redemption.revoked = true
            if try store.compareAndSwap(
                ProxyCollection.codeRedemptions,
                key,
                expected: stored,
                new: redemption.json,
                ttl: max(config.codeLifetime, CodeRedemption.duplicateWindow)
            ) {
                return
            }
        }
    }

    /// The grant a redeemed code opens: the upstream token set and our first token pair.
    private func issueForCode(
        _ code: AuthorizationCode,
        upstreamTokenID: String,
        redemptionKey: String
    ) throws
        -> AuthResponse
    {
        let now = clock()
        let upstream = code.upstreamTokens
        let refreshExpires = upstream["refresh_expires_in"].map {
            now + Self.lifetime($0, default: config.refreshTokenLifetime)
        }
        let tokenSet = UpstreamTokenSet(
            id: upstreamTokenID,
            accessToken: upstream["access_token"]?.stringValue ?? "",
            refreshToken: upstream["refresh_token"]?.stringValue,
            refreshTokenExpiresAt: refreshExpires,
            expiresAt: now + Self.lifetime(upstream["expires_in"], default: config.accessTokenLifetime),
            tokenType: upstream["token_type"]?.stringValue ?? "Bearer",
            scope: code.scopes.joined(separator: " "),
            clientID: code.clientID,
            createdAt: now,
            rawTokenData: upstream.filter { $0.key != "access_token" && $0.key != "refresh_token" }
        )
        try storeTokenSet(tokenSet)
        let issued = try issueTokens(clientID: code.clientID, scopes: code.scopes, tokenSet: tokenSet)
        // A replay may have revoked the grant while it was being issued: then it stays revoked.
        if let stored = try store.get(ProxyCollection.codeRedemptions, redemptionKey),
            CodeRedemption.Redemption(json: stored)?.revoked == true
        {
            try revokeGrant(upstreamTokenID: upstreamTokenID)
            throw OAuthError.invalidGrant("The authorization code was already used.")
        }
        return Self.tokenResponse(issued.body)
    }

    // MARK: - Refresh rotation

    func refresh(_ parameters: Parameters, clientID: String) throws -> AuthResponse {
        guard let presented = parameters["refresh_token"], !presented.isEmpty else {
            throw OAuthError.invalidRequest("refresh_token is required.")
        }
        guard let claims = try? verifier.verify(presented).claims, claims["token_use"]?.stringValue == "refresh",
            let jti = claims["jti"]?.stringValue
        else {
            throw OAuthError.invalidGrant("The refresh token is invalid or expired.")
        }
        guard claims["client_id"]?.stringValue == clientID else {
            throw OAuthError.invalidGrant("The refresh token was issued to another client.")
        }
        let key = try OpenSSL.sha256Hex(presented)
        var claim = RefreshRotation.Record.claim(clientID: clientID, now: clock())
        var state = try rotationState(key, claim: &claim)
        let deadline = clock() + min(config.timeout, 10)
        var waits = 0
        while true {
            switch RefreshRotation.decide(
                state,
                clientID: clientID,
                now: clock(),
                gracePeriod: config.refreshGracePeriod
            ) {
            case .refuse(let description):
                if case .claimed = state {
                    _ = try store.compareAndDelete(ProxyCollection.refreshRotations, key, expected: claim.json)
                }
                throw OAuthError.invalidGrant(description)
            case .revokeGrant(let upstreamTokenID):
                if let upstreamTokenID {
                    try revokeGrant(upstreamTokenID: upstreamTokenID)
                } else {
                    try revokeGrant(ofJTI: jti)
                }
                // Leave a final record, so later uses are refused at once instead of waiting.
                var revoked = claim
                revoked.phase = .revoked
                try store.put(ProxyCollection.refreshRotations, key, revoked.json, ttl: rotationRecordLifetime(claims))
                log("oauth proxy: a refresh token that is not live was used; its grant is revoked")
                throw OAuthError.invalidGrant("The refresh token was already used or revoked.")
            case .wait:
                // Another request is rotating this token: its successor is on the way.
                waits += 1
                guard clock() < deadline, waits < 500 else { throw OAuthError.temporarilyUnavailable }
                let waiting = Self.rotationWaiters.wrappingAdd(1, ordering: .relaxed).newValue
                defer { Self.rotationWaiters.wrappingSubtract(1, ordering: .relaxed) }
                guard waiting <= Self.maxRotationWaiters else { throw OAuthError.temporarilyUnavailable }
                usleep(20_000)
                state = try rotationState(key, claim: &claim)
            case .serveSuccessor(let record):
                var served = record
                served.replays += 1
                if try store.compareAndSwap(
                    ProxyCollection.refreshRotations,
                    key,
                    expected: record.json,
                    new: served.json,
                    ttl: rotationRecordLifetime(claims)
                ) {
                    let sealed = try store.get(ProxyCollection.refreshSuccessors, key)?["successor"]?.stringValue
                    return Self.tokenResponse(try successor(of: presented, sealed: sealed ?? ""))
                }
                state = try rotationState(key, claim: &claim)
            case .rotate(let record):
                do {
                    return try rotate(
                        presented,
                        record: record,
                        claims: claims,
                        parameters: parameters,
                        claim: claim,
                        key: key
                    )
                } catch {
                    // Nothing was rotated: free the claim so the client can try again.
                    _ = try? store.compareAndDelete(ProxyCollection.refreshRotations, key, expected: claim.json)
                    throw error
                }
            }
        }
    }

    /// A rotation record stays as long as the old token could still be presented (until its
    /// `exp`), so any replay after the window finds it and revokes the grant.
    func rotationRecordLifetime(_ claims: [String: JSONValue]) -> Double {
        let left = (claims["exp"]?.numberValue ?? 0) - clock()
        let lifetime = max(config.refreshGracePeriod + 60, left.isFinite ? left : 0)
        return min(lifetime, Store.maxTTL)
    }

    /// The one atomic step that decides who rotates: put-if-absent of the rotation record (the
    /// claim). Whoever finds a record instead learns how far that rotation is.
    private func rotationState(_ key: String, claim: inout RefreshRotation.Record) throws -> RefreshRotation.State {
        for _ in 0..<3 {
            claim.startedAt = clock()
            if try store.putIfAbsent(ProxyCollection.refreshRotations, key, claim.json, ttl: config.timeout * 2 + 5) {
                return .claimed(try store.get(ProxyCollection.refreshTokens, key).flatMap(RefreshRecord.init(json:)))
            }
            guard let stored = try store.get(ProxyCollection.refreshRotations, key) else {
                continue  // it expired between the two steps: claim again
            }
            guard let record = RefreshRotation.Record(json: stored) else {
                log("oauth proxy: a refresh rotation record is unreadable")
                throw OAuthError.temporarilyUnavailable
            }
            return record.phase == .rotating ? .rotating(record) : .rotated(record)
        }
        throw OAuthError.temporarilyUnavailable
    }

    /// Requests waiting for another's rotation, process-wide: past the cap, a waiter is told to
    /// retry instead of holding a thread.
    static let rotationWaiters = Atomic(0)
    static let maxRotationWaiters = 64

    /// Mints the successor of a live refresh token, records it encrypted under a key derived
    /// from the old token, and retires the old token.
    private func rotate(
        _ presented: String,
        record: RefreshRecord,
        claims: [String: JSONValue],
        parameters: Parameters,
        claim: RefreshRotation.Record,
        key: String
    ) throws -> AuthResponse {
        let jti = claims["jti"]?.stringValue ?? ""
        // FastMCP's records name no grant: it is found through the refresh token's jti mapping.
        guard let upstreamID = try record.upstreamTokenID ?? jtiMapping(jti)?.upstreamTokenID,
            var tokenSet = try upstreamTokenSet(upstreamID)
        else {
            throw OAuthError.invalidGrant("The grant has been revoked.")
        }
        // Refresh only narrows: within what this token carries and what the grant still allows.
        let granted = record.scopes.filter(tokenSet.scopes.contains)
        guard let scopes = ScopePolicy.narrowed(parameters["scope"], within: granted) else {
            throw OAuthError.invalidScope("A refresh may only narrow the granted scope.")
        }
        do {
            // An upstream outage here is a 503 to retry: the grant stays as it is.
            tokenSet = try refreshUpstreamIfDue(tokenSet, mustBeUsable: true)
        } catch let error as AuthError where error.code == .tokenRevoked {
            throw OAuthError.invalidGrant("The grant has been revoked.")
        }
        if tokenSet.refreshToken == nil, clock() >= tokenSet.expiresAt {
            throw OAuthError.invalidGrant("The upstream sign-in has expired; sign in again.")
        }
        let issued = try issueTokens(clientID: record.clientID, scopes: scopes, tokenSet: tokenSet)
        var rotated = claim
        rotated.phase = .rotated
        rotated.upstreamTokenID = tokenSet.id
        rotated.rotatedAt = clock()
        if config.refreshGracePeriod > 0 {
            try store.put(
                ProxyCollection.refreshSuccessors,
                key,
                ["successor": .string(try seal(issued.body, for: presented))],
                ttl: config.refreshGracePeriod + 5
            )
        }
        let recorded = try store.compareAndSwap(
            ProxyCollection.refreshRotations,
            key,
            expected: claim.json,
            new: rotated.json,
            ttl: rotationRecordLifetime(claims)
        )
        // A swap whose reply was lost may have happened: then the record already says so.
        guard try recorded || store.get(ProxyCollection.refreshRotations, key) == rotated.json else {
            // Our claim expired under us and someone else took over: ours must not live on.
            _ = try store.delete(ProxyCollection.refreshTokens, try OpenSSL.sha256Hex(issued.refreshToken))
            throw OAuthError.temporarilyUnavailable
        }
        // The old token is retired only now, after the successor is recorded.
        _ = try store.delete(ProxyCollection.refreshTokens, key)
        try keepClientRegistered(record.clientID)
        _ = try store.delete(ProxyCollection.jtiMappings, jti)
        if let accessJTI = record.accessJTI { _ = try store.delete(ProxyCollection.jtiMappings, accessJTI) }
        return Self.tokenResponse(issued.body)
    }

    /// A registered client in use keeps its registration: when less than half its lifetime is
    /// left, the clock starts again (metadata-document clients follow their document's caching).
    private func keepClientRegistered(_ clientID: String) throws {
        guard case .seconds(let left) = try store.ttl(ProxyCollection.clients, clientID),
            left < config.clientLifetime / 2,
            let stored = try store.get(ProxyCollection.clients, clientID), let client = ClientRecord(json: stored),
            !client.isVerifiedByMetadataDocument
        else { return }
        _ = try store.compareAndSwap(
            ProxyCollection.clients,
            clientID,
            expected: stored,
            new: stored,
            ttl: config.clientLifetime
        )
    }

    /// The successor token response, encrypted under a Fernet key derived (HKDF-SHA256) from the
    /// old refresh token: the store alone (which holds only the old token's hash) cannot open it.
    private func seal(_ body: [String: JSONValue], for presented: String) throws -> String {
        try successorCipher(presented).encrypt(Array(JSONValue.object(body).serialized().utf8))
    }

    private func successor(of presented: String, sealed: String) throws -> [String: JSONValue] {
        guard let plaintext = try? successorCipher(presented).decrypt(sealed, ttl: nil),
            let body = (try? JSONValue.parse(plaintext))?.objectValue
        else {
            throw OAuthError.invalidGrant("The refresh token was already used; the grant is unchanged.")
        }
        return body
    }

    private func successorCipher(_ presented: String) throws -> Fernet {
        let key = try ProxyKeys.hkdfSHA256(
            key: Array(presented.utf8),
            salt: Array("fastmcpauth-refresh-successor".utf8),
            info: Array("Fernet".utf8),
            length: 32
        )
        return try Fernet(key: Base64.encode(key, alphabet: .urlSafe))
    }

    // MARK: - Revocation (RFC 7009)

    func revoke(_ request: AuthRequest) throws -> AuthResponse {
        guard let form = Form.decode(String(decoding: request.body, as: UTF8.self)) else {
            throw OAuthError.invalidRequest("The form is malformed.")
        }
        let parameters = Parameters(form)
        let clientID = try authenticateClient(parameters, authorization: request.header("Authorization"))
        guard let token = parameters["token"], !token.isEmpty else {
            throw OAuthError.invalidRequest("token is required.")
        }
        // Tokens that are not ours, or no longer valid, need no revoking (RFC 7009 §2.2).
        if let claims = try? verifier.verify(token).claims, claims["client_id"]?.stringValue == clientID,
            let jti = claims["jti"]?.stringValue
        {
            if claims["token_use"]?.stringValue == "refresh" {
                try revokeGrant(ofJTI: jti)
                _ = try store.delete(ProxyCollection.refreshTokens, try OpenSSL.sha256Hex(token))
            } else {
                _ = try store.delete(ProxyCollection.jtiMappings, jti)
            }
        }
        return Responses.json(
            200,
            .object([:]),
            headers: ["Cache-Control": "no-store", "Access-Control-Allow-Origin": "*"]
        )
    }
}
