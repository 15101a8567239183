/// Every refusal the proxy answers with, in one type: an OAuth JSON error (RFC 6749 §5.2,
/// RFC 7591 §3.2.2) or, before a client and its redirect URI are known, an HTML error page.
/// Descriptions are ours; input is never echoed.
struct OAuthError: Error, Equatable {
    let status: Int
    /// The OAuth error code; nil for an HTML page.
    let code: String?
    let description: String
    var headers: [String: String] = [:]

    init(_ status: Int, _ code: String?, _ description: String, headers: [String: String] = [:]) {
        self.status = status
        self.code = code
        self.description = description
        self.headers = headers
    }

    var response: AuthResponse {
        guard let code else { return Responses.errorPage(status, description) }
        return Responses.oauthError(status, code, description, headers: headers)
    }

    static func page(_ status: Int, _ message: String) -> OAuthError { OAuthError(status, nil, message) }
    static func invalidRequest(_ description: String) -> OAuthError { OAuthError(400, "invalid_request", description) }
    static func invalidGrant(_ description: String) -> OAuthError { OAuthError(400, "invalid_grant", description) }
    static func invalidScope(_ description: String) -> OAuthError { OAuthError(400, "invalid_scope", description) }
    static func invalidTarget(_ description: String) -> OAuthError { OAuthError(400, "invalid_target", description) }
    static func invalidClientMetadata(_ description: String) -> OAuthError {
        OAuthError(400, "invalid_client_metadata", description)
    }
    static func invalidRedirectURI(_ description: String) -> OAuthError {
        OAuthError(400, "invalid_redirect_uri", description)
    }
    static func invalidClient(_ description: String, basic: Bool = false) -> OAuthError {
        OAuthError(401, "invalid_client", description, headers: basic ? ["WWW-Authenticate": "Basic"] : [:])
    }
    static func unsupportedGrantType(_ description: String) -> OAuthError {
        OAuthError(400, "unsupported_grant_type", description)
    }
    /// A per-address or per-client limit: 429 `rate_limited`.
    static func rateLimited(retryAfter: Int, _ description: String) -> OAuthError {
        OAuthError(429, "rate_limited", description, headers: ["Retry-After": String(retryAfter)])
    }
    /// A global cap on unauthenticated state: 503 `over_capacity`.
    static func overCapacity(retryAfter: Int) -> OAuthError {
        OAuthError(
            503,
            "over_capacity",
            "The server holds as much pending state as it may; try again later.",
            headers: ["Retry-After": String(retryAfter)]
        )
    }
    /// A store or upstream outage: retry later (never a reason for the client to sign in again).
    static let temporarilyUnavailable = OAuthError(
        503,
        "temporarily_unavailable",
        "The authorization server cannot serve this request now; try again shortly.",
        headers: ["Retry-After": "5"]
    )
}
