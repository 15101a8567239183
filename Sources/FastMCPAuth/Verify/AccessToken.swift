/// A verified token, as FastMCP's AccessToken: the raw token unchanged, who it is for, what it
/// may do, and every claim.
public struct AccessToken: Sendable {
    public let token: String
    /// `client_id`, else `azp`, else `sub`, else "unknown" (as FastMCP).
    public let clientID: String
    public let scopes: [String]
    /// `exp` in seconds since the epoch, when the token has one.
    public let expiresAt: Int64?
    public let subject: String?
    public let claims: [String: JSONValue]
    /// The claims as JSON text: the token's own payload when it came from a token (already
    /// validated JSON), else compact JSON with sorted keys.
    public let claimsJSON: String

    public init(token: String, claims: [String: JSONValue], claimsJSON: String? = nil) {
        self.token = token
        self.claims = claims
        self.claimsJSON = claimsJSON ?? JSONValue.object(claims).serialized()
        self.clientID =
            claims["client_id"]?.stringValue ?? claims["azp"]?.stringValue ?? claims["sub"]?.stringValue ?? "unknown"
        self.scopes = AccessToken.scopes(in: claims) ?? []
        self.expiresAt = claims["exp"]?.numberValue.flatMap { Int64(exactly: $0.rounded(.down)) }
        self.subject = claims["sub"]?.stringValue
    }

    /// Scopes from `scope` (space-separated string) first, else `scp` (string or list); nil
    /// when a present claim has the wrong type.
    static func scopes(in claims: [String: JSONValue]) -> [String]? {
        if let scope = claims["scope"] {
            guard let text = scope.stringValue else { return nil }
            return splitScopes(text)
        }
        if let scp = claims["scp"] {
            if let text = scp.stringValue { return splitScopes(text) }
            return scp.arrayValue != nil ? scp.stringOrStringArray : nil
        }
        return []
    }

    static func splitScopes(_ text: String) -> [String] {
        text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
    }
}
