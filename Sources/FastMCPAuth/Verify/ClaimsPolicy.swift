/// What a token's header and claims must satisfy once its signature holds.
public struct ClaimsPolicy: Sendable {
    /// Accepted `iss` values (any one); when set, `iss` must be present.
    public var issuers: [String]? = nil
    /// Accepted audiences; when set, `aud` must be present and overlap.
    public var audiences: [String]? = nil
    /// Seconds of clock skew allowed on `exp`, `nbf` and `iat`.
    public var leeway: Double = 0
    public var requireExpiration = true
    public var requiredClaims: [String] = []
    public var requiredScopes: [String] = []
    /// Expected header `typ` (compared case-insensitively, "application/" optional).
    public var expectedType: String? = nil
    /// Header names the application understands when a token lists them in `crit`.
    public var understoodCritical: Set<String> = []

    public init() {}

    /// The largest `exp`, `nbf` or `iat` accepted: 2^53 seconds.
    public static let maxTime: Double = 9_007_199_254_740_992

    /// Header names defined by JWS/JWA, which `crit` must not list (RFC 7515 §4.1.11).
    static let registeredHeaderNames: Set<String> = [
        "alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit",
    ]

    func checkHeader(_ header: [String: JSONValue]) throws {
        if let typ = header["typ"], typ.stringValue == nil { throw AuthError(.malformedHeader, "typ must be a string") }
        if let expectedType {
            guard let typ = header["typ"]?.stringValue, Self.normalizedType(typ) == Self.normalizedType(expectedType)
            else {
                throw AuthError(.invalidType, "the token type is not \(expectedType)")
            }
        }
        if let crit = header["crit"] {
            guard case .array(let items) = crit, !items.isEmpty, let names = crit.stringOrStringArray else {
                throw AuthError(.malformedHeader, "crit must be a non-empty array of strings")
            }
            guard Set(names).count == names.count else { throw AuthError(.malformedHeader, "crit lists a name twice") }
            for name in names {
                if Self.registeredHeaderNames.contains(name) {
                    throw AuthError(.malformedHeader, "crit must not list registered header names")
                }
                guard understoodCritical.contains(name) else {
                    throw AuthError(.unsupportedCrit, "a critical header parameter is not understood")
                }
                guard header[name] != nil else {
                    throw AuthError(.malformedHeader, "a critical header parameter is absent")
                }
            }
        }
    }

    static func normalizedType(_ typ: String) -> String {
        let lowered = typ.lowercased()
        return lowered.hasPrefix("application/") ? String(lowered.dropFirst("application/".count)) : lowered
    }

    /// Checks the registered claims against `now` (seconds since the epoch).
    func checkClaims(_ claims: [String: JSONValue], now: Double, extraScopes: [String] = []) throws {
        func number(_ name: String) throws -> Double? {
            guard let value = claims[name] else { return nil }
            guard let number = value.numberValue, number.isFinite else {
                throw AuthError(.invalidClaim, "\(name) must be a number")
            }
            if case .int(let integer) = value, integer.magnitude > 9_007_199_254_740_992 {
                throw AuthError(.invalidClaim, "\(name) is out of range (at most 2^53 seconds)")
            }
            // Every time a JSON number holds exactly; beyond it, arithmetic and conversions break.
            guard abs(number) <= ClaimsPolicy.maxTime else {
                throw AuthError(.invalidClaim, "\(name) is out of range (at most 2^53 seconds)")
            }
            return number
        }
        let exp = try number("exp")
        let nbf = try number("nbf")
        let iat = try number("iat")
        if let sub = claims["sub"], sub.stringValue == nil { throw AuthError(.invalidClaim, "sub must be a string") }
        if let iss = claims["iss"], iss.stringValue == nil { throw AuthError(.invalidClaim, "iss must be a string") }
        if let aud = claims["aud"], aud.stringOrStringArray == nil {
            throw AuthError(.invalidClaim, "aud must be a string or an array of strings")
        }
        if let scp = claims["scp"], scp.stringOrStringArray == nil {
            throw AuthError(.invalidClaim, "scp must be a string or an array of strings")
        }
        guard let scopes = AccessToken.scopes(in: claims) else {
            throw AuthError(.invalidClaim, "scope must be a string; scp a string or an array of strings")
        }

        if let exp {
            if now >= exp + leeway { throw AuthError(.expired) }
        } else if requireExpiration {
            throw AuthError(.missingClaim, "exp is required")
        }
        if let nbf, now + leeway < nbf { throw AuthError(.notYetValid, "the token is not valid before its nbf time") }
        if let iat, iat > now + leeway { throw AuthError(.notYetValid, "the token was issued in the future (iat)") }

        if let issuers {
            guard let iss = claims["iss"]?.stringValue else { throw AuthError(.missingClaim, "iss is required") }
            guard issuers.contains(iss) else { throw AuthError(.invalidIssuer) }
        }
        if let audiences {
            guard let aud = claims["aud"]?.stringOrStringArray else {
                throw AuthError(.missingClaim, "aud is required")
            }
            guard aud.contains(where: audiences.contains) else { throw AuthError(.invalidAudience) }
        }
        for name in requiredClaims where claims[name] == nil {
            throw AuthError(.missingClaim, "the claim \"\(name)\" is required")
        }
        let missing = (requiredScopes + extraScopes).filter { !scopes.contains($0) }
        if !missing.isEmpty {
            throw AuthError(.insufficientScope, "missing scope(s): \(missing.joined(separator: " "))")
        }
    }
}
