import COpenSSL
import Synchronization

/// One key: a JWK (RFC 7517) or a PEM key, public or private. Immutable after creation and
/// safe to share across threads; the OpenSSL key is freed and secrets wiped on release.
// @unchecked: an immutable EVP_PKEY (thread-safe to use) and a secret wiped in deinit.
public final class JSONWebKey: @unchecked Sendable {
    public enum KeyType: Equatable, Sendable {
        case rsa
        case ec(curve: String)
        case okp(curve: String)
        case oct
    }

    public let keyType: KeyType
    public let keyID: String?
    /// The key's own `alg`, `use` and `key_ops`: honoured when the key is selected.
    public let algorithm: String?
    public let use: String?
    public let keyOperations: [String]?
    public let isPrivate: Bool

    let pkey: OpaquePointer?
    private(set) var secret: [UInt8]
    /// Pre-initialised verification contexts per algorithm: creating one costs about as much as
    /// an RSA verification, so they are reused (each used by one thread at a time).
    /// A pooled verification context.
    private struct VerifyContext: @unchecked Sendable {  // One thread at a time uses it: taken out, used, put back.
        let pointer: OpaquePointer
    }

    private let verifyContexts = Locked<[JWSAlgorithm: [VerifyContext]]>([:])

    /// The smallest RSA modulus accepted.
    public static let minimumRSABits = 2048

    init(
        keyType: KeyType,
        pkey: OpaquePointer?,
        secret: [UInt8],
        isPrivate: Bool,
        keyID: String?,
        algorithm: String?,
        use: String?,
        keyOperations: [String]?
    ) {
        self.keyType = keyType
        self.pkey = pkey
        self.secret = secret
        self.isPrivate = isPrivate
        self.keyID = keyID
        self.algorithm = algorithm
        self.use = use
        self.keyOperations = keyOperations
    }

    deinit {
        OpenSSL.wipe(&secret)
        verifyContexts.withLock { pools in for context in pools.values.joined() { EVP_PKEY_CTX_free(context.pointer) } }
        if let pkey { EVP_PKEY_free(pkey) }
    }

    /// A shared secret (HS*), as FastMCP accepts it through `public_key`.
    public convenience init(sharedSecret: [UInt8], keyID: String? = nil, algorithm: String? = nil) throws {
        guard !sharedSecret.isEmpty else { throw AuthError(.invalidKey, "the shared secret is empty") }
        self.init(
            keyType: .oct,
            pkey: nil,
            secret: sharedSecret,
            isPrivate: true,
            keyID: keyID,
            algorithm: algorithm,
            use: nil,
            keyOperations: nil
        )
    }

    // MARK: - JWK import

    public static func parse(jwk text: String) throws -> JSONWebKey {
        let value: JSONValue
        do { value = try JSONValue.parse(text) } catch { throw AuthError(.invalidKey, "the JWK is not valid JSON") }
        return try JSONWebKey(jwk: value)
    }

    public convenience init(jwk: JSONValue) throws {
        guard let object = jwk.objectValue else { throw AuthError(.invalidKey, "a JWK must be a JSON object") }
        func string(_ name: String) throws -> String? {
            guard let value = object[name] else { return nil }
            guard let s = value.stringValue else {
                throw AuthError(.invalidKey, "JWK member \"\(name)\" must be a string")
            }
            return s
        }
        func bytes(_ name: String) throws -> [UInt8]? {
            guard let text = try string(name) else { return nil }
            guard let decoded = Base64URL.decode(text), !decoded.isEmpty else {
                throw AuthError(.invalidKey, "JWK member \"\(name)\" is not canonical base64url")
            }
            return decoded
        }
        func required(_ name: String) throws -> [UInt8] {
            guard let value = try bytes(name) else { throw AuthError(.invalidKey, "JWK member \"\(name)\" is missing") }
            return value
        }
        guard let kty = try string("kty") else { throw AuthError(.invalidKey, "JWK member \"kty\" is missing") }
        let keyID = try string("kid")
        let algorithm = try string("alg")
        let use = try string("use")
        var keyOperations: [String]? = nil
        if let ops = object["key_ops"] {
            guard case .array = ops, let list = ops.stringOrStringArray else {
                throw AuthError(.invalidKey, "JWK member \"key_ops\" must be an array of strings")
            }
            keyOperations = list
        }

        switch kty {
        case "RSA":
            let n = try required("n")
            let e = try required("e")
            var parameters: [OpenSSL.Parameter] = [.bignum("n", n), .bignum("e", e)]
            let d = try bytes("d")
            if let d {
                parameters.append(.bignum("d", d))
                let crt = [
                    ("p", "rsa-factor1"), ("q", "rsa-factor2"), ("dp", "rsa-exponent1"),
                    ("dq", "rsa-exponent2"), ("qi", "rsa-coefficient1"),
                ]
                let values = try crt.compactMap { name, parameter in try bytes(name).map { (parameter, $0) } }
                if values.count == crt.count {
                    for (parameter, value) in values { parameters.append(.bignum(parameter, value)) }
                }
            }
            guard let pkey = OpenSSL.keyFromParameters(type: "RSA", parameters: parameters, privateKey: d != nil) else {
                throw AuthError(.invalidKey, "the RSA JWK is not a valid key")
            }
            self.init(
                keyType: .rsa,
                pkey: pkey,
                secret: [],
                isPrivate: d != nil,
                keyID: keyID,
                algorithm: algorithm,
                use: use,
                keyOperations: keyOperations
            )
            try checkStrength()
        case "EC":
            guard let crv = try string("crv"), let info = ECCurve(jwkName: crv) else {
                throw AuthError(.invalidKey, "unsupported or missing EC curve")
            }
            let x = try required("x")
            let y = try required("y")
            guard x.count == info.coordinateLength, y.count == info.coordinateLength else {
                throw AuthError(.invalidKey, "EC coordinates must be exactly \(info.coordinateLength) bytes for \(crv)")
            }
            var parameters: [OpenSSL.Parameter] = [.utf8("group", info.opensslName), .octets("pub", [4] + x + y)]
            let d = try bytes("d")
            if let d {
                guard d.count == info.coordinateLength else {
                    throw AuthError(.invalidKey, "EC private scalar has the wrong length")
                }
                parameters.append(.bignum("priv", d))
            }
            guard let pkey = OpenSSL.keyFromParameters(type: "EC", parameters: parameters, privateKey: d != nil),
                OpenSSL.publicCheck(pkey)
            else {
                throw AuthError(.invalidKey, "the EC JWK is not a valid point on \(crv)")
            }
            self.init(
                keyType: .ec(curve: crv),
                pkey: pkey,
                secret: [],
                isPrivate: d != nil,
                keyID: keyID,
                algorithm: algorithm,
                use: use,
                keyOperations: keyOperations
            )
        case "OKP":
            guard let crv = try string("crv"), let info = EdwardsCurve(jwkName: crv) else {
                throw AuthError(.invalidKey, "unsupported or missing OKP curve (Ed25519 and Ed448 are supported)")
            }
            let x = try required("x")
            guard x.count == info.keyLength else {
                throw AuthError(.invalidKey, "\(crv) public key must be \(info.keyLength) bytes")
            }
            let pkey: OpaquePointer?
            let d = try bytes("d")
            if let d {
                guard d.count == info.keyLength else {
                    throw AuthError(.invalidKey, "\(crv) private key must be \(info.keyLength) bytes")
                }
                pkey = EVP_PKEY_new_raw_private_key_ex(nil, OpenSSL.name(info.opensslName), nil, d, d.count)
            } else {
                pkey = EVP_PKEY_new_raw_public_key_ex(nil, OpenSSL.name(info.opensslName), nil, x, x.count)
            }
            guard let pkey else {
                OpenSSL.clearErrors()
                throw AuthError(.invalidKey, "the \(crv) JWK is not a valid key")
            }
            self.init(
                keyType: .okp(curve: crv),
                pkey: pkey,
                secret: [],
                isPrivate: d != nil,
                keyID: keyID,
                algorithm: algorithm,
                use: use,
                keyOperations: keyOperations
            )
            if d != nil, publicKeyBytesOKP() != x {
                throw AuthError(.invalidKey, "the \(crv) private key does not match its public key")
            }
        case "oct":
            let k = try required("k")
            self.init(
                keyType: .oct,
                pkey: nil,
                secret: k,
                isPrivate: true,
                keyID: keyID,
                algorithm: algorithm,
                use: use,
                keyOperations: keyOperations
            )
        default:
            throw AuthError(.invalidKey, "unsupported key type (kty)")
        }
    }

    private func checkStrength() throws {
        if keyType == .rsa, let pkey, EVP_PKEY_get_bits(pkey) < Int32(Self.minimumRSABits) {
            throw AuthError(.weakKey, "RSA keys under \(Self.minimumRSABits) bits are refused")
        }
    }

    // MARK: - PEM import

    /// A PEM public key (SPKI `PUBLIC KEY`, PKCS#1 `RSA PUBLIC KEY`), an X.509 `CERTIFICATE`,
    /// or a private key (`PRIVATE KEY`, `RSA PRIVATE KEY`, `EC PRIVATE KEY`).
    public static func parse(pem: String, keyID: String? = nil) throws -> JSONWebKey {
        // OpenSSL's PEM reader looks for this line too; without it no decoder chain (an allocation-heavy
        // step) is worth building.
        guard pem.contains("-----BEGIN ") else {
            throw AuthError(.invalidKey, "the PEM text is not a supported key")
        }
        let isPrivate = pem.contains("PRIVATE KEY-----")
        // The memory BIO reads the caller's buffer in place, so all decoding happens inside
        // the closure that keeps the bytes alive.
        let pkey: OpaquePointer? = try Array(pem.utf8).withUnsafeBytes { bytes in
            guard let bio = BIO_new_mem_buf(bytes.baseAddress, Int32(bytes.count)) else {
                throw AuthError(.internalError, "cannot allocate a memory BIO")
            }
            defer { BIO_free(bio) }
            if pem.contains("-----BEGIN CERTIFICATE-----") {
                guard let cert = PEM_read_bio_X509(bio, nil, nil, nil) else {
                    OpenSSL.clearErrors()
                    throw AuthError(.invalidKey, "the PEM certificate cannot be read")
                }
                defer { X509_free(cert) }
                return X509_get_pubkey(cert)
            }
            var decoded: OpaquePointer? = nil
            let selection = isPrivate ? fma_evp_selection_keypair() : fma_evp_selection_public_key()
            guard
                let decoder = OSSL_DECODER_CTX_new_for_pkey(
                    &decoded,
                    OpenSSL.name("PEM"),
                    nil,
                    nil,
                    selection,
                    nil,
                    nil
                )
            else {
                OpenSSL.clearErrors()
                throw AuthError(.internalError, "cannot create a PEM decoder")
            }
            defer { OSSL_DECODER_CTX_free(decoder) }
            return OSSL_DECODER_from_bio(decoder, bio) == 1 ? decoded : nil
        }
        guard let pkey else {
            OpenSSL.clearErrors()
            throw AuthError(.invalidKey, "the PEM text is not a supported key")
        }
        let keyType: KeyType
        switch EVP_PKEY_get_base_id(pkey) {
        case EVP_PKEY_RSA:
            keyType = .rsa
        case EVP_PKEY_EC:
            guard let group = OpenSSL.stringParameter(pkey, "group"), let curve = ECCurve(opensslName: group) else {
                EVP_PKEY_free(pkey)
                throw AuthError(.invalidKey, "unsupported EC curve")
            }
            keyType = .ec(curve: curve.jwkName)
        case EVP_PKEY_ED25519: keyType = .okp(curve: "Ed25519")
        case EVP_PKEY_ED448: keyType = .okp(curve: "Ed448")
        default:
            EVP_PKEY_free(pkey)
            throw AuthError(.invalidKey, "unsupported PEM key type")
        }
        let key = JSONWebKey(
            keyType: keyType,
            pkey: pkey,
            secret: [],
            isPrivate: isPrivate,
            keyID: keyID,
            algorithm: nil,
            use: nil,
            keyOperations: nil
        )
        try key.checkStrength()
        return key
    }

    // MARK: - Export

    /// Raw OKP key bytes through EVP_PKEY_get_raw_public_key or _private_key (size, then bytes).
    private func rawKeyBytes(
        _ get: (OpaquePointer, UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<Int>) -> Int32
    ) -> [UInt8]? {
        guard let pkey else { return nil }
        var length = 0
        guard get(pkey, nil, &length) == 1 else {
            OpenSSL.clearErrors()
            return nil
        }
        var out = [UInt8](repeating: 0, count: length)
        guard get(pkey, &out, &length) == 1 else {
            OpenSSL.clearErrors()
            return nil
        }
        return out
    }

    private func publicKeyBytesOKP() -> [UInt8]? { rawKeyBytes { EVP_PKEY_get_raw_public_key($0, $1, $2) } }
    private func privateKeyBytesOKP() -> [UInt8]? { rawKeyBytes { EVP_PKEY_get_raw_private_key($0, $1, $2) } }

    /// The key's required public members, as RFC 7638 orders them for the thumbprint.
    private func publicMembers() throws -> [String: JSONValue] {
        switch keyType {
        case .rsa:
            guard let pkey, let n = OpenSSL.bignumParameter(pkey, "n"), let e = OpenSSL.bignumParameter(pkey, "e")
            else {
                throw AuthError(.internalError, "cannot export the RSA key")
            }
            return ["kty": "RSA", "n": .string(Base64URL.encode(n)), "e": .string(Base64URL.encode(e))]
        case .ec(let curve):
            guard let length = ECCurve(jwkName: curve)?.coordinateLength, let pkey,
                let x = OpenSSL.bignumParameter(pkey, "qx", paddedTo: length),
                let y = OpenSSL.bignumParameter(pkey, "qy", paddedTo: length)
            else {
                throw AuthError(.internalError, "cannot export the EC key")
            }
            return [
                "kty": "EC", "crv": .string(curve), "x": .string(Base64URL.encode(x)),
                "y": .string(Base64URL.encode(y)),
            ]
        case .okp(let curve):
            guard let x = publicKeyBytesOKP() else { throw AuthError(.internalError, "cannot export the OKP key") }
            return ["kty": "OKP", "crv": .string(curve), "x": .string(Base64URL.encode(x))]
        case .oct:
            return ["kty": "oct", "k": .string(Base64URL.encode(secret))]
        }
    }

    /// RFC 7638 thumbprint (SHA-256, base64url).
    public func thumbprint() throws -> String {
        Base64URL.encode(try OpenSSL.sha256(Array(JSONValue.object(try publicMembers()).serialized().utf8)))
    }

    private func metadataMembers() -> [String: JSONValue] {
        var members = [String: JSONValue]()
        if let keyID { members["kid"] = .string(keyID) }
        if let algorithm { members["alg"] = .string(algorithm) }
        if let use { members["use"] = .string(use) }
        if let keyOperations { members["key_ops"] = .array(keyOperations.map { .string($0) }) }
        return members
    }

    /// The public JWK (no private members). A shared secret has no public form.
    public func publicJWK() throws -> JSONValue {
        if keyType == .oct { throw AuthError(.keyTypeMismatch, "a shared secret (oct) key has no public form") }
        var members = try publicMembers()
        members.merge(metadataMembers()) { _, meta in meta }
        if var ops = keyOperations {
            ops.removeAll { $0 == "sign" }
            members["key_ops"] = .array(ops.map { .string($0) })
        }
        return .object(members)
    }

    /// The full JWK, private members included.
    public func privateJWK() throws -> JSONValue {
        var members = try publicMembers()
        members.merge(metadataMembers()) { _, meta in meta }
        guard isPrivate else { return .object(members) }
        switch keyType {
        case .rsa:
            let names = [
                ("d", "d"), ("p", "rsa-factor1"), ("q", "rsa-factor2"), ("dp", "rsa-exponent1"),
                ("dq", "rsa-exponent2"), ("qi", "rsa-coefficient1"),
            ]
            for (jwkName, paramName) in names {
                if let pkey, let value = OpenSSL.bignumParameter(pkey, paramName) {
                    members[jwkName] = .string(Base64URL.encode(value))
                }
            }
        case .ec(let curve):
            if let length = ECCurve(jwkName: curve)?.coordinateLength, let pkey,
                let d = OpenSSL.bignumParameter(pkey, "priv", paddedTo: length)
            {
                members["d"] = .string(Base64URL.encode(d))
            }
        case .okp:
            if let d = privateKeyBytesOKP() { members["d"] = .string(Base64URL.encode(d)) }
        case .oct:
            break
        }
        return .object(members)
    }

    // MARK: - Compatibility with an algorithm

    /// Whether the key's type fits the algorithm (RSA for RS/PS, the bound curve for ES, …).
    public func fits(_ alg: JWSAlgorithm) -> Bool {
        switch (alg.family, keyType) {
        case (.hmac, .oct), (.rsaPKCS1, .rsa), (.rsaPSS, .rsa): return true
        case (.ecdsa, .ec(let curve)): return curve == alg.curve
        case (.eddsa, .okp(let curve)): return alg.curve.map { $0 == curve } ?? (curve == "Ed25519" || curve == "Ed448")
        default: return false
        }
    }

    /// Whether the key's own `alg`, `use` and `key_ops` permit this operation.
    func permits(_ alg: JWSAlgorithm, operation: String) -> Bool {
        if let algorithm, algorithm != alg.rawValue { return false }
        if let use, use != "sig" { return false }
        if let keyOperations, !keyOperations.contains(operation) { return false }
        return true
    }

    // MARK: - Verification contexts

    func withVerifyContext<T>(_ alg: JWSAlgorithm, _ body: (OpaquePointer) -> T) -> T? {
        guard let pkey else { return nil }
        var context = verifyContexts.withLock { $0[alg]?.popLast()?.pointer }
        if context == nil { context = makeVerifyContext(pkey, alg) }
        guard let context else { return nil }
        let result = body(context)
        let pooled = VerifyContext(pointer: context)
        let kept = verifyContexts.withLock { pools -> Bool in
            if pools[alg, default: []].count < 16 {
                pools[alg, default: []].append(pooled)
                return true
            }
            return false
        }
        if !kept { EVP_PKEY_CTX_free(context) }
        return result
    }

    private func makeVerifyContext(_ pkey: OpaquePointer, _ alg: JWSAlgorithm) -> OpaquePointer? {
        guard let ctx = EVP_PKEY_CTX_new_from_pkey(nil, pkey, nil) else { return nil }
        guard EVP_PKEY_verify_init(ctx) == 1, configure(ctx, alg) else {
            EVP_PKEY_CTX_free(ctx)
            OpenSSL.clearErrors()
            return nil
        }
        return ctx
    }

    /// Padding, digest and PSS salt length (= digest length, never "any") for RSA; digest for EC.
    func configure(_ ctx: OpaquePointer, _ alg: JWSAlgorithm) -> Bool {
        guard let digest = alg.messageDigest.pointer else { return false }
        switch alg.family {
        case .rsaPKCS1:
            return EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0
                && EVP_PKEY_CTX_set_signature_md(ctx, digest) > 0
        case .rsaPSS:
            return EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) > 0
                && EVP_PKEY_CTX_set_signature_md(ctx, digest) > 0
                && EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, digest) > 0
                && EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, Int32(alg.digestLength)) > 0
        case .ecdsa:
            return EVP_PKEY_CTX_set_signature_md(ctx, digest) > 0
        default:
            return false
        }
    }
}

struct ECCurve {
    let jwkName: String
    let opensslName: String
    let coordinateLength: Int

    static let all = [
        ECCurve(jwkName: "P-256", opensslName: "prime256v1", coordinateLength: 32),
        ECCurve(jwkName: "P-384", opensslName: "secp384r1", coordinateLength: 48),
        ECCurve(jwkName: "P-521", opensslName: "secp521r1", coordinateLength: 66),
        ECCurve(jwkName: "secp256k1", opensslName: "secp256k1", coordinateLength: 32),
    ]

    init(jwkName: String, opensslName: String, coordinateLength: Int) {
        self.jwkName = jwkName
        self.opensslName = opensslName
        self.coordinateLength = coordinateLength
    }

    init?(jwkName: String) {
        guard let found = ECCurve.all.first(where: { $0.jwkName == jwkName }) else { return nil }
        self = found
    }

    init?(opensslName: String) {
        let aliases = ["P-256": "prime256v1", "P-384": "secp384r1", "P-521": "secp521r1"]
        let name = aliases[opensslName] ?? opensslName
        guard let found = ECCurve.all.first(where: { $0.opensslName == name }) else { return nil }
        self = found
    }
}

struct EdwardsCurve {
    let opensslName: String
    let keyLength: Int
    let signatureLength: Int

    init?(jwkName: String) {
        switch jwkName {
        case "Ed25519":
            self.opensslName = "ED25519"
            self.keyLength = 32
            self.signatureLength = 64
        case "Ed448":
            self.opensslName = "ED448"
            self.keyLength = 57
            self.signatureLength = 114
        default: return nil
        }
    }
}
