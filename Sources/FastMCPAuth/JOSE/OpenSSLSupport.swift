import COpenSSL
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Thin helpers over libcrypto. Each returns nil/false on failure and clears OpenSSL's error
/// queue, so no stale error leaks into a later call on the same thread.
package enum OpenSSL {
    static func clearErrors() { ERR_clear_error() }

    /// An algorithm fetched once per process; nil when this OpenSSL lacks it (no default
    /// provider): every use then fails with internal_error instead of aborting.
    struct Fetched: @unchecked Sendable {  // OpenSSL's fetched algorithm objects are immutable and thread-safe.
        let pointer: OpaquePointer?
    }

    static let sha256Digest = Fetched(pointer: EVP_MD_fetch(nil, "SHA256", nil))
    static let sha384Digest = Fetched(pointer: EVP_MD_fetch(nil, "SHA384", nil))
    static let sha512Digest = Fetched(pointer: EVP_MD_fetch(nil, "SHA512", nil))
    private static let hmacAlgorithm = Fetched(pointer: EVP_MAC_fetch(nil, "HMAC", nil))

    static func unavailable(_ what: String) -> AuthError {
        AuthError(.internalError, "OpenSSL cannot provide \(what) (is its default provider loaded?)")
    }

    private static let internedNames = Locked<[String: UnsafeMutablePointer<CChar>]>([:])

    /// A C string that lives for the whole process. Some OpenSSL constructors keep the name
    /// pointer they are given (EVP_PKEY_CTX_new_from_name, OSSL_DECODER_CTX_new_for_pkey),
    /// which a Swift String's temporary C view would leave dangling.
    /// (Out of memory, it is the empty name, which OpenSSL refuses: a failure, not a crash.)
    static func name(_ text: String) -> UnsafePointer<CChar> {
        let pointer = internedNames.withLock { table -> UnsafeMutablePointer<CChar>? in
            if let existing = table[text] { return existing }
            guard let copy = strdup(text) else { return nil }
            table[text] = copy
            return copy
        }
        return pointer.map { UnsafePointer($0) } ?? emptyCString
    }

    /// A NUL-terminated empty string in static storage.
    static var emptyCString: UnsafePointer<CChar> {
        UnsafeRawPointer(StaticString("").utf8Start).assumingMemoryBound(to: CChar.self)
    }

    static func bignum(_ bytes: [UInt8]) -> OpaquePointer? {
        bytes.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, Int32($0.count), nil) }
    }

    static func bytes(of bignum: OpaquePointer, paddedTo length: Int? = nil) -> [UInt8]? {
        let natural = (Int(BN_num_bits(bignum)) + 7) / 8
        let size = length ?? natural
        if natural > size { return nil }
        var out = [UInt8](repeating: 0, count: size)
        let written = out.withUnsafeMutableBufferPointer { BN_bn2binpad(bignum, $0.baseAddress, Int32(size)) }
        return written == Int32(size) ? out : nil
    }

    /// A BIGNUM parameter of a key ("n", "e", "d", "priv", "qx", …).
    static func bignumParameter(_ pkey: OpaquePointer, _ name: String, paddedTo length: Int? = nil) -> [UInt8]? {
        var bn: OpaquePointer? = nil
        guard EVP_PKEY_get_bn_param(pkey, name, &bn) == 1, let bn else {
            clearErrors()
            return nil
        }
        defer { BN_clear_free(bn) }
        return bytes(of: bn, paddedTo: length)
    }

    static func stringParameter(_ pkey: OpaquePointer, _ name: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 80)
        var length = 0
        guard EVP_PKEY_get_utf8_string_param(pkey, name, &buffer, buffer.count, &length) == 1 else {
            clearErrors()
            return nil
        }
        return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    enum Parameter {
        case bignum(String, [UInt8])
        case utf8(String, String)
        case octets(String, [UInt8])
    }

    /// Builds an EVP_PKEY of `type` ("RSA", "EC") from parameters.
    static func keyFromParameters(type: String, parameters: [Parameter], privateKey: Bool) -> OpaquePointer? {
        guard let builder = OSSL_PARAM_BLD_new() else { return nil }
        defer { OSSL_PARAM_BLD_free(builder) }
        // The builder keeps pointers to names and values until OSSL_PARAM_BLD_to_param, so
        // they are C copies that outlive the loop (a Swift String's C view would not).
        var bignums = [OpaquePointer]()
        var cStrings = [UnsafeMutablePointer<CChar>]()
        defer {
            for bignum in bignums { BN_clear_free(bignum) }
            for string in cStrings { free(string) }
        }
        var ok = true
        func cString(_ text: String) -> UnsafePointer<CChar> {
            guard let copy = strdup(text) else {
                ok = false
                return emptyCString
            }
            cStrings.append(copy)
            return UnsafePointer(copy)
        }
        for parameter in parameters {
            switch parameter {
            case .bignum(let name, let value):
                guard let bn = bignum(value) else {
                    ok = false
                    break
                }
                bignums.append(bn)
                ok = ok && OSSL_PARAM_BLD_push_BN(builder, cString(name), bn) == 1
            case .utf8(let name, let value):
                ok = ok && OSSL_PARAM_BLD_push_utf8_string(builder, cString(name), cString(value), 0) == 1
            case .octets(let name, let value):
                // push_octet_string copies the bytes only at to_param: keep them alive too.
                guard let raw = malloc(max(value.count, 1)) else {
                    ok = false
                    break
                }
                let copy = raw.assumingMemoryBound(to: CChar.self)
                cStrings.append(copy)
                value.withUnsafeBytes {
                    if let base = $0.baseAddress {
                        UnsafeMutableRawPointer(copy).copyMemory(from: base, byteCount: $0.count)
                    }
                }
                ok = ok && OSSL_PARAM_BLD_push_octet_string(builder, cString(name), copy, value.count) == 1
            }
        }
        guard ok, let params = OSSL_PARAM_BLD_to_param(builder) else {
            clearErrors()
            return nil
        }
        defer { OSSL_PARAM_free(params) }
        guard let ctx = EVP_PKEY_CTX_new_from_name(nil, name(type), nil) else {
            clearErrors()
            return nil
        }
        defer { EVP_PKEY_CTX_free(ctx) }
        var pkey: OpaquePointer? = nil
        let selection = privateKey ? fma_evp_selection_keypair() : fma_evp_selection_public_key()
        guard EVP_PKEY_fromdata_init(ctx) == 1, EVP_PKEY_fromdata(ctx, &pkey, selection, params) == 1 else {
            clearErrors()
            return nil
        }
        return pkey
    }

    /// True when the key's public part is well formed (for EC: the point is on the curve).
    static func publicCheck(_ pkey: OpaquePointer) -> Bool {
        guard let ctx = EVP_PKEY_CTX_new_from_pkey(nil, pkey, nil) else { return false }
        defer { EVP_PKEY_CTX_free(ctx) }
        let ok = EVP_PKEY_public_check(ctx) == 1
        if !ok { clearErrors() }
        return ok
    }

    static func digest(_ md: Fetched, _ data: UnsafeRawBufferPointer) throws -> [UInt8] {
        guard let algorithm = md.pointer else { throw unavailable("the message digest") }
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard EVP_Digest(data.baseAddress, data.count, &out, &length, algorithm, nil) == 1, length > 0 else {
            clearErrors()
            throw AuthError(.internalError, "OpenSSL could not compute a digest")
        }
        return Array(out.prefix(Int(length)))
    }

    package static func sha256(_ data: [UInt8]) throws -> [UInt8] {
        try data.withUnsafeBytes { try digest(sha256Digest, $0) }
    }

    /// Lower-case hex SHA-256 of the text's UTF-8 (store keys for secrets: never the secret itself).
    package static func sha256Hex(_ text: String) throws -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        for byte in try sha256(Array(text.utf8)) {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// HMAC through a pre-fetched EVP_MAC (the one-shot HMAC() fetches on every call).
    static func hmac(digestName: String, key: [UInt8], data: UnsafeRawBufferPointer) throws -> [UInt8] {
        guard let algorithm = hmacAlgorithm.pointer else { throw unavailable("HMAC") }
        guard let ctx = EVP_MAC_CTX_new(algorithm) else {
            throw AuthError(.internalError, "OpenSSL could not start an HMAC")
        }
        defer { EVP_MAC_CTX_free(ctx) }
        var params = [
            OSSL_PARAM_construct_utf8_string(name("digest"), UnsafeMutablePointer(mutating: name(digestName)), 0),
            OSSL_PARAM_construct_end(),
        ]
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length = 0
        let ok = key.withUnsafeBytes { keyBytes in
            EVP_MAC_init(ctx, keyBytes.baseAddress, keyBytes.count, &params) == 1
                && EVP_MAC_update(ctx, data.baseAddress, data.count) == 1
                && EVP_MAC_final(ctx, &out, &length, out.count) == 1
        }
        guard ok, length > 0 else {
            clearErrors()
            throw AuthError(.internalError, "OpenSSL could not compute an HMAC")
        }
        return Array(out.prefix(length))
    }

    /// Constant-time equality for MACs and secrets (lengths are not secret).
    package static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { x in
            b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, a.count) == 0 }
        }
    }

    package static func randomBytes(_ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        guard RAND_bytes(&out, Int32(count)) == 1 else {
            clearErrors()
            throw AuthError(.internalError, "the random number generator failed")
        }
        return out
    }

    /// Overwrites secret bytes before they are released.
    static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { if let base = $0.baseAddress { OPENSSL_cleanse(base, $0.count) } }
    }

    // MARK: ECDSA signature forms

    /// JWS r||s (each exactly `coordinateLength` bytes) to the DER form OpenSSL verifies.
    static func derSignature(fromRawSignature raw: [UInt8], coordinateLength: Int) -> [UInt8]? {
        guard raw.count == 2 * coordinateLength,
            let r = bignum(Array(raw[0..<coordinateLength])),
            let s = bignum(Array(raw[coordinateLength...]))
        else { return nil }
        guard let sig = ECDSA_SIG_new() else {
            BN_free(r)
            BN_free(s)
            return nil
        }
        defer { ECDSA_SIG_free(sig) }
        guard ECDSA_SIG_set0(sig, r, s) == 1 else {
            BN_free(r)
            BN_free(s)
            return nil
        }
        let length = i2d_ECDSA_SIG(sig, nil)
        guard length > 0 else {
            clearErrors()
            return nil
        }
        var der = [UInt8](repeating: 0, count: Int(length))
        der.withUnsafeMutableBufferPointer { buffer in
            var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            _ = i2d_ECDSA_SIG(sig, &cursor)
        }
        return der
    }

    static func rawSignature(fromDERSignature der: [UInt8], coordinateLength: Int) -> [UInt8]? {
        let sig: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_ECDSA_SIG(nil, &cursor, buffer.count)
        }
        guard let sig else {
            clearErrors()
            return nil
        }
        defer { ECDSA_SIG_free(sig) }
        guard let r = bytes(of: ECDSA_SIG_get0_r(sig), paddedTo: coordinateLength),
            let s = bytes(of: ECDSA_SIG_get0_s(sig), paddedTo: coordinateLength)
        else { return nil }
        return r + s
    }
}
