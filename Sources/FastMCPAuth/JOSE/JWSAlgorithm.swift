import COpenSSL

/// The JWS algorithms we sign and verify. `none` is deliberately absent.
public enum JWSAlgorithm: String, CaseIterable, Sendable {
    case HS256, HS384, HS512
    case RS256, RS384, RS512
    case PS256, PS384, PS512
    case ES256, ES384, ES512, ES256K
    case EdDSA
    /// RFC 9864 fully-specified EdDSA names: each bound to one curve.
    case Ed25519, Ed448

    public enum Family: Sendable { case hmac, rsaPKCS1, rsaPSS, ecdsa, eddsa }

    public var family: Family {
        switch self {
        case .HS256, .HS384, .HS512: return .hmac
        case .RS256, .RS384, .RS512: return .rsaPKCS1
        case .PS256, .PS384, .PS512: return .rsaPSS
        case .ES256, .ES384, .ES512, .ES256K: return .ecdsa
        case .EdDSA, .Ed25519, .Ed448: return .eddsa
        }
    }

    /// Digest length in bytes (HMAC output, PSS salt, minimum shared-secret length).
    public var digestLength: Int {
        switch self {
        case .HS256, .RS256, .PS256, .ES256, .ES256K: return 32
        case .HS384, .RS384, .PS384, .ES384: return 48
        case .HS512, .RS512, .PS512, .ES512: return 64
        case .EdDSA, .Ed25519, .Ed448: return 0
        }
    }

    /// The curve (JWK `crv`) an ECDSA or fully-specified EdDSA algorithm is bound to.
    public var curve: String? {
        switch self {
        case .Ed25519: return "Ed25519"
        case .Ed448: return "Ed448"
        case .ES256: return "P-256"
        case .ES384: return "P-384"
        case .ES512: return "P-521"
        case .ES256K: return "secp256k1"
        default: return nil
        }
    }

    var isSymmetric: Bool { family == .hmac }

    /// The digest, fetched once per process (OpenSSL 3 re-fetches a legacy EVP_sha256() on
    /// every one-shot call, which costs more than hashing a token).
    var messageDigest: OpenSSL.Fetched {
        switch digestLength {
        case 48: return OpenSSL.sha384Digest
        case 64: return OpenSSL.sha512Digest
        default: return OpenSSL.sha256Digest
        }
    }

    /// The digest's OpenSSL name, for HMAC.
    var digestName: String {
        switch digestLength {
        case 48: return "SHA384"
        case 64: return "SHA512"
        default: return "SHA256"
        }
    }

    /// Parses an algorithm name exactly (case-sensitive, as RFC 7515 requires).
    public init?(name: String) { self.init(rawValue: name) }
}
