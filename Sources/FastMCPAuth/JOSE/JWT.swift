/// Compact JWS serialization (RFC 7515 §7.1) of JWTs: signing, and the strict structural decode
/// the verifier starts from.
public enum JWT {
    /// Signs `claims` with `key`. The header is `{"alg", "typ": "JWT", "kid"}` (kid when the key
    /// has one) merged with `extraHeaders`, which cannot override `alg`.
    public static func sign(
        claims: JSONValue,
        key: JSONWebKey,
        algorithm: JWSAlgorithm,
        extraHeaders: [String: JSONValue] = [:]
    ) throws -> String {
        guard case .object = claims else { throw AuthError(.invalidArgument, "claims must be a JSON object") }
        var header: [String: JSONValue] = ["alg": .string(algorithm.rawValue), "typ": "JWT"]
        if let kid = key.keyID { header["kid"] = .string(kid) }
        for (name, value) in extraHeaders where name != "alg" { header[name] = value }
        let signingInput =
            Base64URL.encode(JSONValue.object(header).serialized()) + "." + Base64URL.encode(claims.serialized())
        let signature = try key.sign(algorithm, input: Array(signingInput.utf8))
        return signingInput + "." + Base64URL.encode(signature)
    }

    /// A compact JWS split and decoded, before any trust decision.
    package struct Decoded {
        let header: [String: JSONValue]
        let payload: [UInt8]
        let signature: [UInt8]
        let signingInput: [UInt8]
    }

    /// Splits and decodes without judging the header's content beyond "a JSON object".
    package static func decode(_ token: [UInt8], maxDepth: Int = 32) throws -> Decoded {
        let dot = UInt8(ascii: ".")
        let parts = token.split(separator: dot, maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw AuthError(.malformedToken, "a JWT has exactly three dot-separated parts") }
        guard let headerBytes = Base64URL.decode(parts[0]) else {
            throw AuthError(.malformedBase64, "the header is not canonical base64url")
        }
        guard let payload = Base64URL.decode(parts[1]) else {
            throw AuthError(.malformedBase64, "the payload is not canonical base64url")
        }
        guard let signature = Base64URL.decode(parts[2]) else {
            throw AuthError(.malformedBase64, "the signature is not canonical base64url")
        }
        let header = try JSONValue.parseObject(
            headerBytes,
            code: .malformedHeader,
            what: "header members",
            maxDepth: maxDepth
        )
        let signingInput = Array(token[token.startIndex..<parts[1].endIndex])
        return Decoded(header: header, payload: payload, signature: signature, signingInput: signingInput)
    }
}
