/// One browser sign-in in flight (OAuth 2.1 authorization code with PKCE, RFC 8707 `resource`,
/// RFC 9207 `iss`): what the client sent, so that what comes back to the loopback listener can be
/// checked before the code goes anywhere. A value; the driver holds it for the one sign-in.
public struct PendingAuthorization: Equatable, Sendable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    public var issuer: String
    /// The server said it always sends `iss` (RFC 9207): a response without it is refused.
    public var issRequired: Bool
    public var clientID: String
    public var redirectURI: String
    public var state: String
    public var codeVerifier: String
    public var resource: String
    public var scopes: [String]
    /// The URL the browser opens.
    public var authorizationURL: String

    /// A new sign-in: 32 random bytes each for the PKCE verifier (43 characters, RFC 7636 §4.1) and
    /// the state; S256 only (the server's metadata must offer it).
    public static func start(
        server: AuthorizationServerMetadata,
        clientID: String,
        redirectURI: String,
        resource: String,
        scopes: [String]
    ) throws -> PendingAuthorization {
        try start(
            server: server,
            clientID: clientID,
            redirectURI: redirectURI,
            resource: resource,
            scopes: scopes,
            randomBytes: OpenSSL.randomBytes
        )
    }

    /// `randomBytes` is the tests' seam (fixed bytes give the RFC 7636 appendix B values).
    static func start(
        server: AuthorizationServerMetadata,
        clientID: String,
        redirectURI: String,
        resource: String,
        scopes: [String],
        randomBytes: (Int) throws -> [UInt8]
    ) throws -> PendingAuthorization {
        let endpoint = try server.authorizationCodeEndpoint()
        let verifier = Base64URL.encode(try randomBytes(32))
        let state = Base64URL.encode(try randomBytes(32))
        let challenge = Base64URL.encode(try OpenSSL.sha256(Array(verifier.utf8)))
        var pairs = [
            ("response_type", "code"), ("client_id", clientID), ("redirect_uri", redirectURI),
            ("code_challenge", challenge), ("code_challenge_method", "S256"), ("state", state),
            ("resource", resource),
        ]
        if !scopes.isEmpty { pairs.append(("scope", scopes.joined(separator: " "))) }
        return PendingAuthorization(
            issuer: server.issuer,
            issRequired: server.issParameterSupported,
            clientID: clientID,
            redirectURI: redirectURI,
            state: state,
            codeVerifier: verifier,
            resource: resource,
            scopes: scopes,
            authorizationURL: Form.url(endpoint, adding: pairs)
        )
    }

    /// Omits the state and the PKCE verifier.
    public var description: String {
        "PendingAuthorization(issuer: \(issuer), clientID: \(clientID), redirectURI: \(redirectURI), "
            + "resource: \(resource), scopes: \(scopes))"
    }
    public var debugDescription: String { description }
    public var customMirror: Mirror {
        Mirror(
            self,
            children: ["issuer": issuer, "clientID": clientID, "redirectURI": redirectURI, "resource": resource]
        )
    }

    public enum CallbackResult: Equatable, Sendable, CustomStringConvertible {
        /// The response to this sign-in, checked: exchange the code.
        case code(String)
        /// Not the response to this sign-in (no or another `state`, a malformed query): answer it
        /// with an error page and keep waiting, so a stray or forged request cannot end the sign-in.
        case ignored(String)
        /// The response to this sign-in, and it ends it.
        case failed(AuthError)

        /// The code is left out.
        public var description: String {
            switch self {
            case .code: "code(<redacted>)"
            case .ignored(let reason): "ignored(\(reason))"
            case .failed(let error): "failed(\(error))"
            }
        }
    }

    /// Checks the query string the browser brought to the redirect URI.
    public func callback(query: String) -> CallbackResult {
        guard query.utf8.count <= 16 * 1024, let pairs = Form.decode(query) else {
            return .ignored("the callback query is malformed or too long")
        }
        var parameters = [String: String]()
        for (name, value) in pairs {
            // RFC 6749 §3.1: a parameter must not appear twice; such a response is not ours to trust.
            guard parameters[name] == nil else { return .ignored("the callback repeats a parameter") }
            parameters[name] = value
        }
        guard let received = parameters["state"],
            OpenSSL.constantTimeEqual(Array(received.utf8), Array(state.utf8))
        else { return .ignored("the callback's state is not this sign-in's") }
        // RFC 9207 §2.4: compare `iss` as a string before anything else of the response is used.
        if let iss = parameters["iss"] {
            guard iss == issuer else {
                return .failed(AuthError(.authorizationDenied, "the authorization response names another issuer"))
            }
        } else if issRequired {
            return .failed(
                AuthError(.authorizationDenied, "the authorization response lacks the iss its server promises")
            )
        }
        if let error = parameters["error"] {
            let described = Responses.printable(String(error.prefix(64)))
            return .failed(
                AuthError(
                    .authorizationDenied,
                    error == "access_denied"
                        ? "the sign-in was denied" : "the authorization server answered \(described)"
                )
            )
        }
        guard let code = parameters["code"], !code.isEmpty, code.utf8.count <= 4096 else {
            return .failed(AuthError(.authorizationDenied, "the authorization response has no code"))
        }
        return .code(code)
    }

    /// The form of the code exchange (RFC 6749 §4.1.3, RFC 7636 §4.5, RFC 8707 §2.2).
    public func tokenRequest(code: String) -> [(String, String)] {
        [
            ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI),
            ("code_verifier", codeVerifier), ("client_id", clientID), ("resource", resource),
        ]
    }
}

/// A token endpoint's successful answer (RFC 6749 §5.1), bounded and typed. Its descriptions omit the tokens.
public struct TokenResponse: Equatable, Sendable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    public var accessToken: String
    public var refreshToken: String?
    /// Seconds, 0 ... 10 years; nil when the server does not say.
    public var expiresIn: Int?
    /// Granted scopes when the server lists them; nil means "as requested" (RFC 6749 §5.1).
    public var scopes: [String]?

    public static let maxTokenLength = 16 * 1024

    public var description: String {
        "TokenResponse(expiresIn: \(expiresIn.map { String($0) } ?? "none"), scopes: \(scopes ?? []), "
            + "refreshToken: \(refreshToken == nil ? "none" : "<redacted>"))"
    }
    public var debugDescription: String { description }
    public var customMirror: Mirror {
        Mirror(self, children: ["expiresIn": expiresIn as Any, "scopes": scopes as Any])
    }

    public init(accessToken: String, refreshToken: String? = nil, expiresIn: Int? = nil, scopes: [String]? = nil) {
        self.accessToken = accessToken
        self.refreshToken = refreshToken
        self.expiresIn = expiresIn
        self.scopes = scopes
    }

    /// Reads a 200 body; anything that is not a usable Bearer token is upstream trouble, named.
    public init(json: JSONValue) throws {
        guard case .object(let object) = json else {
            throw AuthError(.upstreamUnavailable, "the token response is not a JSON object")
        }
        let fields = Fields(object: object)
        guard let access = fields.string("access_token"), !access.isEmpty, access.utf8.count <= Self.maxTokenLength,
            HeaderValues.isSafe(access)
        else { throw AuthError(.upstreamUnavailable, "the token response has no usable access_token") }
        guard fields.string("token_type")?.lowercased() == "bearer" else {
            throw AuthError(.upstreamUnavailable, "the token response's token_type is not Bearer")
        }
        var expiresIn: Int? = nil
        if let seconds = fields.number("expires_in") {
            guard seconds >= 0, seconds <= 10 * 365 * 86_400 else {
                throw AuthError(.upstreamUnavailable, "the token response's expires_in is out of range")
            }
            expiresIn = Int(seconds)
        }
        var refresh = fields.string("refresh_token")
        if let token = refresh, token.isEmpty || token.utf8.count > Self.maxTokenLength { refresh = nil }
        self.init(
            accessToken: access,
            refreshToken: refresh,
            expiresIn: expiresIn,
            scopes: fields.string("scope").map { $0.split(separator: " ").map(String.init).filter(ScopeNames.isValid) }
        )
    }
}

/// A token endpoint's error answer (RFC 6749 §5.2): the `error` code, for the driver's decisions
/// (invalid_grant: the refresh token is dead; invalid_client: register again).
public struct TokenErrorResponse: Equatable, Sendable {
    public var status: Int
    public var error: String?

    public init(status: Int, body: [UInt8]) {
        self.status = status
        let parsed = try? JSONValue.parse(body, maxDepth: 8)
        error = parsed?["error"]?.stringValue.map { String($0.prefix(64)) }
    }

    public var isInvalidGrant: Bool { error == "invalid_grant" }
    public var isInvalidClient: Bool { error == "invalid_client" || (status == 401 && error == nil) }
}
