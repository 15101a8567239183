import COpenSSL

/// Verifies JWTs against a PEM key or shared secret, a static JWKS or a remote `jwks_uri`.
/// Configuration is immutable after init; the JWKS and verified-token caches are synchronized,
/// so one verifier may be shared by any number of threads.
public final class JWTVerifier: Sendable {
    public let config: JWTVerifierConfig
    private let staticKeys: KeySet?
    private let remoteKeys: RemoteKeySet?
    private let cache: VerifiedTokenCache?
    private let clock: @Sendable () -> Double

    public static let systemClock: @Sendable () -> Double = {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    public convenience init(
        json: JSONValue,
        http: HTTPClient = CurlHTTPClient(),
        clock: @escaping @Sendable () -> Double = JWTVerifier.systemClock
    ) throws {
        try self.init(config: JWTVerifierConfig(json: json), http: http, clock: clock)
    }

    public init(
        config: JWTVerifierConfig,
        http: HTTPClient = CurlHTTPClient(),
        clock: @escaping @Sendable () -> Double = JWTVerifier.systemClock
    ) throws {
        self.config = config
        self.clock = clock
        let symmetric = config.algorithms.filter { $0.isSymmetric }
        let asymmetric = config.algorithms.filter { !$0.isSymmetric }
        switch config.keySource {
        case .publicKey(let text):
            if !symmetric.isEmpty && !asymmetric.isEmpty {
                throw AuthError(.invalidConfig, "algorithms: public_key cannot serve both HS and asymmetric algorithms")
            }
            if symmetric.isEmpty {
                do {
                    staticKeys = KeySet(keys: [try JSONWebKey.parse(pem: text)])
                } catch let error as AuthError {
                    throw AuthError(error.code == .weakKey ? .weakKey : .invalidConfig, "public_key: \(error.message)")
                }
            } else {
                // FastMCP passes an HS shared secret as public_key; a PEM key is never one.
                if text.contains("-----BEGIN") {
                    throw AuthError(.invalidConfig, "public_key: a PEM key cannot be an HS shared secret")
                }
                let secret = Array(text.utf8)
                if let strongest = symmetric.max(by: { $0.digestLength < $1.digestLength }),
                    secret.count < strongest.digestLength
                {
                    throw AuthError(
                        .weakKey,
                        "public_key: the shared secret is shorter than \(strongest.rawValue)'s \(strongest.digestLength) bytes"
                    )
                }
                staticKeys = KeySet(keys: [try JSONWebKey(sharedSecret: secret)])
            }
            remoteKeys = nil
        case .jwks(let document):
            do {
                staticKeys = try KeySet(jwks: document)
            } catch let error as AuthError {
                throw AuthError(.invalidConfig, "jwks: \(error.message)")
            }
            remoteKeys = nil
        case .jwksURI(let uri):
            if !symmetric.isEmpty {
                throw AuthError(
                    .invalidConfig,
                    "algorithms: HS algorithms are never verified with keys from a remote jwks_uri"
                )
            }
            let scheme = urlScheme(uri)
            guard scheme == "https" || (scheme == "http" && isLoopbackURL(uri)), urlHost(uri) != nil else {
                throw AuthError(.invalidConfig, "jwks_uri: must be an https URL (plain http only on loopback)")
            }
            staticKeys = nil
            remoteKeys = RemoteKeySet(uri: uri, settings: config.jwks, http: http, clock: clock)
        }
        cache =
            config.cacheSize > 0
            ? VerifiedTokenCache(capacity: config.cacheSize, maxLifetime: config.cacheLifetime) : nil
    }

    /// Verifies `token` and returns its access token, or throws an AuthError with a specific
    /// code. `requiredScopes` adds to the configured ones for this call.
    public func verify(_ token: String, requiredScopes: [String] = []) throws -> AccessToken {
        let bytes = Array(token.utf8)
        guard bytes.count <= config.maxTokenBytes else {
            throw AuthError(.tooLarge, "the token exceeds \(config.maxTokenBytes) bytes")
        }
        guard !bytes.isEmpty else { throw AuthError(.malformedToken, "the token is empty") }
        let now = clock()
        var digest: [UInt8] = []
        if let cache {
            digest = try OpenSSL.sha256(bytes)
            if let hit = cache.lookup(digest, now: now) {
                if let exp = hit.expiresAt, now >= Double(exp) + config.policy.leeway { throw AuthError(.expired) }
                let missing = requiredScopes.filter { !hit.scopes.contains($0) }
                if !missing.isEmpty {
                    throw AuthError(.insufficientScope, "missing scope(s): \(missing.joined(separator: " "))")
                }
                return hit
            }
        }

        let decoded = try JWT.decode(bytes, maxDepth: config.maxJSONDepth)
        let alg = try algorithm(in: decoded.header)
        if let kid = decoded.header["kid"], kid.stringValue == nil {
            throw AuthError(.malformedHeader, "kid must be a string")
        }
        try config.policy.checkHeader(decoded.header)
        let kid = decoded.header["kid"]?.stringValue

        guard let keySet = try staticKeys ?? remoteKeys?.keySet(for: kid) else {
            throw AuthError(.internalError, "the verifier has no key source")
        }
        let candidates = try keySet.candidates(kid: kid, alg: alg)
        var verified = false
        for key in candidates where try key.verify(alg, input: decoded.signingInput, signature: decoded.signature) {
            verified = true
            break
        }
        guard verified else { throw AuthError(.badSignature) }

        let claims = try JSONValue.parseObject(
            decoded.payload,
            code: .malformedClaims,
            what: "claims",
            maxDepth: config.maxJSONDepth
        )
        // Scopes for this call are checked after caching so the entry serves every caller.
        try config.policy.checkClaims(claims, now: now)
        let accessToken = AccessToken(
            token: token,
            claims: claims,
            claimsJSON: String(decoding: decoded.payload, as: UTF8.self)
        )
        if let cache {
            let deadline = claims["exp"]?.numberValue.map { $0 + config.policy.leeway }
            cache.store(digest, accessToken, now: now, expiresBy: deadline)
        }
        let missing = requiredScopes.filter { !accessToken.scopes.contains($0) }
        if !missing.isEmpty {
            throw AuthError(.insufficientScope, "missing scope(s): \(missing.joined(separator: " "))")
        }
        return accessToken
    }

    /// The header's `alg`, if it names an algorithm this verifier allows. `none` in any
    /// spelling is never allowed.
    private func algorithm(in header: [String: JSONValue]) throws -> JWSAlgorithm {
        guard let value = header["alg"] else { throw AuthError(.malformedHeader, "alg is missing") }
        guard let name = value.stringValue else { throw AuthError(.malformedHeader, "alg must be a string") }
        if name.lowercased() == "none" {
            throw AuthError(.algNotAllowed, "unsigned tokens (alg none) are never accepted")
        }
        guard let alg = JWSAlgorithm(name: name) else {
            throw AuthError(.algNotAllowed, "the token's algorithm is not supported")
        }
        guard config.algorithms.contains(alg) else {
            throw AuthError(.algNotAllowed, "\(alg.rawValue) is not in the allowed algorithms")
        }
        return alg
    }
}
