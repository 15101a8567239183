import Foundation
import Synchronization
import Testing

@testable import FastMCPAuth

/// Resource-server mode: discovery routes, challenges, providers and FastMCP's environment.
@Suite struct AuthFacadeTests {
    static let key = try! JSONWebKey.generate(.RS256, keyID: "k1")
    let clock = TestClock(1_800_000_000)

    func token(_ claims: [String: JSONValue]) throws -> String {
        var all: [String: JSONValue] = ["sub": "alice", "exp": .int(Int64(clock.now) + 300)]
        all.merge(claims) { _, new in new }
        return try JWT.sign(claims: .object(all), key: Self.key, algorithm: .RS256)
    }

    func remote(baseURL: String = "https://mcp.example.com/api", scopes: [JSONValue] = ["read"]) throws -> AuthFacade {
        try AuthFacade(
            json: [
                "provider": "remote", "base_url": .string(baseURL), "required_scopes": .array(scopes),
                "authorization_servers": ["https://auth.example.com"], "resource_name": "Demo",
                "token_verifier": [
                    "jwks": ["keys": [try Self.key.publicJWK()]], "audience": "https://mcp.example.com/api/mcp",
                ],
            ],
            clock: clock.function
        )
    }

    @Test func protectedResourceMetadataWithPathInsertion() throws {
        let auth = try remote()
        #expect(auth.resourceURL == "https://mcp.example.com/api/mcp")
        #expect(auth.metadataURL == "https://mcp.example.com/.well-known/oauth-protected-resource/api/mcp")
        for path in ["/.well-known/oauth-protected-resource/api/mcp", "/.well-known/oauth-protected-resource"] {
            let response = try #require(auth.handle(AuthRequest(method: "GET", target: path + "?x=1")))
            #expect(response.status == 200 && response.headers["Content-Type"] == "application/json")
            let document = try JSONValue.parse(response.body)
            #expect(
                document == [
                    "resource": "https://mcp.example.com/api/mcp",
                    "authorization_servers": ["https://auth.example.com"],
                    "scopes_supported": ["read"], "bearer_methods_supported": ["header"], "resource_name": "Demo",
                ]
            )
        }
        #expect(auth.handle(AuthRequest(method: "GET", target: "/mcp")) == nil)
        #expect(auth.handle(AuthRequest(method: "GET", target: "/.well-known/oauth-authorization-server")) == nil)
        #expect(
            auth.handle(AuthRequest(method: "POST", target: "/.well-known/oauth-protected-resource"))?.status == 405
        )
        // The description lists exactly the routes handle() answers.
        #expect(
            auth.description == [
                "provider": "remote", "required_scopes": ["read"],
                "authorization_servers": ["https://auth.example.com"],
                "routes": ["/.well-known/oauth-protected-resource/api/mcp", "/.well-known/oauth-protected-resource"],
                "resource": "https://mcp.example.com/api/mcp",
                "resource_metadata": "https://mcp.example.com/.well-known/oauth-protected-resource/api/mcp",
            ]
        )
        #expect(
            auth.answers(path: "/.well-known/oauth-protected-resource/api/mcp") && !auth.answers(path: "/api/mcp")
                && !auth.answers(path: "/.well-known/oauth-authorization-server")
        )
    }

    @Test func challengesFollowTheSpec() throws {
        let auth = try remote()
        let metadata = "resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/api/mcp\""
        guard case .challenge(let missing) = auth.authenticate(authorization: nil) else {
            Issue.record("no challenge")
            return
        }
        #expect(missing.status == 401)
        #expect(missing.headers["WWW-Authenticate"] == "Bearer \(metadata), scope=\"read\"")
        let aud: JSONValue = "https://mcp.example.com/api/mcp"
        guard
            case .challenge(let expired) = auth.authenticate(
                authorization: "Bearer " + (try token(["aud": aud, "exp": 1]))
            )
        else {
            Issue.record("accepted")
            return
        }
        #expect(
            expired.status == 401
                && expired.headers["WWW-Authenticate"]!.hasPrefix("Bearer error=\"invalid_token\", error_description=")
        )
        #expect(expired.headers["WWW-Authenticate"]!.contains(metadata))
        guard
            case .challenge(let wrongAudience) = auth.authenticate(
                authorization: "Bearer " + (try token(["aud": "https://other", "scope": "read"]))
            )
        else {
            Issue.record("accepted")
            return
        }
        #expect(wrongAudience.status == 401 && wrongAudience.bodyText.contains("invalid_audience"))
        guard
            case .challenge(let scoped) = auth.authenticate(
                authorization: "Bearer " + (try token(["aud": aud, "scope": "read"])),
                requiredScopes: ["write", "admin"]
            )
        else {
            Issue.record("accepted")
            return
        }
        #expect(scoped.status == 403)
        #expect(scoped.headers["WWW-Authenticate"]!.hasPrefix("Bearer error=\"insufficient_scope\""))
        #expect(scoped.headers["WWW-Authenticate"]!.hasSuffix("scope=\"read write admin\""))
        #expect(try JSONValue.parse(scoped.body)["required_scopes"] == ["read", "write", "admin"])
        let good = try token(["aud": aud, "scope": "read write", "client_id": "cli"])
        guard case .authenticated(let access) = auth.authenticate(authorization: "Bearer " + good) else {
            Issue.record("refused")
            return
        }
        #expect(access.token == good && access.clientID == "cli" && access.scopes == ["read", "write"])
        guard case .authenticated = auth.authenticate(authorization: "bearer " + good) else {
            Issue.record("scheme is case-insensitive")
            return
        }
        for header in ["Basic abc", "Bearer", "Bearer a b", "Token " + good] {
            guard case .challenge(let refused) = auth.authenticate(authorization: header) else {
                Issue.record("\(header) accepted")
                continue
            }
            #expect(refused.status == 401 && refused.headers["WWW-Authenticate"]!.contains("error=\"invalid_token\""))
        }
        guard
            case .challenge(let query) = auth.authenticate(
                authorization: "Bearer " + good,
                query: "access_token=" + good
            )
        else {
            Issue.record("query accepted")
            return
        }
        #expect(
            query.status == 401 && !query.bodyText.contains(good) && !query.headers["WWW-Authenticate"]!.contains(good)
        )
    }

    @Test func authKitAgainstALocalAuthorizationServer() throws {
        let requests = Locked([String]())
        let publicJWK = try Self.key.publicJWK()
        var serverURL = ""
        let server = try LocalHTTPServer { path in
            requests.withLock { $0.append(path) }
            switch path {
            case "/oauth2/jwks":
                return LocalHTTPServer.Response(body: Array(JSONValue.object(["keys": [publicJWK]]).serialized().utf8))
            case "/.well-known/oauth-authorization-server":
                return LocalHTTPServer.Response(
                    body: Array(#"{"issuer":"x","authorization_endpoint":"x/oauth2/authorize"}"#.utf8)
                )
            default: return LocalHTTPServer.Response(status: 404)
            }
        }
        defer { server.stop() }
        serverURL = server.baseURL
        let auth = try AuthFacade(
            json: [
                "provider": "authkit", "authkit_domain": .string(serverURL), "base_url": "http://127.0.0.1:8000",
                "required_scopes": ["openid"],
            ],
            clock: clock.function
        )
        #expect(
            try JSONValue.parse(
                auth.handle(AuthRequest(method: "GET", target: "/.well-known/oauth-protected-resource/mcp"))!.body
            )["authorization_servers"]
                == .array([.string(serverURL)])
        )
        let mirrored = try #require(
            auth.handle(AuthRequest(method: "GET", target: "/.well-known/oauth-authorization-server"))
        )
        #expect(mirrored.status == 200 && mirrored.bodyText.contains("authorization_endpoint"))
        _ = auth.handle(AuthRequest(method: "GET", target: "/.well-known/oauth-authorization-server"))
        // cached
        #expect(requests.withLock { $0.filter { $0 == "/.well-known/oauth-authorization-server" }.count } == 1)
        let good = try token(["iss": .string(serverURL), "aud": "http://127.0.0.1:8000/mcp", "scope": "openid profile"])
        guard case .authenticated(let access) = auth.authenticate(authorization: "Bearer " + good) else {
            Issue.record("refused")
            return
        }
        #expect(access.token == good)  // passed through unchanged
        guard
            case .challenge(let wrongIssuer) = auth.authenticate(
                authorization: "Bearer "
                    + (try token(["iss": "https://evil", "aud": "http://127.0.0.1:8000/mcp", "scope": "openid"]))
            )
        else {
            Issue.record("accepted")
            return
        }
        #expect(wrongIssuer.status == 401)
        // The AS metadata fetch failing is a clean 502.
        let broken = try AuthFacade(json: [
            "provider": "authkit", "authkit_domain": "http://127.0.0.1:9", "base_url": "http://127.0.0.1:8000",
        ])
        #expect(
            broken.handle(AuthRequest(method: "GET", target: "/.well-known/oauth-authorization-server"))?.status == 502
        )
    }

    @Test func staticTokensForDevelopment() throws {
        let auth = try AuthFacade(
            json: [
                "provider": "static", "base_url": "http://localhost:8000",
                "tokens": [
                    "dev-token": ["client_id": "dev", "scopes": ["read"]], "old": ["client_id": "x", "expires_at": 5],
                ],
            ],
            clock: clock.function
        )
        guard case .authenticated(let access) = auth.authenticate(authorization: "Bearer dev-token") else {
            Issue.record("refused")
            return
        }
        #expect(access.clientID == "dev" && access.scopes == ["read"])
        guard case .challenge(let unknown) = auth.authenticate(authorization: "Bearer dev-tokenX") else {
            Issue.record("accepted")
            return
        }
        #expect(
            unknown.status == 401 && unknown.headers["WWW-Authenticate"]!.hasPrefix("Bearer error=\"invalid_token\"")
        )
        guard case .challenge(let expired) = auth.authenticate(authorization: "Bearer old") else {
            Issue.record("accepted")
            return
        }
        #expect(expired.status == 401)
        guard
            case .challenge(let scoped) = auth.authenticate(
                authorization: "Bearer dev-token",
                requiredScopes: ["write"]
            )
        else {
            Issue.record("accepted")
            return
        }
        #expect(scoped.status == 403)
        #expect(auth.handle(AuthRequest(method: "GET", target: "/.well-known/oauth-protected-resource")) == nil)
    }

    @Test func aBareVerifierNeedsNoBaseURL() throws {
        // As FastMCP's JWTVerifier(...) with no base_url: it authenticates, advertises nothing.
        let auth = try AuthFacade(
            json: ["provider": "static", "tokens": ["dev-token": ["client_id": "dev", "scopes": ["read"]]]],
            clock: clock.function
        )
        #expect(auth.resourceURL == nil && auth.metadataURL == nil)
        #expect(
            auth.description == [
                "provider": "static", "required_scopes": [], "authorization_servers": [], "routes": [],
            ]
        )
        guard case .authenticated(let access) = auth.authenticate(authorization: "Bearer dev-token") else {
            Issue.record("refused")
            return
        }
        #expect(access.clientID == "dev")
        guard case .challenge(let missing) = auth.authenticate(authorization: nil) else {
            Issue.record("accepted")
            return
        }
        #expect(missing.status == 401 && missing.headers["WWW-Authenticate"] == "Bearer")
        #expect(auth.handle(AuthRequest(method: "GET", target: "/.well-known/oauth-protected-resource/mcp")) == nil)
    }

    @Test func configurationErrors() {
        let cases: [JSONValue] = [
            [:], ["provider": "workos", "base_url": "http://x"], ["provider": "jwt"],
            ["provider": "jwt", "base_url": "not a url", "jwks_uri": "https://x/j"],
            ["provider": "remote", "base_url": "http://x", "token_verifier": ["jwks_uri": "https://x/j"]],
            ["provider": "authkit", "base_url": "http://x", "authkit_domain": "nope"],
            ["provider": "static", "base_url": "http://x", "tokens": [:]],
            ["provider": "jwt", "base_url": "http://x", "jwks_uri": "https://x/j", "bogus": 1],
            // Providers that advertise authorization servers must know the resource they protect.
            ["provider": "authkit", "authkit_domain": "https://a.authkit.app"],
            [
                "provider": "remote", "token_verifier": ["jwks_uri": "https://x/j"],
                "authorization_servers": ["https://as"],
            ],
            [
                "provider": "introspection", "introspection_url": "https://as/introspect", "client_id": "c",
                "client_secret": "s",
                "authorization_servers": ["https://as"],
            ],
        ]
        for config in cases {
            #expect(outcome { try AuthFacade(json: config) } == .invalidConfig, "\(config.serialized())")
        }
    }

    @Test func fastMCPEnvironment() throws {
        let env = [
            "FASTMCP_SERVER_AUTH": "fastmcp.server.auth.providers.workos.AuthKitProvider",
            "FASTMCP_SERVER_AUTH_AUTHKITPROVIDER_AUTHKIT_DOMAIN": "https://demo.authkit.app",
            "FASTMCP_SERVER_AUTH_AUTHKITPROVIDER_BASE_URL": "https://mcp.example.com",
            "FASTMCP_SERVER_AUTH_AUTHKITPROVIDER_REQUIRED_SCOPES": "openid, profile email",
        ]
        let config = try #require(try AuthFacade.configuration(environment: env))
        #expect(config["provider"] == "authkit" && config["required_scopes"] == "openid, profile email")
        let auth = try AuthFacade(json: config)
        #expect(
            auth.requiredScopes == ["openid", "profile", "email"]
                && auth.authorizationServers == ["https://demo.authkit.app"]
        )
        // Explicit arguments win over the environment.
        let overridden = try AuthFacade(
            json: try #require(try AuthFacade.configuration(environment: env, overrides: ["required_scopes": ["a"]]))
        )
        #expect(overridden.requiredScopes == ["a"])
        // JWT with lists as JSON, full dotted name.
        let jwtEnv = [
            "FASTMCP_SERVER_AUTH": "fastmcp.server.auth.providers.jwt.JWTVerifier",
            "FASTMCP_SERVER_AUTH_JWT_JWKS_URI": "https://idp.example/jwks",
            "FASTMCP_SERVER_AUTH_JWT_ISSUER": "https://idp.example",
            "FASTMCP_SERVER_AUTH_JWT_AUDIENCE": #"["a","b"]"#, "FASTMCP_SERVER_AUTH_JWT_REQUIRED_SCOPES": #"["read"]"#,
            "FASTMCP_SERVER_AUTH_JWT_BASE_URL": "http://127.0.0.1:8000",
        ]
        let jwt = try AuthFacade(json: try #require(try AuthFacade.configuration(environment: jwtEnv)))
        #expect(jwt.provider == .jwt && jwt.requiredScopes == ["read"])
        #expect(try AuthFacade.configuration(environment: [:]) == nil)
        // A bad value names its variable.
        var bad = jwtEnv
        bad["FASTMCP_SERVER_AUTH_JWT_ALGORITHM"] = "HS1024"
        do {
            _ = try AuthFacade.configuration(environment: bad)
            Issue.record("accepted")
        } catch let error as AuthError {
            #expect(
                error.code == .invalidConfig && error.message.contains("FASTMCP_SERVER_AUTH_JWT_ALGORITHM"),
                "\(error)"
            )
        }
        // The WorkOS proxy without its settings: the error names what is missing.
        #expect(
            outcome {
                try AuthFacade.configuration(environment: [
                    "FASTMCP_SERVER_AUTH": "fastmcp.server.auth.providers.workos.WorkOSProvider"
                ])
            } == .invalidConfig
        )
        #expect(
            outcome { try AuthFacade.configuration(environment: ["FASTMCP_SERVER_AUTH": "nonsense"]) } == .invalidConfig
        )
    }

    /// Header names are RFC 9110 tokens: tchar spelled out as the RFC lists it, every byte checked.
    @Test func headerNamesAreExactlyRFC9110Tokens() {
        let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        for byte in UInt8.min...UInt8.max {
            let name = String(decoding: [UInt8(ascii: "X"), byte], as: UTF8.self)
            #expect(HeaderValues.isToken(name) == tchar.contains(byte), "byte \(byte)")
        }
        #expect(!HeaderValues.isToken(""))
        let response = AuthResponse(status: 200, headers: ["X-Ok": "1", "Bad Name": "2", "X-Cr": "a\r\nb"], body: [])
        #expect(response.headers == ["X-Ok": "1", "X-Cr": "ab"])
    }
}
