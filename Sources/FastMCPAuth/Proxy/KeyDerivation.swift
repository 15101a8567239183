import COpenSSL

/// The proxy's keys, derived exactly as FastMCP derives them, so tokens and stored state are
/// interchangeable with a FastMCP server given the same secrets.
public enum ProxyKeys {
    static let signingSalt = "fastmcp-jwt-signing-key"
    static let storageSalt = "fastmcp-storage-encryption-key"
    public static let pbkdf2Iterations = 1_000_000
    /// A `jwt_signing_key` shorter than this is weak_key (32 or more recommended).
    public static let minimumSigningKeyLength = 16

    /// The HS256 key: the 44-byte base64url text of PBKDF2-HMAC-SHA256(jwt_signing_key) when one
    /// is given (a low-entropy secret), else of HKDF-SHA256(upstream client secret).
    public static func signingKey(
        jwtSigningKey: String?,
        upstreamClientSecret: String?,
        iterations: Int = pbkdf2Iterations
    ) throws -> [UInt8] {
        if let jwtSigningKey {
            return Array(
                Base64.encode(
                    try pbkdf2SHA256(
                        password: Array(jwtSigningKey.utf8),
                        salt: Array(signingSalt.utf8),
                        iterations: iterations,
                        length: 32
                    ),
                    alphabet: .urlSafe
                ).utf8
            )
        }
        guard let upstreamClientSecret, !upstreamClientSecret.isEmpty else {
            throw AuthError(.invalidConfig, "jwt_signing_key: is required when the upstream client has no secret")
        }
        return Array(
            Base64.encode(
                try hkdfSHA256(
                    key: Array(upstreamClientSecret.utf8),
                    salt: Array(signingSalt.utf8),
                    info: Array("Fernet".utf8),
                    length: 32
                ),
                alphabet: .urlSafe
            ).utf8
        )
    }

    /// The Fernet key for stored state when none is configured: HKDF-SHA256 of the signing key text.
    public static func storageKey(signingKey: [UInt8]) throws -> String {
        Base64.encode(
            try hkdfSHA256(key: signingKey, salt: Array(storageSalt.utf8), info: Array("Fernet".utf8), length: 32),
            alphabet: .urlSafe
        )
    }

    static func pbkdf2SHA256(password: [UInt8], salt: [UInt8], iterations: Int, length: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        let ok = password.withUnsafeBufferPointer { passwordBytes in
            salt.withUnsafeBufferPointer { saltBytes in
                passwordBytes.withMemoryRebound(to: CChar.self) { passwordChars in
                    PKCS5_PBKDF2_HMAC(
                        passwordChars.baseAddress,
                        Int32(password.count),
                        saltBytes.baseAddress,
                        Int32(salt.count),
                        Int32(iterations),
                        EVP_sha256(),
                        Int32(length),
                        &out
                    )
                }
            }
        }
        guard ok == 1 else {
            OpenSSL.clearErrors()
            throw AuthError(.internalError, "PBKDF2 failed")
        }
        return out
    }

    /// RFC 5869 with SHA-256.
    static func hkdfSHA256(key: [UInt8], salt: [UInt8], info: [UInt8], length: Int) throws -> [UInt8] {
        let prk = try key.withUnsafeBytes {
            try OpenSSL.hmac(
                digestName: "SHA256",
                key: salt.isEmpty ? [UInt8](repeating: 0, count: 32) : salt,
                data: $0
            )
        }
        var output = [UInt8]()
        var previous = [UInt8]()
        var counter: UInt8 = 1
        while output.count < length {
            let block = previous + info + [counter]
            previous = try block.withUnsafeBytes { try OpenSSL.hmac(digestName: "SHA256", key: prk, data: $0) }
            output += previous
            counter += 1
        }
        return Array(output.prefix(length))
    }
}
