import COpenSSL

/// The raw JWS signature operations: bytes in, bytes out. The JWT layer above decides which key
/// and algorithm are acceptable; this layer only refuses combinations that cannot be right.
extension JSONWebKey {
    /// Verifies `signature` over `input`. Returns false for any invalid signature; throws only
    /// when the key cannot be used with `alg` at all.
    public func verify(_ alg: JWSAlgorithm, input: [UInt8], signature: [UInt8]) throws -> Bool {
        guard fits(alg) else { throw AuthError(.keyTypeMismatch, "the key type does not fit \(alg.rawValue)") }
        defer { OpenSSL.clearErrors() }
        switch alg.family {
        case .hmac:
            guard secret.count >= alg.digestLength else {
                throw AuthError(.weakKey, "\(alg.rawValue) needs a shared secret of at least \(alg.digestLength) bytes")
            }
            // JWS requires the full-length MAC; compare in constant time.
            guard signature.count == alg.digestLength else { return false }
            let mac = try input.withUnsafeBytes { try OpenSSL.hmac(digestName: alg.digestName, key: secret, data: $0) }
            return OpenSSL.constantTimeEqual(mac, signature)
        case .rsaPKCS1, .rsaPSS:
            // RFC 7518: the signature is exactly as long as the modulus.
            guard let pkey, signature.count == Int(EVP_PKEY_get_size(pkey)) else { return false }
            return try verifyDigest(alg, input: input, signature: signature)
        case .ecdsa:
            guard let curve = alg.curve, let info = ECCurve(jwkName: curve),
                let der = OpenSSL.derSignature(fromRawSignature: signature, coordinateLength: info.coordinateLength)
            else {
                return false
            }
            return try verifyDigest(alg, input: input, signature: der)
        case .eddsa:
            guard case .okp(let curve) = keyType, let info = EdwardsCurve(jwkName: curve),
                signature.count == info.signatureLength, let pkey
            else { return false }
            guard let md = EVP_MD_CTX_new() else { return false }
            defer { EVP_MD_CTX_free(md) }
            guard EVP_DigestVerifyInit_ex(md, nil, nil, nil, nil, pkey, nil) == 1 else { return false }
            return EVP_DigestVerify(md, signature, signature.count, input, input.count) == 1
        }
    }

    private func verifyDigest(_ alg: JWSAlgorithm, input: [UInt8], signature: [UInt8]) throws -> Bool {
        let digest = try input.withUnsafeBytes { try OpenSSL.digest(alg.messageDigest, $0) }
        let result = withVerifyContext(alg) { ctx in
            EVP_PKEY_verify(ctx, signature, signature.count, digest, digest.count)
        }
        return result == 1
    }

    /// Signs `input` with this private key.
    public func sign(_ alg: JWSAlgorithm, input: [UInt8]) throws -> [UInt8] {
        guard fits(alg) else { throw AuthError(.keyTypeMismatch, "the key type does not fit \(alg.rawValue)") }
        guard isPrivate else { throw AuthError(.invalidKey, "signing needs a private key") }
        guard permits(alg, operation: "sign") else {
            throw AuthError(
                .keyTypeMismatch,
                "the key's alg, use or key_ops do not permit signing with \(alg.rawValue)"
            )
        }
        defer { OpenSSL.clearErrors() }
        switch alg.family {
        case .hmac:
            guard secret.count >= alg.digestLength else {
                throw AuthError(.weakKey, "\(alg.rawValue) needs a shared secret of at least \(alg.digestLength) bytes")
            }
            return try input.withUnsafeBytes { try OpenSSL.hmac(digestName: alg.digestName, key: secret, data: $0) }
        case .rsaPKCS1, .rsaPSS, .ecdsa:
            guard let pkey, let ctx = EVP_PKEY_CTX_new_from_pkey(nil, pkey, nil) else {
                throw AuthError(.internalError, "cannot create a signing context")
            }
            defer { EVP_PKEY_CTX_free(ctx) }
            guard EVP_PKEY_sign_init(ctx) == 1, configure(ctx, alg) else {
                throw AuthError(.internalError, "cannot initialise signing")
            }
            let digest = try input.withUnsafeBytes { try OpenSSL.digest(alg.messageDigest, $0) }
            var length = 0
            guard EVP_PKEY_sign(ctx, nil, &length, digest, digest.count) == 1 else {
                throw AuthError(.internalError, "signing failed")
            }
            var signature = [UInt8](repeating: 0, count: length)
            guard EVP_PKEY_sign(ctx, &signature, &length, digest, digest.count) == 1 else {
                throw AuthError(.internalError, "signing failed")
            }
            signature.removeLast(signature.count - length)
            if alg.family == .ecdsa {
                guard let info = alg.curve.flatMap(ECCurve.init(jwkName:)),
                    let raw = OpenSSL.rawSignature(fromDERSignature: signature, coordinateLength: info.coordinateLength)
                else {
                    throw AuthError(.internalError, "cannot convert the ECDSA signature")
                }
                return raw
            }
            return signature
        case .eddsa:
            guard let pkey, let md = EVP_MD_CTX_new() else {
                throw AuthError(.internalError, "cannot create a signing context")
            }
            defer { EVP_MD_CTX_free(md) }
            guard EVP_DigestSignInit_ex(md, nil, nil, nil, nil, pkey, nil) == 1 else {
                throw AuthError(.internalError, "cannot initialise signing")
            }
            var length = 0
            guard EVP_DigestSign(md, nil, &length, input, input.count) == 1 else {
                throw AuthError(.internalError, "signing failed")
            }
            var signature = [UInt8](repeating: 0, count: length)
            guard EVP_DigestSign(md, &signature, &length, input, input.count) == 1 else {
                throw AuthError(.internalError, "signing failed")
            }
            return Array(signature.prefix(length))
        }
    }

    // MARK: - Generation

    /// Generates a private key for `alg`: RSA (2048 bits unless `rsaBits`), the curve bound to
    /// an ES algorithm, Ed25519 for EdDSA unless `curve` is "Ed448", or a random secret of the
    /// digest length for HS. The JWK carries `alg` and a `kid` (the RFC 7638 thumbprint unless given).
    public static func generate(
        _ alg: JWSAlgorithm,
        curve: String? = nil,
        rsaBits: Int? = nil,
        keyID: String? = nil
    ) throws -> JSONWebKey {
        defer { OpenSSL.clearErrors() }
        let generated: JSONWebKey
        switch alg.family {
        case .hmac:
            generated = JSONWebKey(
                keyType: .oct,
                pkey: nil,
                secret: try OpenSSL.randomBytes(alg.digestLength),
                isPrivate: true,
                keyID: keyID,
                algorithm: alg.rawValue,
                use: nil,
                keyOperations: nil
            )
        case .rsaPKCS1, .rsaPSS:
            let bits = rsaBits ?? 2048
            guard bits >= minimumRSABits, bits <= 16384 else {
                throw AuthError(.weakKey, "RSA keys must have 2048 to 16384 bits")
            }
            let pkey = try generatePKey("RSA") { EVP_PKEY_CTX_set_rsa_keygen_bits($0, Int32(bits)) > 0 }
            generated = JSONWebKey(
                keyType: .rsa,
                pkey: pkey,
                secret: [],
                isPrivate: true,
                keyID: keyID,
                algorithm: alg.rawValue,
                use: nil,
                keyOperations: nil
            )
        case .ecdsa:
            guard let info = alg.curve.flatMap(ECCurve.init(jwkName:)) else {
                throw AuthError(.unsupportedAlgorithm, "\(alg.rawValue) names no curve")
            }
            if let curve, curve != info.jwkName {
                throw AuthError(.invalidArgument, "\(alg.rawValue) uses curve \(info.jwkName)")
            }
            let pkey = try generatePKey("EC") { EVP_PKEY_CTX_set_group_name($0, info.opensslName) > 0 }
            generated = JSONWebKey(
                keyType: .ec(curve: info.jwkName),
                pkey: pkey,
                secret: [],
                isPrivate: true,
                keyID: keyID,
                algorithm: alg.rawValue,
                use: nil,
                keyOperations: nil
            )
        case .eddsa:
            if let bound = alg.curve, let curve, curve != bound {
                throw AuthError(.invalidArgument, "\(alg.rawValue) uses curve \(bound)")
            }
            let name = alg.curve ?? curve ?? "Ed25519"
            guard let info = EdwardsCurve(jwkName: name) else {
                throw AuthError(.invalidArgument, "EdDSA curves are Ed25519 and Ed448")
            }
            let pkey = try generatePKey(info.opensslName) { _ in true }
            generated = JSONWebKey(
                keyType: .okp(curve: name),
                pkey: pkey,
                secret: [],
                isPrivate: true,
                keyID: keyID,
                algorithm: alg.rawValue,
                use: nil,
                keyOperations: nil
            )
        }
        if keyID != nil { return generated }
        return JSONWebKey(
            keyType: generated.keyType,
            pkey: generated.takePKey(),
            secret: generated.secret,
            isPrivate: true,
            keyID: try generated.thumbprint(),
            algorithm: alg.rawValue,
            use: nil,
            keyOperations: nil
        )
    }

    private static func generatePKey(_ type: String, configure: (OpaquePointer) -> Bool) throws -> OpaquePointer {
        guard let ctx = EVP_PKEY_CTX_new_from_name(nil, OpenSSL.name(type), nil) else {
            throw AuthError(.internalError, "cannot create a key generator")
        }
        defer { EVP_PKEY_CTX_free(ctx) }
        var pkey: OpaquePointer? = nil
        guard EVP_PKEY_keygen_init(ctx) == 1, configure(ctx), EVP_PKEY_generate(ctx, &pkey) == 1, let pkey else {
            throw AuthError(.internalError, "key generation failed")
        }
        return pkey
    }

    /// Hands the OpenSSL key to a new owner (used once, right after generation).
    private func takePKey() -> OpaquePointer? {
        guard let pkey else { return nil }
        EVP_PKEY_up_ref(pkey)
        return pkey
    }
}
