/// How a client proves who it is at the token endpoint (RFC 6749 §2.3; the names are RFC 7591's).
public enum TokenEndpointAuthMethod: String, CaseIterable, Sendable {
    /// The client id and secret, each form-urlencoded, in an HTTP Basic header (RFC 6749 §2.3.1).
    case clientSecretBasic = "client_secret_basic"
    /// The client id and secret in the request body (RFC 6749 §2.3.1).
    case clientSecretPost = "client_secret_post"
    /// A JWT the client signs with its private key (RFC 7523 §2.2, OpenID Connect Core §9).
    case privateKeyJWT = "private_key_jwt"
    /// A public client: only its client id.
    case none
}

/// The grant the client obtains its tokens with.
public enum ClientGrant: String, CaseIterable, Sendable {
    /// A browser sign-in with PKCE (the default).
    case authorizationCode = "authorization_code"
    /// RFC 6749 §4.4: a pre-registered confidential client acting for itself; no browser, no user.
    case clientCredentials = "client_credentials"
}

/// The private key a client signs its `private_key_jwt` assertions with. Its descriptions and
/// mirror name the key by its `kid` and algorithms only; the key material never appears.
public struct ClientAssertionKey: Equatable, Sendable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    public let key: JSONWebKey
    /// The algorithms this key signs with, preferred first: the JWK's own `alg` alone when it names
    /// one, else every JWS algorithm that fits the key type (RS256 first for RSA, EdDSA for OKP).
    public let algorithms: [JWSAlgorithm]
    /// RFC 7638 thumbprint of the public key: what equality compares (public, not secret).
    public let thumbprint: String
    public var keyID: String? { key.keyID }

    /// A private JWK given as a JSON object or as its JSON text. Everything that makes it unusable
    /// for signing assertions is invalid_config naming `private_key`: not a JWK, a public key, a
    /// shared secret (that would be client_secret_jwt), a weak RSA key, an `alg` we do not sign
    /// with or that does not fit the key, a `use` or `key_ops` that forbids signing.
    public init(jwk value: JSONValue) throws {
        var jwk = value
        if let text = value.stringValue {
            guard let parsed = try? JSONValue.parse(text), case .object = parsed else {
                throw AuthError(.invalidConfig, "private_key: the string is not a JWK's JSON text")
            }
            jwk = parsed
        }
        guard case .object = jwk else {
            throw AuthError(.invalidConfig, "private_key: must be a JWK, as a JSON object or its JSON text")
        }
        let key: JSONWebKey
        do { key = try JSONWebKey(jwk: jwk) } catch let error as AuthError {
            throw AuthError(.invalidConfig, "private_key: \(error.message)")
        }
        guard key.keyType != .oct else {
            throw AuthError(
                .invalidConfig,
                "private_key: a shared-secret (oct) key is not a private key; give an RSA, EC or OKP private JWK"
            )
        }
        guard key.isPrivate else {
            throw AuthError(.invalidConfig, "private_key: a public JWK; the private part (\"d\") is needed to sign")
        }
        var candidates: [JWSAlgorithm]
        if let name = key.algorithm {
            guard let declared = JWSAlgorithm(name: name), declared.family != .hmac else {
                throw AuthError(
                    .invalidConfig,
                    "private_key: alg \"\(Responses.printable(String(name.prefix(40))))\" is not an algorithm we sign with"
                )
            }
            guard key.fits(declared) else {
                throw AuthError(.invalidConfig, "private_key: alg \(declared.rawValue) does not fit the key type")
            }
            candidates = [declared]
        } else {
            candidates = Self.preference.filter(key.fits)
        }
        candidates = candidates.filter { key.permits($0, operation: "sign") }
        guard !candidates.isEmpty else {
            throw AuthError(.invalidConfig, "private_key: the key's use or key_ops do not permit signing")
        }
        try Self.checkPair(key, jwk: jwk, algorithm: candidates[0])
        self.key = key
        self.algorithms = candidates
        do { self.thumbprint = try key.thumbprint() } catch {
            throw AuthError(.invalidConfig, "private_key: the key has no public form")
        }
    }

    /// The private part must belong to the public part the JWK states (the one the authorization
    /// server holds): a probe signed with the private key must verify with the stated public key.
    /// A mismatch would fail only at the server, as invalid_client, under the other key's kid.
    private static func checkPair(_ key: JSONWebKey, jwk: JSONValue, algorithm: JWSAlgorithm) throws {
        var stated = jwk.objectValue ?? [:]
        for name in ["d", "p", "q", "dp", "dq", "qi", "oth"] { stated.removeValue(forKey: name) }
        let probe = Array("fastmcpauth private_key check".utf8)
        guard let publicKey = try? JSONWebKey(jwk: .object(stated)),
            let signature = try? key.sign(algorithm, input: probe),
            (try? publicKey.verify(algorithm, input: probe, signature: signature)) == true
        else {
            throw AuthError(.invalidConfig, "private_key: the private part does not match the key's public part")
        }
    }

    /// Every algorithm we sign with, in the order one is picked for a key of a fitting type.
    static let preference: [JWSAlgorithm] = [
        .RS256, .PS256, .RS384, .PS384, .RS512, .PS512, .ES256, .ES384, .ES512, .ES256K, .EdDSA, .Ed25519, .Ed448,
    ]

    /// The algorithm for a server that lists `supported` (its
    /// `token_endpoint_auth_signing_alg_values_supported`; nil or empty: it does not say, the first
    /// of ours). discovery_failed when it lists none of ours.
    public func algorithm(supported: [String]?) throws -> JWSAlgorithm {
        guard let first = algorithms.first else { throw AuthError(.internalError, "the key has no algorithm") }
        guard let supported, !supported.isEmpty else { return first }
        if let chosen = algorithms.first(where: { supported.contains($0.rawValue) }) { return chosen }
        let listed = supported.prefix(8).map { Responses.printable(String($0.prefix(20))) }.joined(separator: ", ")
        throw AuthError(
            .discoveryFailed,
            "the authorization server accepts client assertions signed with \(listed) only "
                + "(token_endpoint_auth_signing_alg_values_supported); the private_key signs with "
                + algorithms.map(\.rawValue).joined(separator: ", ")
        )
    }

    public static func == (lhs: ClientAssertionKey, rhs: ClientAssertionKey) -> Bool {
        lhs.thumbprint == rhs.thumbprint && lhs.algorithms == rhs.algorithms && lhs.keyID == rhs.keyID
    }

    public var description: String {
        "ClientAssertionKey(kid: \(keyID.map { Responses.printable(String($0.prefix(64))) } ?? "none"), "
            + "algorithms: \(algorithms.map(\.rawValue).joined(separator: " ")), key: <redacted>)"
    }
    public var debugDescription: String { description }
    public var customMirror: Mirror {
        Mirror(self, children: ["keyID": keyID as Any, "algorithms": algorithms.map(\.rawValue)])
    }
}

/// The `client_assertion` of `private_key_jwt` (RFC 7523 §3, OpenID Connect Core §9): `iss` =
/// `sub` = the client id, `aud` = the authorization server's issuer, a random `jti`, `iat`, and
/// `exp` a minute later; the header `alg` (from the key), `kid` when the key has one, `typ` "JWT".
public enum ClientAssertion {
    /// Seconds from `iat` to `exp` (the issue allows at most 300; short limits a replay).
    public static let lifetime: Int64 = 60
    public static let assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

    /// The claims, for a `now` in epoch seconds (the clock is the caller's; a clock that is not a
    /// plausible time is internal_error, not a trap).
    public static func claims(clientID: String, audience: String, jti: String, now: Double) throws -> JSONValue {
        guard now.isFinite, now >= 0, now < 1e11, let issuedAt = Int64(exactly: now.rounded(.down)) else {
            throw AuthError(.internalError, "the clock does not give a usable time for the client assertion")
        }
        return [
            "iss": .string(clientID), "sub": .string(clientID), "aud": .string(audience), "jti": .string(jti),
            "iat": .int(issuedAt), "exp": .int(issuedAt + lifetime),
        ]
    }

    /// A signed assertion with a fresh 256-bit `jti`.
    public static func make(
        clientID: String,
        audience: String,
        key: ClientAssertionKey,
        algorithm: JWSAlgorithm,
        now: Double
    ) throws -> String {
        try make(
            clientID: clientID,
            audience: audience,
            key: key,
            algorithm: algorithm,
            now: now,
            randomBytes: OpenSSL.randomBytes
        )
    }

    static func make(
        clientID: String,
        audience: String,
        key: ClientAssertionKey,
        algorithm: JWSAlgorithm,
        now: Double,
        randomBytes: (Int) throws -> [UInt8]
    ) throws -> String {
        guard key.algorithms.contains(algorithm) else {
            throw AuthError(.keyTypeMismatch, "the private_key does not sign with \(algorithm.rawValue)")
        }
        let jti = Base64URL.encode(try randomBytes(32))
        let claims = try claims(clientID: clientID, audience: audience, jti: jti, now: now)
        return try JWT.sign(claims: claims, key: key.key, algorithm: algorithm)
    }
}

/// A token request as it goes out: the form and the headers, the client's authentication in
/// them. Its descriptions name the parameters and headers, never their values.
public struct TokenRequest: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var form: [(String, String)]
    public var headers: [(String, String)]

    public var description: String {
        "TokenRequest(form: \(form.map(\.0).joined(separator: " ")), headers: \(headers.map(\.0).joined(separator: " ")))"
    }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["form": form.map(\.0), "headers": headers.map(\.0)]) }
}

/// The client's authentication at one authorization server's token endpoint: checked against the
/// server's metadata before anything is sent, then put into the request. No I/O.
public enum ClientAuthentication {
    /// Whether the server takes our method, and the assertion's algorithm for `private_key_jwt`.
    /// discovery_failed when the server lists its `token_endpoint_auth_methods_supported` and ours
    /// (other than `none`) is not among them, or lists signing algorithms none of which the key
    /// signs with: the request would be refused, and the secret or assertion is not sent at all.
    public static func check(
        _ credentials: ClientCredentials,
        server: AuthorizationServerMetadata
    ) throws -> JWSAlgorithm? {
        try credentials.check()
        let method = credentials.authMethod
        if method != .none, let listed = server.advertisedTokenEndpointAuthMethods, !listed.isEmpty,
            !listed.contains(method.rawValue)
        {
            let names = listed.prefix(8).map { Responses.printable(String($0.prefix(40))) }.joined(separator: ", ")
            throw AuthError(
                .discoveryFailed,
                "the authorization server does not accept \(method.rawValue) at its token endpoint "
                    + "(token_endpoint_auth_methods_supported: \(names)); set token_endpoint_auth_method to one it lists"
            )
        }
        guard method == .privateKeyJWT, let key = credentials.privateKey else { return nil }
        return try key.algorithm(supported: server.tokenEndpointAuthSigningAlgorithms)
    }

    /// `form` with the client's authentication: `client_id` (and any credential parameters) in it
    /// replaced by what the method sends. Basic: `Authorization: Basic` of the id and secret each
    /// form-urlencoded (RFC 6749 §2.3.1), no client_id in the body; post: client_id and
    /// client_secret in the body; private_key_jwt: client_id, client_assertion_type and a fresh
    /// client_assertion whose `aud` is the server's issuer; none: client_id.
    public static func authenticate(
        _ form: [(String, String)],
        credentials: ClientCredentials,
        server: AuthorizationServerMetadata,
        now: Double
    ) throws -> TokenRequest {
        try authenticate(form, credentials: credentials, server: server, now: now, randomBytes: OpenSSL.randomBytes)
    }

    static let credentialParameters: Set<String> = [
        "client_id", "client_secret", "client_assertion", "client_assertion_type",
    ]

    static func authenticate(
        _ form: [(String, String)],
        credentials: ClientCredentials,
        server: AuthorizationServerMetadata,
        now: Double,
        randomBytes: (Int) throws -> [UInt8]
    ) throws -> TokenRequest {
        let algorithm = try check(credentials, server: server)
        var pairs = form.filter { !credentialParameters.contains($0.0) }
        var headers = [("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json")]
        switch (credentials.authMethod, credentials.clientSecret, credentials.privateKey, algorithm) {
        case (.clientSecretBasic, let secret?, _, _):
            let basic = Form.encode(credentials.clientID) + ":" + Form.encode(secret)
            headers.append(("Authorization", "Basic " + Base64.encode(Array(basic.utf8), alphabet: .standard)))
        case (.clientSecretPost, let secret?, _, _):
            pairs += [("client_id", credentials.clientID), ("client_secret", secret)]
        case (.privateKeyJWT, _, let key?, let algorithm?):
            let assertion = try ClientAssertion.make(
                clientID: credentials.clientID,
                audience: server.issuer,
                key: key,
                algorithm: algorithm,
                now: now,
                randomBytes: randomBytes
            )
            pairs += [
                ("client_id", credentials.clientID), ("client_assertion_type", ClientAssertion.assertionType),
                ("client_assertion", assertion),
            ]
        case (.none, _, _, _):
            pairs.append(("client_id", credentials.clientID))
        default:
            // check() refuses these combinations; never send a request without its credential.
            throw AuthError(
                .invalidConfig,
                "token_endpoint_auth_method \(credentials.authMethod.rawValue) lacks its credential"
            )
        }
        return TokenRequest(form: pairs, headers: headers)
    }
}

/// The client_credentials grant (RFC 6749 §4.4) at one authorization server: the configured
/// confidential client for that issuer, checked against the server's metadata, and its form.
public struct ClientCredentialsGrant: Equatable, Sendable {
    public let credentials: ClientCredentials
    public let scopes: [String]
    public let resource: String

    /// The credentials configured for `server.issuer` (never the `*` entry: a secret or key goes
    /// only to the issuer it was made for). discovery_failed when the server is another issuer,
    /// when its `grant_types_supported` is listed without client_credentials, or when it refuses
    /// our authentication method or every algorithm our key signs with; invalid_config when the
    /// credentials are those of a public client.
    public init(
        preRegistered: [String: ClientCredentials],
        server: AuthorizationServerMetadata,
        scopes: [String],
        resource: String
    ) throws {
        guard let credentials = preRegistered[server.issuer] else {
            let configured = preRegistered.keys.filter { $0 != "*" }.sorted().first ?? "none"
            throw AuthError(
                .discoveryFailed,
                "the server's authorization server is \(Responses.printable(String(server.issuer.prefix(200)))), "
                    + "not the client_issuer the credentials are for (\(Responses.printable(String(configured.prefix(200)))))"
            )
        }
        guard credentials.authMethod != .none else {
            throw AuthError(
                .invalidConfig,
                "grant client_credentials: needs a confidential client (client_secret or private_key)"
            )
        }
        if let grants = server.advertisedGrantTypes, !grants.isEmpty, !grants.contains("client_credentials") {
            throw AuthError(
                .discoveryFailed,
                "the authorization server does not offer the client_credentials grant (grant_types_supported)"
            )
        }
        _ = try ClientAuthentication.check(credentials, server: server)
        self.credentials = credentials
        self.scopes = scopes
        self.resource = resource
    }

    /// grant_type, scope (when there are scopes), resource (RFC 8707); the client's
    /// authentication is added by ClientAuthentication.
    public var form: [(String, String)] {
        var pairs = [("grant_type", "client_credentials")]
        if !scopes.isEmpty { pairs.append(("scope", scopes.joined(separator: " "))) }
        pairs.append(("resource", resource))
        return pairs
    }

    /// What a token endpoint's refusal of this grant is: the server's trouble (5xx, 429) is
    /// upstream_unavailable; a refusal is authorization_denied (the server denied this client its
    /// token; there is no user and nothing to sign in to), its message naming the cause.
    public static func error(for refusal: TokenErrorResponse) -> AuthError {
        if refusal.status >= 500 || refusal.status == 429 {
            return AuthError(.upstreamUnavailable, "the token endpoint answered HTTP \(refusal.status)")
        }
        if refusal.isInvalidClient {
            return AuthError(
                .authorizationDenied,
                "the authorization server refused the client's credentials (invalid_client): check client_id, "
                    + "client_secret or private_key, and the token_endpoint_auth_method the client is registered with"
            )
        }
        switch refusal.error {
        case "unauthorized_client":
            return AuthError(
                .authorizationDenied,
                "the authorization server does not allow this client the client_credentials grant (unauthorized_client)"
            )
        case "unsupported_grant_type":
            return AuthError(
                .authorizationDenied,
                "the authorization server does not support the client_credentials grant (unsupported_grant_type)"
            )
        case "invalid_scope":
            return AuthError(
                .authorizationDenied,
                "the authorization server refused the requested scopes (invalid_scope)"
            )
        case "invalid_target":
            return AuthError(.authorizationDenied, "the authorization server refused the resource (invalid_target)")
        default:
            return AuthError(
                .authorizationDenied,
                "the token endpoint answered HTTP \(refusal.status) "
                    + Responses.printable(refusal.error ?? "without an error code")
            )
        }
    }
}
