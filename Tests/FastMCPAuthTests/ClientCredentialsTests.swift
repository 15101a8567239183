import Foundation
import Testing

@testable import FastMCPAuth

#if canImport(Glibc)
import Glibc
#endif

/// Machine to machine: the client_credentials grant's configuration, the private_key_jwt assertion,
/// the token request of each client authentication method, the checks against the authorization
/// server's metadata, and the driver against a token endpoint on a loopback port.
@Suite struct ClientCredentialsTests {
    static let issuer = "https://auth.example.com/tenant"
    static let rsa = try! JSONWebKey.generate(.RS256, keyID: "rsa-1").privateJWK()
    static let ec = try! JSONWebKey.generate(.ES256).privateJWK()
    static let ed = try! JSONWebKey.generate(.EdDSA).privateJWK()
    /// Keys of the same types whose private parts do not belong to the ones above.
    static let other = (
        rsa: try! JSONWebKey.generate(.RS256).privateJWK(), ec: try! JSONWebKey.generate(.ES256).privateJWK(),
        ed: try! JSONWebKey.generate(.EdDSA).privateJWK()
    )

    /// `jwk` without the members named.
    static func without(_ jwk: JSONValue, _ names: String...) -> JSONValue {
        var object = jwk.objectValue ?? [:]
        for name in names { object.removeValue(forKey: name) }
        return .object(object)
    }

    static func with(_ jwk: JSONValue, _ name: String, _ value: JSONValue) -> JSONValue {
        var object = jwk.objectValue ?? [:]
        object[name] = value
        return .object(object)
    }

    static func server(_ extra: [String: JSONValue] = [:]) throws -> AuthorizationServerMetadata {
        var document = ClientDiscoveryTests.serverDocument
        for (name, value) in extra { document[name] = value }
        return try AuthorizationServerMetadata(json: .object(document), expectedIssuer: issuer)
    }

    static func configuration(_ extra: [String: JSONValue]) throws -> OAuthClient.Configuration {
        var json: [String: JSONValue] = ["server_url": "https://mcp.example.com/mcp"]
        for (name, value) in extra { json[name] = value }
        return try OAuthClient.Configuration(json: .object(json))
    }

    // MARK: - Configuration

    @Test func theConfigurationPicksTheMethodFromTheCredential() throws {
        let issuer: JSONValue = .string(Self.issuer)
        let basic = try Self.configuration(["client_id": "c", "client_secret": "s", "client_issuer": issuer])
        #expect(basic.grant == .authorizationCode)
        #expect(basic.preRegistered[Self.issuer]?.authMethod == .clientSecretBasic)
        let post = try Self.configuration([
            "client_id": "c", "client_secret": "s", "client_issuer": issuer,
            "token_endpoint_auth_method": "client_secret_post", "grant": "client_credentials",
        ])
        #expect(post.grant == .clientCredentials && post.preRegistered[Self.issuer]?.authMethod == .clientSecretPost)
        let keyed = try Self.configuration([
            "client_id": "c", "private_key": Self.rsa, "client_issuer": issuer, "grant": "client_credentials",
        ])
        let credentials = try #require(keyed.preRegistered[Self.issuer])
        #expect(credentials.authMethod == .privateKeyJWT && credentials.privateKey?.algorithms == [.RS256])
        #expect(credentials.privateKey?.keyID == "rsa-1")
        // The key as JSON text is the same key.
        let text = try Self.configuration([
            "client_id": "c", "private_key": .string(Self.rsa.serialized()), "client_issuer": issuer,
        ])
        #expect(text.preRegistered[Self.issuer] == credentials)
        // Without its own alg a key may sign with any algorithm of its type, the usual one first.
        let open = try ClientAssertionKey(jwk: Self.without(Self.rsa, "alg"))
        #expect(open.algorithms.first == .RS256 && open.algorithms.contains(.PS256))
        #expect(try ClientAssertionKey(jwk: Self.without(Self.ec, "alg")).algorithms == [.ES256])
        #expect(try ClientAssertionKey(jwk: Self.without(Self.ed, "alg")).algorithms.first == .EdDSA)
        // A public client keeps "none" and the any-issuer entry.
        let public_ = try Self.configuration(["client_id": "c", "token_endpoint_auth_method": "none"])
        #expect(public_.preRegistered["*"]?.authMethod == TokenEndpointAuthMethod.none)
    }

    @Test func everyInconsistentConfigurationIsRefusedByName() throws {
        let issuer: JSONValue = .string(Self.issuer)
        let publicJWK = try JSONWebKey(jwk: Self.rsa).publicJWK()
        let cases: [([String: JSONValue], String)] = [
            (["grant": "password"], "grant:"),
            (
                ["client_id": "c", "token_endpoint_auth_method": "client_secret_jwt"],
                "token_endpoint_auth_method: one of"
            ),
            (["token_endpoint_auth_method": "none"], "need client_id"),
            (["private_key": Self.rsa], "need client_id"),
            (["client_id": "c", "private_key": Self.rsa], "private_key: needs client_issuer"),
            (["client_id": "c", "client_secret": "s"], "client_secret: needs client_issuer"),
            (
                ["client_id": "c", "client_secret": "s", "private_key": Self.rsa, "client_issuer": issuer],
                "not both"
            ),
            (
                ["client_id": "c", "client_issuer": issuer, "token_endpoint_auth_method": "private_key_jwt"],
                "private_key_jwt: needs private_key"
            ),
            (
                ["client_id": "c", "client_issuer": issuer, "token_endpoint_auth_method": "client_secret_post"],
                "client_secret_post: needs client_secret"
            ),
            (
                [
                    "client_id": "c", "client_issuer": issuer, "private_key": Self.rsa,
                    "token_endpoint_auth_method": "client_secret_basic",
                ], "client_secret_basic: needs client_secret"
            ),
            (
                [
                    "client_id": "c", "client_issuer": issuer, "client_secret": "s",
                    "token_endpoint_auth_method": "private_key_jwt",
                ], "private_key_jwt: needs private_key"
            ),
            (
                [
                    "client_id": "c", "client_issuer": issuer, "client_secret": "s",
                    "token_endpoint_auth_method": "none",
                ], "none: sends no credential"
            ),
            (["client_id": "c", "client_issuer": issuer, "client_secret": ""], "client_secret: must not be empty"),
            (["client_id": "c", "client_issuer": issuer, "private_key": publicJWK], "a public JWK"),
            (
                ["client_id": "c", "client_issuer": issuer, "private_key": ["kty": "oct", "k": "c2VjcmV0LXNlY3JldA"]],
                "shared-secret (oct)"
            ),
            (
                ["client_id": "c", "client_issuer": issuer, "private_key": Self.with(Self.rsa, "alg", "RSA-OAEP")],
                "not an algorithm we sign with"
            ),
            (
                ["client_id": "c", "client_issuer": issuer, "private_key": Self.with(Self.rsa, "alg", "HS256")],
                "not an algorithm we sign with"
            ),
            (
                ["client_id": "c", "client_issuer": issuer, "private_key": Self.with(Self.ec, "alg", "ES384")],
                "does not fit"
            ),
            (
                ["client_id": "c", "client_issuer": issuer, "private_key": Self.with(Self.rsa, "use", "enc")],
                "do not permit signing"
            ),
            (
                ["client_id": "c", "client_issuer": issuer, "private_key": Self.with(Self.rsa, "key_ops", ["verify"])],
                "do not permit signing"
            ),
            (["client_id": "c", "client_issuer": issuer, "private_key": "{not json"], "not a JWK's JSON text"),
            // The private part of one key beside the public part of another.
            (
                [
                    "client_id": "c", "client_issuer": issuer,
                    "private_key": Self.with(Self.ec, "d", Self.other.ec["d"]!),
                ],
                "does not match"
            ),
            (
                [
                    "client_id": "c", "client_issuer": issuer,
                    "private_key": Self.with(Self.ed, "d", Self.other.ed["d"]!),
                ],
                "does not match"
            ),
            (
                [
                    "client_id": "c", "client_issuer": issuer,
                    "private_key": Self.without(
                        Self.with(Self.rsa, "d", Self.other.rsa["d"]!),
                        "p",
                        "q",
                        "dp",
                        "dq",
                        "qi"
                    ),
                ], "does not match"
            ),
            (["client_id": "c", "client_issuer": issuer, "private_key": 7], "must be a JWK"),
            (["client_id": "c", "client_issuer": issuer, "private_key": ["kty": "RSA"]], "private_key: JWK member"),
            (["client_id": "c", "client_secret": "s", "client_issuer": "*"], "client_issuer: the authorization"),
            (["client_id": "c", "client_secret": "s", "client_issuer": ""], "client_issuer: the authorization"),
            (
                ["client_id": "c", "client_secret": "s", "client_issuer": "http://auth.example.com"],
                "client_issuer: the authorization"
            ),
            (
                ["client_id": "c", "client_secret": "s", "client_issuer": "https://auth.example.com/?tenant=1"],
                "client_issuer: the authorization"
            ),
            (["grant": "client_credentials"], "grant client_credentials: needs client_id"),
            (["grant": "client_credentials", "client_id": "c"], "grant client_credentials: needs client_id"),
            (
                ["grant": "client_credentials", "client_id": "c", "client_issuer": issuer],
                "grant client_credentials: needs client_id"
            ),
            (
                [
                    "grant": "client_credentials", "client_id": "c", "client_issuer": issuer, "client_secret": "s",
                    "client_metadata_url": "https://app.example.com/client.json",
                ], "client_metadata_url: not used"
            ),
        ]
        for (json, message) in cases {
            do {
                _ = try Self.configuration(json)
                Issue.record("accepted \(JSONValue.object(json).serialized())")
            } catch let error as AuthError {
                #expect(error.code == .invalidConfig, "\(error)")
                #expect(error.message.contains(message), "\(error.message) lacks \(message)")
                // Never the secret or the key in the message.
                #expect(!error.message.contains("\"d\":") && !error.message.contains("c2VjcmV0"))
            }
        }
    }

    @Test func theSwiftConfigurationIsCheckedToo() throws {
        let store = try Store(url: "memory://")
        var configuration = OAuthClient.Configuration(serverURL: "https://mcp.example.com/mcp")
        configuration.grant = .clientCredentials
        #expect(outcome { try OAuthClient(configuration: configuration, store: store) } == .invalidConfig)
        configuration.preRegistered = ["*": ClientCredentials(clientID: "public")]
        #expect(outcome { try OAuthClient(configuration: configuration, store: store) } == .invalidConfig)
        let key = try ClientAssertionKey(jwk: Self.ec)
        configuration.preRegistered = ["*": ClientCredentials(clientID: "c", privateKey: key)]
        #expect(outcome { try OAuthClient(configuration: configuration, store: store) } == .invalidConfig)
        configuration.preRegistered = [Self.issuer: ClientCredentials(clientID: "c", authMethod: .clientSecretPost)]
        #expect(outcome { try OAuthClient(configuration: configuration, store: store) } == .invalidConfig)
        configuration.preRegistered = [Self.issuer: ClientCredentials(clientID: "c", privateKey: key)]
        #expect(outcome { try OAuthClient(configuration: configuration, store: store) } == .ok)
    }

    @Test func descriptionsHideTheSecretAndTheKey() throws {
        let key = try ClientAssertionKey(jwk: Self.rsa)
        let d = try #require(Self.rsa["d"]?.stringValue)
        let credentials = ClientCredentials(clientID: "c", privateKey: key)
        for text in [
            "\(credentials)", String(reflecting: credentials), "\(key)", String(reflecting: key),
            {
                var out = ""
                dump(credentials, to: &out)
                return out
            }(),
            {
                var out = ""
                dump(key, to: &out)
                return out
            }(),
        ] {
            #expect(!text.contains(d.prefix(16)), "\(text)")
        }
        #expect("\(credentials)".contains("privateKey: <redacted>") && "\(key)".contains("kid: rsa-1"))
        let secret = ClientCredentials(clientID: "c", clientSecret: "hunter2-secret")
        #expect(!"\(secret)".contains("hunter2") && !String(reflecting: secret).contains("hunter2"))
        // Nor the configuration that holds them.
        var configuration = OAuthClient.Configuration(serverURL: "https://mcp.example.com/mcp")
        configuration.preRegistered = [Self.issuer: secret, "https://other.example.com": credentials]
        for text in [
            "\(configuration)", String(reflecting: configuration),
            {
                var out = ""
                dump(configuration, to: &out)
                return out
            }(),
        ] {
            #expect(!text.contains("hunter2") && !text.contains(d.prefix(16)), "\(text)")
        }
        let request = try ClientAuthentication.authenticate(
            [("grant_type", "client_credentials")],
            credentials: secret,
            server: try Self.server(),
            now: 1_700_000_000
        )
        #expect(!"\(request)".contains("hunter2") && !"\(request)".contains("Basic "))
    }

    // MARK: - The assertion

    @Test(arguments: ["rsa", "ec", "ed"]) func theAssertionsClaimsHeaderAndSignature(_ name: String) throws {
        let jwk = name == "rsa" ? Self.rsa : name == "ec" ? Self.ec : Self.ed
        let key = try ClientAssertionKey(jwk: jwk)
        let algorithm = try #require(key.algorithms.first)
        let now = 1_700_000_000.75
        let assertion = try ClientAssertion.make(
            clientID: "svc-7",
            audience: Self.issuer,
            key: key,
            algorithm: algorithm,
            now: now
        )
        let decoded = try JWT.decode(Array(assertion.utf8))
        #expect(decoded.header["alg"] == .string(algorithm.rawValue) && decoded.header["typ"] == "JWT")
        #expect(decoded.header["kid"] == key.keyID.map { .string($0) })
        let claims = try #require(try JSONValue.parse(decoded.payload).objectValue)
        #expect(claims["iss"] == "svc-7" && claims["sub"] == "svc-7" && claims["aud"] == .string(Self.issuer))
        let iat = try #require(claims["iat"]?.numberValue)
        let exp = try #require(claims["exp"]?.numberValue)
        #expect(iat == 1_700_000_000 && exp > iat && exp - iat <= 300)
        #expect((claims["jti"]?.stringValue?.count ?? 0) >= 22)
        // The repository's own verifier accepts it for that issuer and audience, with the public key only.
        let verifier = try JWTVerifier(
            json: [
                "jwks": ["keys": [try JSONWebKey(jwk: jwk).publicJWK()]], "issuer": "svc-7",
                "audience": .string(Self.issuer), "algorithms": [.string(algorithm.rawValue)],
            ],
            clock: { now + 1 }
        )
        #expect(try verifier.verify(assertion).subject == "svc-7")
        // A minute and a bit later it has expired.
        let later = try JWTVerifier(
            json: [
                "jwks": ["keys": [try JSONWebKey(jwk: jwk).publicJWK()]], "issuer": "svc-7",
                "audience": .string(Self.issuer), "algorithms": [.string(algorithm.rawValue)], "leeway": 0,
            ],
            clock: { now + 301 }
        )
        #expect(outcome { try later.verify(assertion) } == .expired)
    }

    @Test func everyAssertionHasItsOwnJTI() throws {
        let key = try ClientAssertionKey(jwk: Self.ec)
        var seen = Set<String>()
        for _ in 0..<500 {
            let assertion = try ClientAssertion.make(
                clientID: "c",
                audience: Self.issuer,
                key: key,
                algorithm: .ES256,
                now: 1_700_000_000
            )
            let payload = try JSONValue.parse(try JWT.decode(Array(assertion.utf8)).payload)
            seen.insert(try #require(payload["jti"]?.stringValue))
        }
        #expect(seen.count == 500)
        // A clock that is not a time is an error, not a trap.
        for now in [Double.nan, .infinity, -1, 1e300] {
            #expect(
                outcome {
                    try ClientAssertion.make(clientID: "c", audience: "a", key: key, algorithm: .ES256, now: now)
                } == .internalError
            )
        }
        #expect(
            outcome {
                try ClientAssertion.make(clientID: "c", audience: "a", key: key, algorithm: .RS256, now: 1)
            } == .keyTypeMismatch
        )
    }

    // MARK: - Token requests

    @Test func eachMethodPutsItsCredentialWhereItBelongs() throws {
        let server = try Self.server()
        let form = [("grant_type", "client_credentials"), ("client_id", "stale"), ("resource", "https://m/mcp")]
        // Basic: id and secret each form-urlencoded, then base64 (RFC 6749 §2.3.1); no client_id in the body.
        let basic = try ClientAuthentication.authenticate(
            form,
            credentials: ClientCredentials(clientID: "svc:1", clientSecret: "p@ss w/rd+é"),
            server: server,
            now: 1_700_000_000
        )
        let header = try #require(basic.headers.first { $0.0 == "Authorization" }?.1)
        let decoded = try #require(Base64.decode(String(header.dropFirst("Basic ".count)), alphabet: .standard))
        #expect(String(decoding: decoded, as: UTF8.self) == "svc%3A1:p%40ss%20w%2Frd%2B%C3%A9")
        #expect(Parameters(basic.form)["client_id"] == nil && Parameters(basic.form)["client_secret"] == nil)
        #expect(Parameters(basic.form)["grant_type"] == "client_credentials")
        // Post: both in the body, no header.
        let post = try ClientAuthentication.authenticate(
            form,
            credentials: ClientCredentials(clientID: "svc", clientSecret: "s3", authMethod: .clientSecretPost),
            server: server,
            now: 1_700_000_000
        )
        #expect(!post.headers.contains { $0.0 == "Authorization" })
        #expect(Parameters(post.form)["client_id"] == "svc" && Parameters(post.form)["client_secret"] == "s3")
        #expect(!Parameters(post.form).hasDuplicates)
        // private_key_jwt: the assertion type and a signed assertion for the issuer; no secret.
        let key = try ClientAssertionKey(jwk: Self.rsa)
        let jwt = try ClientAuthentication.authenticate(
            form,
            credentials: ClientCredentials(clientID: "svc", privateKey: key),
            server: server,
            now: 1_700_000_000
        )
        let parameters = Parameters(jwt.form)
        #expect(!jwt.headers.contains { $0.0 == "Authorization" } && parameters["client_secret"] == nil)
        #expect(parameters["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        #expect(parameters["client_id"] == "svc" && !parameters.hasDuplicates)
        let assertion = try #require(parameters["client_assertion"])
        let claims = try JSONValue.parse(try JWT.decode(Array(assertion.utf8)).payload)
        #expect(claims["aud"] == .string(Self.issuer) && claims["iss"] == "svc")
        // None: the client id alone.
        let none = try ClientAuthentication.authenticate(
            form,
            credentials: ClientCredentials(clientID: "pub"),
            server: server,
            now: 1_700_000_000
        )
        #expect(Parameters(none.form)["client_id"] == "pub" && none.headers.count == 2)
        // The grant's own form.
        let grant = try ClientCredentialsGrant(
            preRegistered: [Self.issuer: ClientCredentials(clientID: "svc", clientSecret: "s")],
            server: server,
            scopes: ["read", "write"],
            resource: "https://mcp.example.com/mcp"
        )
        let grantForm = Parameters(grant.form)
        #expect(grantForm["grant_type"] == "client_credentials" && grantForm["scope"] == "read write")
        #expect(grantForm["resource"] == "https://mcp.example.com/mcp")
    }

    // MARK: - The server's metadata

    @Test func theServersMetadataDecidesBeforeAnythingIsSent() throws {
        let secret = ClientCredentials(clientID: "svc", clientSecret: "s")
        let post = ClientCredentials(clientID: "svc", clientSecret: "s", authMethod: .clientSecretPost)
        let key = try ClientAssertionKey(jwk: Self.without(Self.rsa, "alg"))
        let jwt = ClientCredentials(clientID: "svc", privateKey: key)
        let methods = "token_endpoint_auth_methods_supported"
        // Not listed: any method goes (RFC 8414 defaults are not used to refuse).
        #expect(try ClientAuthentication.check(post, server: try Self.server()) == nil)
        #expect(try ClientAuthentication.check(jwt, server: try Self.server()) == .RS256)
        // Listed without ours: discovery_failed, naming what the server takes.
        for (credentials, listed) in [
            (post, ["client_secret_basic"]), (secret, ["client_secret_post"]), (jwt, ["client_secret_basic"]),
        ] {
            do {
                _ = try ClientAuthentication.check(
                    credentials,
                    server: try Self.server([methods: .array(listed.map { .string($0) })])
                )
                Issue.record("accepted \(credentials.authMethod) against \(listed)")
            } catch let error as AuthError {
                #expect(error.code == .discoveryFailed && error.message.contains(listed[0]), "\(error)")
            }
        }
        // A public client is not refused for a list without "none" (unchanged behaviour).
        #expect(
            try ClientAuthentication.check(
                ClientCredentials(clientID: "p"),
                server: try Self.server([methods: ["client_secret_basic"]])
            ) == nil
        )
        // Signing algorithms: the first of ours the server lists; none of ours is discovery_failed.
        let algs = "token_endpoint_auth_signing_alg_values_supported"
        let listed: JSONValue = ["private_key_jwt"]
        #expect(
            try ClientAuthentication.check(jwt, server: try Self.server([methods: listed, algs: ["ES256", "PS256"]]))
                == .PS256
        )
        #expect(
            outcome { try ClientAuthentication.check(jwt, server: try Self.server([algs: ["ES256"]])) }
                == .discoveryFailed
        )
        let pinned = ClientCredentials(clientID: "svc", privateKey: try ClientAssertionKey(jwk: Self.rsa))
        #expect(
            outcome { try ClientAuthentication.check(pinned, server: try Self.server([algs: ["PS256"]])) }
                == .discoveryFailed
        )
        // The grant: a server that lists its grants without client_credentials, another issuer.
        func grant(_ preRegistered: [String: ClientCredentials], _ server: [String: JSONValue] = [:]) -> ErrorCode {
            outcome {
                try ClientCredentialsGrant(
                    preRegistered: preRegistered,
                    server: try Self.server(server),
                    scopes: [],
                    resource: "https://m/mcp"
                )
            }
        }
        #expect(
            grant([Self.issuer: secret], ["grant_types_supported": ["authorization_code", "refresh_token"]])
                == .discoveryFailed
        )
        #expect(
            grant(["https://other.example.com": secret, "*": ClientCredentials(clientID: "p")]) == .discoveryFailed
        )
        #expect(grant([Self.issuer: ClientCredentials(clientID: "p")]) == .invalidConfig)
        #expect(grant([Self.issuer: secret], ["grant_types_supported": ["client_credentials"]]) == .ok)
    }

    @Test func tokenEndpointRefusalsHaveTheirOwnCodes() {
        func error(_ status: Int, _ code: String?) -> AuthError {
            let body = code.map { Array(#"{"error":"\#($0)"}"#.utf8) } ?? []
            return ClientCredentialsGrant.error(for: TokenErrorResponse(status: status, body: body))
        }
        #expect(error(401, "invalid_client").code == .authorizationDenied)
        #expect(error(401, "invalid_client").message.contains("refused the client's credentials"))
        #expect(error(401, nil).message.contains("invalid_client"))
        #expect(error(400, "unauthorized_client").message.contains("unauthorized_client"))
        #expect(error(400, "invalid_scope").message.contains("invalid_scope"))
        #expect(error(400, "unsupported_grant_type").code == .authorizationDenied)
        #expect(error(503, nil).code == .upstreamUnavailable && error(429, "slow_down").code == .upstreamUnavailable)
        #expect(error(400, "weird\\u0007code").message.contains("weird?code"))
    }

    // MARK: - The driver

    /// A resource and its authorization server on one loopback port; the token endpoint answers
    /// what `answer` says and records every form it received.
    final class Served: Sendable {
        let server: LocalHTTPServer
        let forms = Locked<[[String: String]]>([])
        let authorizations = Locked<[String?]>([])
        let answer: Locked<@Sendable (_ form: [String: String], _ count: Int) -> LocalHTTPServer.Response>
        var base: String { server.baseURL }

        init(metadata: [String: JSONValue] = [:]) throws {
            let forms = self.forms
            let authorizations = self.authorizations
            let answer = Locked<@Sendable ([String: String], Int) -> LocalHTTPServer.Response>({ form, count in
                let body: JSONValue = [
                    "access_token": .string("tok-\(count)"), "token_type": "Bearer", "expires_in": 3600,
                    "scope": .string(form["scope"] ?? ""),
                ]
                return .init(body: Array(body.serialized().utf8))
            })
            self.answer = answer
            let base = Locked("")
            server = try LocalHTTPServer(requestHandler: { request in
                let origin = base.withLock { $0 }
                switch request.path {
                case "/.well-known/oauth-protected-resource/mcp":
                    let document: JSONValue = [
                        "resource": .string(origin + "/mcp"), "authorization_servers": [.string(origin)],
                        "scopes_supported": ["read"],
                    ]
                    return .init(body: Array(document.serialized().utf8))
                case "/.well-known/oauth-authorization-server":
                    var document: [String: JSONValue] = [
                        "issuer": .string(origin), "token_endpoint": .string(origin + "/token"),
                        "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
                        "authorization_endpoint": .string(origin + "/authorize"),
                        "code_challenge_methods_supported": ["S256"],
                    ]
                    for (name, value) in metadata { document[name] = value }
                    return .init(body: Array(JSONValue.object(document).serialized().utf8))
                case "/token":
                    var form = [String: String]()
                    for (name, value) in Form.decode(String(decoding: request.body, as: UTF8.self)) ?? [] {
                        form[name] = value
                    }
                    let count = forms.withLock { all in
                        all.append(form)
                        return all.count
                    }
                    authorizations.withLock { $0.append(request.headers["authorization"]) }
                    return answer.withLock { $0 }(form, count)
                default:
                    return .init(status: 404)
                }
            })
            base.withLock { $0 = server.baseURL }
        }

        func client(
            clock: TestClock,
            method: TokenEndpointAuthMethod = .clientSecretBasic,
            secret: String = "s3cret",
            scopes: [String] = []
        ) throws -> OAuthClient {
            var configuration = OAuthClient.Configuration(serverURL: base + "/mcp")
            configuration.grant = .clientCredentials
            configuration.scopes = scopes
            configuration.httpTimeout = 5
            configuration.preRegistered = [
                base: ClientCredentials(clientID: "svc", clientSecret: secret, authMethod: method)
            ]
            var options = Store.Options()
            options.encryptionKeys = [try Fernet.generateKey()]
            let client = try OAuthClient(
                configuration: configuration,
                store: try Store(url: "memory://", options: options),
                clock: clock.function
            )
            client.setBrowser { _ in Issue.record("a browser was opened for client_credentials") }
            return client
        }
    }

    @Test func theDriverCachesRenewsAndStepsUpWithoutABrowser() throws {
        let served = try Served()
        defer { served.server.stop() }
        let clock = TestClock(1_700_000_000)
        let client = try served.client(clock: clock, scopes: ["read"])
        #expect(try client.token() == "tok-1")
        #expect(try client.token() == "tok-1")
        let first = try #require(served.forms.withLock { $0.first })
        #expect(first["grant_type"] == "client_credentials" && first["scope"] == "read")
        #expect(first["resource"] == served.base + "/mcp" && first["client_id"] == nil && first["client_secret"] == nil)
        #expect(served.authorizations.withLock { $0.first ?? nil }?.hasPrefix("Basic ") == true)
        // A 401: a new token.
        client.challenge(status: 401, wwwAuthenticate: #"Bearer error="invalid_token""#)
        #expect(try client.token() == "tok-2")
        // Expired: a new token.
        clock.advance(3700)
        #expect(try client.token() == "tok-3")
        // insufficient_scope for a scope beyond the configured ones: no person approves this
        // grant, so the server cannot widen it by asking; nothing is requested.
        let forbidden = #"Bearer error="insufficient_scope", scope="write""#
        client.challenge(status: 403, wwwAuthenticate: forbidden)
        let refused = try #require(throws: AuthError.self) { try client.token() }
        #expect(refused.code == .insufficientScope && refused.message.contains("write"))
        #expect(served.forms.withLock { $0.count } == 3)
        // Asking again for a configured scope is a new request for the same scopes.
        client.challenge(status: 403, wwwAuthenticate: #"Bearer error="insufficient_scope", scope="read""#)
        #expect(try client.token() == "tok-4")
        #expect(served.forms.withLock { $0.last?["scope"] } == "read")
        #expect(try client.token() == "tok-4")
    }

    @Test func withoutConfiguredScopesTheServerChoosesAndStepsUpTwiceAtMost() throws {
        let served = try Served()
        defer { served.server.stop() }
        let client = try served.client(clock: TestClock(1_700_000_000))
        // The resource's scopes_supported, then the union with the challenged scope, twice, then
        // the error; the next request starts over with the cache.
        #expect(try client.token() == "tok-1")
        #expect(served.forms.withLock { $0.last?["scope"] } == "read")
        let forbidden = #"Bearer error="insufficient_scope", scope="write""#
        client.challenge(status: 403, wwwAuthenticate: forbidden)
        #expect(try client.token() == "tok-2")
        let union = served.forms.withLock { $0.last?["scope"] ?? "" }.split(separator: " ")
        #expect(Set(union) == ["read", "write"] && union.count == 2)
        client.challenge(status: 403, wwwAuthenticate: forbidden)
        #expect(try client.token() == "tok-3")
        client.challenge(status: 403, wwwAuthenticate: forbidden)
        #expect(outcome { try client.token() } == .insufficientScope)
        #expect(try client.token() == "tok-3")
        #expect(served.forms.withLock { $0.count } == 3)
    }

    @Test func aServiceAndAPersonSharingOneCacheKeepTheirOwnTokens() throws {
        let served = try Served()
        defer { served.server.stop() }
        var options = Store.Options()
        options.encryptionKeys = [try Fernet.generateKey()]
        let store = try Store(url: "memory://", options: options)
        func client(_ grant: ClientGrant, id: String) throws -> OAuthClient {
            var configuration = OAuthClient.Configuration(serverURL: served.base + "/mcp")
            configuration.grant = grant
            configuration.httpTimeout = 5
            if grant == .clientCredentials {
                configuration.preRegistered = [served.base: ClientCredentials(clientID: id, clientSecret: "s3cret")]
            } else {
                configuration.preRegistered = [served.base: ClientCredentials(clientID: id)]
            }
            let client = try OAuthClient(
                configuration: configuration,
                store: store,
                clock: TestClock(1_700_000_000).function
            )
            client.setBrowser { _ in }
            return client
        }
        let service = try client(.clientCredentials, id: "svc")
        #expect(try service.token() == "tok-1")
        // Another service with another client id, and a person's client of the same resource: none
        // of them is handed the first service's token.
        let other = try client(.clientCredentials, id: "svc-2")
        #expect(other.cachedAccessToken() == nil)
        #expect(try other.token() == "tok-2")
        let person = try client(.authorizationCode, id: "person-app")
        #expect(person.cachedAccessToken() == nil)
        #expect(try service.token() == "tok-1" && other.token() == "tok-2")
        // Logging one out leaves the others.
        try person.logout()
        #expect(service.cachedAccessToken() == "tok-1")
        try service.logout()
        #expect(service.cachedAccessToken() == nil && other.cachedAccessToken() == "tok-2")
    }

    @Test func aDynamicRegistrationsAssignedMethodIsUsed() throws {
        let server = try Self.server(["token_endpoint_auth_methods_supported": ["client_secret_post", "none"]])
        func registered(_ secret: String?, _ method: String?) throws -> ClientCredentials {
            try ClientCredentials.registered(clientID: "dyn", clientSecret: secret, method: method, server: server)
        }
        #expect(try registered(nil, nil) == ClientCredentials(clientID: "dyn"))
        #expect(try registered(nil, "none") == ClientCredentials(clientID: "dyn"))
        #expect(try registered("x", "none") == ClientCredentials(clientID: "dyn"))
        #expect(try registered("x", "client_secret_post").authMethod == .clientSecretPost)
        #expect(try registered("x", "client_secret_basic").authMethod == .clientSecretBasic)
        // No method named: the one the server lists (post only here), else basic.
        #expect(try registered("x", nil).authMethod == .clientSecretPost)
        let basic = try ClientCredentials.registered(
            clientID: "dyn",
            clientSecret: "x",
            method: nil,
            server: try Self.server()
        )
        #expect(basic.authMethod == .clientSecretBasic)
        let secret = "zq-registered-secret"
        for (given, method) in [(nil, "client_secret_basic"), (secret, "private_key_jwt"), (secret, "tls_client_auth")]
        {
            let error = try #require(throws: AuthError.self) { try registered(given, method) }
            #expect(error.code == .registrationFailed && !error.message.contains(secret))
            #expect(error.message.contains(method))
        }
    }

    @Test func aFailedRefreshFallsBackToANewRequest() throws {
        let served = try Served()
        defer { served.server.stop() }
        served.answer.withLock {
            $0 = { form, count in
                if form["grant_type"] == "refresh_token" {
                    // The first refresh works, the second is refused, the third finds the server down.
                    if count == 2 {
                        let body: JSONValue = [
                            "access_token": "refreshed", "token_type": "Bearer", "expires_in": 3600,
                            "refresh_token": "rt-2",
                        ]
                        return .init(body: Array(body.serialized().utf8))
                    }
                    if count == 3 { return .init(status: 400, body: Array(#"{"error":"invalid_grant"}"#.utf8)) }
                    return .init(status: 503)
                }
                let body: JSONValue = [
                    "access_token": .string("tok-\(count)"), "token_type": "Bearer", "expires_in": 3600,
                    "refresh_token": .string("rt-\(count)"),
                ]
                return .init(body: Array(body.serialized().utf8))
            }
        }
        let clock = TestClock(1_700_000_000)
        let client = try served.client(clock: clock, method: .clientSecretPost)
        #expect(try client.token() == "tok-1")
        clock.advance(3700)
        #expect(try client.token() == "refreshed")
        let refresh = try #require(served.forms.withLock { $0.last })
        #expect(
            refresh["refresh_token"] == "rt-1" && refresh["client_secret"] == "s3cret" && refresh["client_id"] == "svc"
        )
        clock.advance(3700)
        // invalid_grant: the chain is dead; a new client_credentials request, not a browser.
        #expect(try client.token() == "tok-4")
        #expect(
            served.forms.withLock { $0.map { $0["grant_type"] ?? "" } }.suffix(2) == [
                "refresh_token", "client_credentials",
            ]
        )
        clock.advance(3700)
        // The refresh fails (503) and the access token has expired: a new request, which succeeds.
        #expect(try client.token() == "tok-6")
    }

    @Test func refusalsAndOutagesAreNamed() throws {
        let served = try Served()
        defer { served.server.stop() }
        served.answer.withLock {
            $0 = { form, _ in
                form["client_secret"] == "right"
                    ? .init(status: 500) : .init(status: 401, body: Array(#"{"error":"invalid_client"}"#.utf8))
            }
        }
        let clock = TestClock(1_700_000_000)
        do {
            _ = try served.client(clock: clock, method: .clientSecretPost, secret: "wrong").token()
            Issue.record("a refused secret gave a token")
        } catch let error as AuthError {
            #expect(error.code == .authorizationDenied && error.message.contains("invalid_client"))
            #expect(!error.message.contains("wrong"))
        }
        #expect(
            outcome { try served.client(clock: clock, method: .clientSecretPost, secret: "right").token() }
                == .upstreamUnavailable
        )
        // The token endpoint cannot be reached.
        let closed = try LocalHTTPServer(handler: { _ in .init(status: 404) })
        let unreachable = closed.baseURL + "/token"
        closed.stop()
        let gone = try Served(metadata: ["token_endpoint": .string(unreachable)])
        defer { gone.server.stop() }
        #expect(outcome { try gone.client(clock: clock).token() } == .upstreamUnavailable)
    }

    @Test func aMethodTheServerDoesNotListIsNeverSent() throws {
        let served = try Served(metadata: ["token_endpoint_auth_methods_supported": ["private_key_jwt"]])
        defer { served.server.stop() }
        let client = try served.client(clock: TestClock(1_700_000_000), method: .clientSecretBasic)
        #expect(outcome { try client.token() } == .discoveryFailed)
        #expect(served.forms.withLock { $0.isEmpty })
    }

    @Test func privateKeyJWTAgainstTheTokenEndpoint() throws {
        let served = try Served(metadata: [
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
        ])
        defer { served.server.stop() }
        var configuration = OAuthClient.Configuration(serverURL: served.base + "/mcp")
        configuration.grant = .clientCredentials
        configuration.preRegistered = [
            served.base: ClientCredentials(clientID: "svc", privateKey: try ClientAssertionKey(jwk: Self.ec))
        ]
        let clock = TestClock(1_700_000_000)
        let client = try OAuthClient(
            configuration: configuration,
            store: try Store(url: "memory://"),
            clock: clock.function
        )
        #expect(try client.token() == "tok-1")
        client.challenge(status: 401, wwwAuthenticate: "Bearer")
        #expect(try client.token() == "tok-2")
        let forms = served.forms.withLock { $0 }
        let assertions = forms.compactMap { $0["client_assertion"] }
        #expect(assertions.count == 2 && Set(assertions).count == 2)
        let verifier = try JWTVerifier(
            json: [
                "jwks": ["keys": [try JSONWebKey(jwk: Self.ec).publicJWK()]], "issuer": "svc",
                "audience": .string(served.base), "algorithms": ["ES256"],
            ],
            clock: clock.function
        )
        for assertion in assertions { #expect(try verifier.verify(assertion).subject == "svc") }
        #expect(served.authorizations.withLock { $0.allSatisfy { $0 == nil } })
    }
    /// A pre-registered confidential client signing in with a browser: the code exchange and the
    /// refresh use its configured method too (not only basic-or-none).
    @Test(arguments: [TokenEndpointAuthMethod.clientSecretPost, .privateKeyJWT])
    func theAuthorizationCodeFlowUsesTheConfiguredMethod(_ method: TokenEndpointAuthMethod) throws {
        let served = try Served()
        defer { served.server.stop() }
        served.answer.withLock {
            $0 = { _, count in
                let body: JSONValue = [
                    "access_token": .string("tok-\(count)"), "token_type": "Bearer", "expires_in": 3600,
                    "refresh_token": .string("rt-\(count)"),
                ]
                return .init(body: Array(body.serialized().utf8))
            }
        }
        var configuration = OAuthClient.Configuration(serverURL: served.base + "/mcp")
        configuration.signInTimeout = 10
        configuration.preRegistered = [
            served.base: method == .clientSecretPost
                ? ClientCredentials(clientID: "app", clientSecret: "s3cret", authMethod: .clientSecretPost)
                : ClientCredentials(clientID: "app", privateKey: try ClientAssertionKey(jwk: Self.ec))
        ]
        let clock = TestClock(1_700_000_000)
        let client = try OAuthClient(
            configuration: configuration,
            store: try Store(url: "memory://"),
            clock: clock.function
        )
        // A browser that approves at once: back to the loopback redirect with a code and the state.
        client.setBrowser { url in
            let query = String(url.split(separator: "?", maxSplits: 1).last ?? "")
            let parameters = Parameters(Form.decode(query) ?? [])
            let back =
                (parameters["redirect_uri"] ?? "") + "?"
                + Form.encode([("code", "the-code"), ("state", parameters["state"] ?? "")])
            Thread { _ = try? CurlHTTPClient().send(HTTPRequest(url: back, timeout: 10)) }.start()
        }
        #expect(try client.token() == "tok-1")
        clock.advance(3700)
        #expect(try client.token() == "tok-2")
        let forms = served.forms.withLock { $0 }
        #expect(forms.map { $0["grant_type"] ?? "" } == ["authorization_code", "refresh_token"])
        #expect(forms[0]["code"] == "the-code" && forms[1]["refresh_token"] == "rt-1")
        #expect(served.authorizations.withLock { $0.allSatisfy { $0 == nil } })
        for form in forms {
            #expect(form["client_id"] == "app")
            if method == .clientSecretPost {
                #expect(form["client_secret"] == "s3cret" && form["client_assertion"] == nil)
            } else {
                let assertion = try #require(form["client_assertion"])
                let claims = try JSONValue.parse(try JWT.decode(Array(assertion.utf8)).payload)
                #expect(claims["aud"] == .string(served.base) && claims["sub"] == "app" && form["client_secret"] == nil)
            }
        }
    }
}
