import COpenSSL

/// Fernet (github.com/fernet/spec), byte-compatible with Python `cryptography.fernet`, with
/// MultiFernet's key rotation: the first key encrypts, any key decrypts. Immutable and
/// thread-safe; key material is wiped when the object is released.
// @unchecked: `keys` is a var only so deinit can wipe it; it is never mutated otherwise.
public final class Fernet: @unchecked Sendable {
    private struct Key {
        var signing: [UInt8]
        var encryption: [UInt8]
    }

    private var keys: [Key]
    /// Seconds a token's timestamp may lie in the future when a TTL is checked (as cryptography).
    public static let maxClockSkew: Int64 = 60
    private static let aes128CBC = OpenSSL.Fetched(pointer: EVP_CIPHER_fetch(nil, "AES-128-CBC", nil))

    /// `keys`: urlsafe base64 of 32 bytes each (44 characters, padded), as `Fernet.generateKey()`.
    public init(keys: [String]) throws {
        guard !keys.isEmpty else { throw AuthError(.invalidKey, "Fernet needs at least one key") }
        self.keys = try keys.enumerated().map { index, text in
            guard let raw = Base64.decode(text.trimmingASCIIWhitespace(), alphabet: .urlSafe), raw.count == 32 else {
                throw AuthError(.invalidKey, "Fernet key \(index + 1) must be 32 url-safe base64-encoded bytes")
            }
            return Key(signing: Array(raw[0..<16]), encryption: Array(raw[16...]))
        }
    }

    public convenience init(key: String) throws { try self.init(keys: [key]) }

    deinit {
        for index in keys.indices {
            OpenSSL.wipe(&keys[index].signing)
            OpenSSL.wipe(&keys[index].encryption)
        }
    }

    public static func generateKey() throws -> String {
        var raw = try OpenSSL.randomBytes(32)
        defer { OpenSSL.wipe(&raw) }
        return Base64.encode(raw, alphabet: .urlSafe)
    }

    public static var currentTime: Int64 { Int64(JWTVerifier.systemClock()) }

    // MARK: - Encrypt

    /// Encrypts with the first key at `time` (seconds since the epoch). `iv` is for test vectors.
    public func encrypt(_ plaintext: [UInt8], at time: Int64 = Fernet.currentTime, iv: [UInt8]? = nil) throws -> String
    {
        let iv = try iv ?? OpenSSL.randomBytes(16)
        guard iv.count == 16 else { throw AuthError(.invalidArgument, "a Fernet IV is 16 bytes") }
        let key = keys[0]
        let ciphertext = try Fernet.aes(encrypt: true, key: key.encryption, iv: iv, input: plaintext)
        var token: [UInt8] = [0x80]
        withUnsafeBytes(of: UInt64(bitPattern: time).bigEndian) { token += $0 }
        token += iv
        token += ciphertext
        token += try token.withUnsafeBytes { try OpenSSL.hmac(digestName: "SHA256", key: key.signing, data: $0) }
        return Base64.encode(token, alphabet: .urlSafe)
    }

    // MARK: - Decrypt

    /// Decrypts with any key. With `ttl`, a token older than `ttl` seconds or more than 60 s in
    /// the future is refused (checked as cryptography does, before the MAC).
    public func decrypt(_ token: String, ttl: Int64? = nil, now: Int64 = Fernet.currentTime) throws -> [UInt8] {
        let (timestamp, data) = try Fernet.unverifiedData(token)
        if let ttl {
            if timestamp &+ ttl < now { throw AuthError(.expired, "the Fernet token is older than its TTL") }
            if now &+ Fernet.maxClockSkew < timestamp {
                throw AuthError(.notYetValid, "the Fernet token's timestamp is in the future")
            }
        }
        let key = try verifiedKey(data)
        return try Fernet.decryptVerified(data, key: key)
    }

    /// The token's timestamp, after its MAC is verified with one of the keys.
    public func extractTimestamp(_ token: String) throws -> Int64 {
        let (timestamp, data) = try Fernet.unverifiedData(token)
        _ = try verifiedKey(data)
        return timestamp
    }

    /// Re-encrypts a token under the first key, keeping its timestamp (MultiFernet.rotate).
    public func rotate(_ token: String) throws -> String {
        let (timestamp, data) = try Fernet.unverifiedData(token)
        var plaintext = try Fernet.decryptVerified(data, key: try verifiedKey(data))
        defer { OpenSSL.wipe(&plaintext) }
        return try encrypt(plaintext, at: timestamp)
    }

    private static func unverifiedData(_ token: String) throws -> (Int64, [UInt8]) {
        guard token.utf8.count <= 64 << 20 else { throw AuthError(.tooLarge, "the Fernet token exceeds 64 MiB") }
        guard let data = Base64.decode(token.trimmingASCIIWhitespace(), alphabet: .urlSafe) else {
            throw AuthError(.malformedBase64, "the Fernet token is not url-safe base64")
        }
        guard data.count >= 9, data[0] == 0x80 else {
            throw AuthError(.malformedToken, "not a Fernet token (version byte or length)")
        }
        let timestamp = data[1..<9].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return (Int64(bitPattern: timestamp), data)
    }

    /// The key whose MAC matches (constant-time compare), else bad_signature.
    private func verifiedKey(_ data: [UInt8]) throws -> Key {
        guard data.count >= 1 + 8 + 16 + 32 else { throw AuthError(.malformedToken, "the Fernet token is too short") }
        let mac = Array(data[(data.count - 32)...])
        for key in keys {
            let expected = try data.withUnsafeBytes {
                try OpenSSL.hmac(
                    digestName: "SHA256",
                    key: key.signing,
                    data: UnsafeRawBufferPointer(rebasing: $0[..<(data.count - 32)])
                )
            }
            if OpenSSL.constantTimeEqual(expected, mac) { return key }
        }
        throw AuthError(.badSignature, "the Fernet token's MAC does not match any key")
    }

    private static func decryptVerified(_ data: [UInt8], key: Key) throws -> [UInt8] {
        let iv = Array(data[9..<25])
        let ciphertext = Array(data[25..<(data.count - 32)])
        guard !ciphertext.isEmpty, ciphertext.count % 16 == 0 else {
            throw AuthError(.malformedToken, "the Fernet ciphertext is not a whole number of AES blocks")
        }
        return try aes(encrypt: false, key: key.encryption, iv: iv, input: ciphertext)
    }

    /// AES-128-CBC with PKCS#7 padding.
    private static func aes(encrypt: Bool, key: [UInt8], iv: [UInt8], input: [UInt8]) throws -> [UInt8] {
        guard let ctx = EVP_CIPHER_CTX_new() else { throw AuthError(.internalError, "cannot create a cipher context") }
        defer {
            EVP_CIPHER_CTX_free(ctx)
            OpenSSL.clearErrors()
        }
        var out = [UInt8](repeating: 0, count: input.count + 16)
        var written: Int32 = 0
        var final: Int32 = 0
        let ok = out.withUnsafeMutableBufferPointer { buffer -> Bool in
            guard let cipher = aes128CBC.pointer, EVP_CipherInit_ex2(ctx, cipher, key, iv, encrypt ? 1 : 0, nil) == 1,
                EVP_CipherUpdate(ctx, buffer.baseAddress, &written, input, Int32(input.count)) == 1
            else { return false }
            guard let base = buffer.baseAddress else { return false }
            return EVP_CipherFinal_ex(ctx, base + Int(written), &final) == 1
        }
        guard ok else {
            OpenSSL.wipe(&out)
            if encrypt { throw AuthError(.internalError, "AES encryption failed") }
            throw AuthError(.decryptionFailed, "the Fernet token's padding is invalid")
        }
        out.removeLast(out.count - Int(written + final))
        return out
    }
}

extension String {
    /// Drops ASCII spaces, tabs and line breaks at both ends (a key or token read from a file).
    func trimmingASCIIWhitespace() -> String {
        let bytes = utf8
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }) else { return "" }
        guard let last = bytes.lastIndex(where: { !isSpace($0) }) else { return "" }
        if first == bytes.startIndex && last == bytes.index(before: bytes.endIndex) { return self }
        return String(self[first...last])
    }
}
