/// A set of verification keys, from a JWKS document (RFC 7517 §5) or a single key.
public struct KeySet: Sendable {
    public let keys: [JSONWebKey]

    public init(keys: [JSONWebKey]) { self.keys = keys }

    /// Parses a JWKS. Keys of unsupported types are skipped (a JWKS may carry encryption keys);
    /// a set with no usable key is an error.
    public init(jwks: JSONValue) throws {
        guard let entries = jwks["keys"]?.arrayValue else {
            throw AuthError(.invalidKey, "a JWKS must be an object with a \"keys\" array")
        }
        var keys = [JSONWebKey]()
        for entry in entries {
            if let key = try? JSONWebKey(jwk: entry) { keys.append(key) }
        }
        guard !keys.isEmpty else { throw AuthError(.invalidKey, "the JWKS contains no usable key") }
        self.keys = keys
    }

    public init(jwksText: String) throws {
        let value: JSONValue
        do { value = try JSONValue.parse(jwksText) } catch {
            throw AuthError(.invalidKey, "the JWKS is not valid JSON")
        }
        try self.init(jwks: value)
    }

    func contains(kid: String) -> Bool { keys.contains { $0.keyID == kid } }

    /// The keys that may verify a token with this `kid` and `alg`. A token kid selects the keys
    /// carrying it, else the keys that have no kid at all (a PEM key, a shared secret).
    /// key_not_found: nothing carries that kid (or, without a kid, nothing fits the alg);
    /// key_type_mismatch: the kid names a key that cannot verify this alg.
    func candidates(kid: String?, alg: JWSAlgorithm) throws -> [JSONWebKey] {
        var named = keys
        if let kid {
            named = keys.filter { $0.keyID == kid }
            if named.isEmpty { named = keys.filter { $0.keyID == nil } }
        }
        if named.isEmpty { throw AuthError(.keyNotFound, "no key has the token's kid") }
        let usable = named.filter { $0.fits(alg) && $0.permits(alg, operation: "verify") }
        if usable.isEmpty {
            if kid != nil { throw AuthError(.keyTypeMismatch, "the key named by kid cannot verify \(alg.rawValue)") }
            throw AuthError(.keyNotFound, "no key can verify \(alg.rawValue)")
        }
        return usable
    }
}
