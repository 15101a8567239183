/// Every rejection the library makes, with a stable code. The raw values are the C ABI's
/// `fma_status` numbers: append-only, never renumbered.
public enum ErrorCode: Int32, CaseIterable, Sendable {
    case ok = 0
    case invalidArgument = 1
    case invalidConfig = 2
    case internalError = 3
    case malformedToken = 10
    case malformedBase64 = 11
    case malformedHeader = 12
    case malformedClaims = 13
    case algNotAllowed = 14
    case keyNotFound = 15
    case keyTypeMismatch = 16
    case badSignature = 17
    case expired = 18
    case notYetValid = 19
    case invalidIssuer = 20
    case invalidAudience = 21
    case invalidType = 22
    case missingClaim = 23
    case invalidClaim = 24
    case insufficientScope = 25
    case unsupportedCrit = 26
    case tooLarge = 27
    case jwksUnavailable = 28
    case invalidKey = 29
    case weakKey = 30
    case unsupportedAlgorithm = 31
    case decryptionFailed = 32
    case storeUnavailable = 33
    case corruptedValue = 34
    case undecryptableValue = 35
    case plaintextValue = 36
    case tokenRevoked = 37
    case upstreamUnavailable = 38
    case rateLimited = 39
    case overCapacity = 40
    case authorizationDenied = 41
    case authorizationTimeout = 42
    case discoveryFailed = 43
    case registrationFailed = 44
    case browserUnavailable = 45
    case cancelled = 46

    /// The stable lowercase name (`bad_signature`), also the Python exception's `.code`.
    public var name: String {
        switch self {
        case .ok: return "ok"
        case .invalidArgument: return "invalid_argument"
        case .invalidConfig: return "invalid_config"
        case .internalError: return "internal_error"
        case .malformedToken: return "malformed_token"
        case .malformedBase64: return "malformed_base64"
        case .malformedHeader: return "malformed_header"
        case .malformedClaims: return "malformed_claims"
        case .algNotAllowed: return "alg_not_allowed"
        case .keyNotFound: return "key_not_found"
        case .keyTypeMismatch: return "key_type_mismatch"
        case .badSignature: return "bad_signature"
        case .expired: return "expired"
        case .notYetValid: return "not_yet_valid"
        case .invalidIssuer: return "invalid_issuer"
        case .invalidAudience: return "invalid_audience"
        case .invalidType: return "invalid_type"
        case .missingClaim: return "missing_claim"
        case .invalidClaim: return "invalid_claim"
        case .insufficientScope: return "insufficient_scope"
        case .unsupportedCrit: return "unsupported_crit"
        case .tooLarge: return "too_large"
        case .jwksUnavailable: return "jwks_unavailable"
        case .invalidKey: return "invalid_key"
        case .weakKey: return "weak_key"
        case .unsupportedAlgorithm: return "unsupported_algorithm"
        case .decryptionFailed: return "decryption_failed"
        case .storeUnavailable: return "store_unavailable"
        case .corruptedValue: return "corrupted_value"
        case .undecryptableValue: return "undecryptable_value"
        case .plaintextValue: return "plaintext_value"
        case .tokenRevoked: return "token_revoked"
        case .upstreamUnavailable: return "upstream_unavailable"
        case .rateLimited: return "rate_limited"
        case .overCapacity: return "over_capacity"
        case .authorizationDenied: return "authorization_denied"
        case .authorizationTimeout: return "authorization_timeout"
        case .discoveryFailed: return "discovery_failed"
        case .registrationFailed: return "registration_failed"
        case .browserUnavailable: return "browser_unavailable"
        case .cancelled: return "cancelled"
        }
    }

    /// A sentence describing the status, for `fma_status_string()`.
    public var sentence: String {
        switch self {
        case .ok: return "Success."
        case .invalidArgument: return "An argument is missing or invalid."
        case .invalidConfig: return "The configuration is invalid."
        case .internalError: return "An internal error occurred."
        case .malformedToken: return "The token is not a compact JWS (three dot-separated parts)."
        case .malformedBase64: return "A token part is not canonical unpadded base64url."
        case .malformedHeader: return "The token header is not a valid JOSE header."
        case .malformedClaims: return "The token claims are not a JSON object."
        case .algNotAllowed: return "The token's algorithm is not allowed."
        case .keyNotFound: return "No key matches the token."
        case .keyTypeMismatch: return "The selected key cannot be used with the token's algorithm."
        case .badSignature: return "The token signature is invalid."
        case .expired: return "The token has expired."
        case .notYetValid: return "The token is not valid yet."
        case .invalidIssuer: return "The token issuer is not accepted."
        case .invalidAudience: return "The token audience is not accepted."
        case .invalidType: return "The token type (typ) is not accepted."
        case .missingClaim: return "A required claim is missing."
        case .invalidClaim: return "A claim has an invalid type or value."
        case .insufficientScope: return "The token lacks a required scope."
        case .unsupportedCrit: return "The token marks a header parameter critical that is not understood."
        case .tooLarge: return "The input exceeds the size limit."
        case .jwksUnavailable: return "The JWKS could not be fetched and no usable key set is cached."
        case .invalidKey: return "The key is malformed or unsupported."
        case .weakKey: return "The key is too weak for the algorithm."
        case .unsupportedAlgorithm: return "The algorithm is not supported."
        case .decryptionFailed: return "The ciphertext could not be decrypted."
        case .storeUnavailable: return "The store cannot be reached."
        case .corruptedValue: return "A stored value is corrupted or truncated."
        case .undecryptableValue: return "A stored value does not decrypt with any configured key."
        case .plaintextValue: return "A stored value is not encrypted but encryption is required."
        case .tokenRevoked: return "The token is revoked or unknown to its issuer."
        case .upstreamUnavailable: return "The upstream identity provider cannot be reached; try again later."
        case .rateLimited: return "Too many requests from this client or address; try again later."
        case .overCapacity: return "The server holds as much pending state as it may; try again later."
        case .authorizationDenied: return "The user or the authorization server denied the sign-in."
        case .authorizationTimeout: return "The sign-in did not complete in time."
        case .discoveryFailed: return "The server's authorization metadata could not be found or is not acceptable."
        case .registrationFailed: return "The client could not register with the authorization server."
        case .browserUnavailable: return "No browser could be opened for the sign-in."
        case .cancelled: return "The operation was cancelled."
        }
    }
}

/// The one error type of the core. `message` never contains token, key or secret bytes.
public struct AuthError: Error, CustomStringConvertible, Equatable, Sendable {
    public let code: ErrorCode
    public let message: String

    public init(_ code: ErrorCode, _ message: String? = nil) {
        self.code = code
        self.message = message ?? code.sentence
    }

    public var description: String { "\(code.name): \(message)" }
}
