import Synchronization

/// Verifies opaque or remote-checked tokens by asking the authorization server: RFC 7662
/// introspection (client credentials in HTTP Basic) or WorkOS's userinfo endpoint. Results are
/// cached by the token's SHA-256 (bounded, never past the token's `exp`, at most `cacheLifetime`).
/// Thread-safe; each check blocks on the network, so hosts call it off their event loops.
public final class RemoteTokenVerifier: Sendable {
    public enum Method: Sendable {
        /// POST token=…&token_type_hint=access_token to the introspection endpoint.
        case introspection(url: String, clientID: String, clientSecret: String)
        /// GET the userinfo endpoint with the token as bearer; 200 means valid.
        case userinfo(url: String)
    }

    let method: Method
    let timeout: Double
    /// When an answer carries `aud`, it must name one of these (else invalid_audience).
    let audiences: [String]
    let http: HTTPClient
    let clock: @Sendable () -> Double
    private let cache: VerifiedTokenCache
    private let rejected: VerifiedTokenCache

    public init(
        method: Method,
        timeout: Double = 10,
        cacheSize: Int = 10_000,
        cacheLifetime: Double = 60,
        audiences: [String] = [],
        http: HTTPClient = CurlHTTPClient(),
        clock: @escaping @Sendable () -> Double = JWTVerifier.systemClock
    ) throws {
        let url: String
        switch method {
        case .introspection(let u, _, _), .userinfo(let u): url = u
        }
        let scheme = urlScheme(url)
        guard scheme == "https" || (scheme == "http" && isLoopbackURL(url)), urlHost(url) != nil else {
            throw AuthError(
                .invalidConfig,
                "the introspection or userinfo URL must be https (plain http only on loopback)"
            )
        }
        self.method = method
        self.timeout = timeout
        self.audiences = audiences
        self.http = http
        self.clock = clock
        cache = VerifiedTokenCache(capacity: max(cacheSize, 1), maxLifetime: cacheLifetime)
        // A refused token is remembered briefly too, so a flood of one bad token is one request.
        rejected = VerifiedTokenCache(capacity: max(cacheSize / 10, 1), maxLifetime: min(cacheLifetime, 10))
    }

    public func verify(_ token: String, requiredScopes: [String] = []) throws -> AccessToken {
        let bytes = Array(token.utf8)
        guard !bytes.isEmpty, bytes.count <= 16 * 1024 else {
            throw AuthError(bytes.isEmpty ? .malformedToken : .tooLarge)
        }
        let digest = try OpenSSL.sha256(bytes)
        let now = clock()
        let access: AccessToken
        if let hit = cache.lookup(digest, now: now) {
            access = hit
        } else if rejected.lookup(digest, now: now) != nil {
            throw AuthError(.tokenRevoked, "the authorization server does not accept the token")
        } else {
            do {
                access = try check(token, now: now)
            } catch let error as AuthError where error.code == .tokenRevoked || error.code == .expired {
                rejected.store(digest, AccessToken(token: "", claims: [:]), now: now, expiresBy: nil)
                throw error
            }
            cache.store(digest, access, now: now, expiresBy: access.expiresAt.map(Double.init))
        }
        if let exp = access.expiresAt, now >= Double(exp) { throw AuthError(.expired) }
        let missing = requiredScopes.filter { !access.scopes.contains($0) }
        if !missing.isEmpty {
            throw AuthError(.insufficientScope, "missing scope(s): \(missing.joined(separator: " "))")
        }
        return access
    }

    private func check(_ token: String, now: Double) throws -> AccessToken {
        let response: HTTPResponse
        do {
            switch method {
            case .introspection(let url, let clientID, let clientSecret):
                let credentials = Base64.encode(
                    Array("\(Form.encode(clientID)):\(Form.encode(clientSecret))".utf8),
                    alphabet: .standard
                )
                response = try http.send(
                    HTTPRequest(
                        method: "POST",
                        url: url,
                        headers: [
                            ("Authorization", "Basic " + credentials),
                            ("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json"),
                        ],
                        body: Array("token=\(Form.encode(token))&token_type_hint=access_token".utf8),
                        timeout: timeout,
                        maxResponseBytes: 64 * 1024
                    )
                )
            case .userinfo(let url):
                response = try http.send(
                    HTTPRequest(
                        url: url,
                        headers: [("Authorization", "Bearer " + token), ("Accept", "application/json")],
                        timeout: timeout,
                        maxResponseBytes: 64 * 1024
                    )
                )
            }
        } catch {
            throw AuthError(.upstreamUnavailable, "the authorization server could not be reached")
        }
        switch method {
        case .introspection:
            guard response.status == 200, let body = try? JSONValue.parse(response.body).objectValue else {
                throw AuthError(.upstreamUnavailable, "the introspection endpoint answered HTTP \(response.status)")
            }
            guard body["active"] == .bool(true) else { throw AuthError(.tokenRevoked, "the token is not active") }
            try checkAudience(body)
            var policy = ClaimsPolicy()
            policy.requireExpiration = false
            try policy.checkClaims(body, now: now)
            return AccessToken(token: token, claims: body)
        case .userinfo:
            if response.status == 401 || response.status == 403 {
                throw AuthError(.tokenRevoked, "the userinfo endpoint refused the token")
            }
            guard response.status == 200, var claims = try? JSONValue.parse(response.body).objectValue else {
                throw AuthError(.upstreamUnavailable, "the userinfo endpoint answered HTTP \(response.status)")
            }
            try checkAudience(claims)
            // Userinfo proves the token valid; its scopes and expiry come from the token itself
            // when it is a JWT (WorkOS access tokens are).
            if let payload = RemoteTokenVerifier.unverifiedClaims(token) {
                for name in ["scope", "scp", "exp", "client_id", "azp"] where claims[name] == nil {
                    claims[name] = payload[name]
                }
            }
            return AccessToken(token: token, claims: claims)
        }
    }

    /// An answer's `aud`, when present, must name one of our audiences: a token issued for
    /// another resource is not ours to accept, whatever the server says about its validity.
    private func checkAudience(_ answer: [String: JSONValue]) throws {
        guard let aud = answer["aud"] else { return }
        guard let names = aud.stringOrStringArray else {
            throw AuthError(.invalidClaim, "aud must be a string or an array of strings")
        }
        guard names.contains(where: { name in audiences.contains { OAuthProxy.sameResource($0, name) } }) else {
            throw AuthError(.invalidAudience, "the token was issued for another audience")
        }
    }

    /// A JWT's claims without verification (used only after the server vouched for the token).
    static func unverifiedClaims(_ token: String) -> [String: JSONValue]? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let payload = Base64URL.decode(Array(parts[1].utf8)) else { return nil }
        return (try? JSONValue.parse(payload))?.objectValue
    }
}
