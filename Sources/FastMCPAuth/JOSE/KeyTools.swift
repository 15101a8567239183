/// JSON-text entry points shared by the C ABI, the CLI and other bindings, so each of them
/// stays a thin conversion layer.
public enum KeyTools {
    public static func algorithm(named name: String) throws -> JWSAlgorithm {
        guard let alg = JWSAlgorithm(name: name) else {
            if name.lowercased() == "none" { throw AuthError(.unsupportedAlgorithm, "alg none is never supported") }
            throw AuthError(
                .unsupportedAlgorithm,
                "unsupported algorithm; use one of \(JWSAlgorithm.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        return alg
    }

    static func object(_ text: String, what: String) throws -> JSONValue {
        guard let value = try? JSONValue.parse(text), case .object = value else {
            throw AuthError(.invalidArgument, "\(what) must be a JSON object")
        }
        return value
    }

    /// Signs `claimsJSON` with the private JWK `jwkJSON`; returns the compact JWS.
    public static func sign(
        claimsJSON: String,
        jwkJSON: String,
        algorithm name: String,
        headersJSON: String? = nil
    ) throws -> String {
        let alg = try algorithm(named: name)
        let claims = try object(claimsJSON, what: "claims")
        let headers = try headersJSON.map { try object($0, what: "headers").objectValue ?? [:] } ?? [:]
        let key = try JSONWebKey(jwk: try object(jwkJSON, what: "the JWK"))
        return try JWT.sign(claims: claims, key: key, algorithm: alg, extraHeaders: headers)
    }

    /// Generates a private JWK; `optionsJSON` may set "crv", "bits" and "kid".
    public static func generate(algorithm name: String, optionsJSON: String? = nil) throws -> String {
        let alg = try algorithm(named: name)
        var curve: String? = nil
        var bits: Int? = nil
        var kid: String? = nil
        if let optionsJSON {
            let options = try object(optionsJSON, what: "options").objectValue ?? [:]
            for key in options.keys where !["crv", "bits", "kid"].contains(key) {
                throw AuthError(.invalidArgument, "unknown option \"\(key)\" (crv, bits, kid)")
            }
            let reader = ConfigReader(values: options.filter { $0.value != .null })
            do {
                curve = try reader.string("crv")
                kid = try reader.string("kid")
                bits = try reader.count("bits", minimum: 0)
            } catch let error as AuthError {
                throw AuthError(.invalidArgument, error.message)
            }
        }
        return try JSONWebKey.generate(alg, curve: curve, rsaBits: bits, keyID: kid).privateJWK().serialized()
    }

    /// The public JWK of `jwkJSON`.
    public static func publicJWK(_ jwkJSON: String) throws -> String {
        try JSONWebKey(jwk: try object(jwkJSON, what: "the JWK")).publicJWK().serialized()
    }
}
