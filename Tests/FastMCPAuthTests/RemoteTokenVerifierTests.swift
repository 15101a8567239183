import Foundation
import Synchronization
import Testing

@testable import FastMCPAuth

/// RFC 7662 introspection and WorkOS userinfo against a real local HTTP server.
@Suite struct RemoteTokenVerifierTests {
    let clock = TestClock(1_800_000_000)

    /// An introspection endpoint that knows two tokens and checks its client credentials.
    static func introspectionServer() throws -> LocalHTTPServer {
        try LocalHTTPServer(requestHandler: { request in
            let expected = "Basic " + Base64.encode(Array("rs-client:s%3Dcret".utf8), alphabet: .standard)
            guard request.method == "POST", request.headers["authorization"] == expected else {
                return LocalHTTPServer.Response(status: 401, body: Array(#"{"error":"invalid_client"}"#.utf8))
            }
            let form = String(decoding: request.body, as: UTF8.self)
            let body: String
            if form == "token=good-token&token_type_hint=access_token" {
                body = #"{"active":true,"client_id":"c1","sub":"u1","scope":"read write","exp":1800000100}"#
            } else if form.hasPrefix("token=soon-expired") {
                body = #"{"active":true,"client_id":"c1","exp":1800000010}"#
            } else {
                body = #"{"active":false}"#
            }
            return LocalHTTPServer.Response(body: Array(body.utf8))
        })
    }

    @Test func introspection() throws {
        let server = try Self.introspectionServer()
        defer { server.stop() }
        let auth = try AuthFacade(
            json: [
                "provider": "introspection", "base_url": "http://127.0.0.1:8000",
                "introspection_url": .string(server.baseURL + "/introspect"), "client_id": "rs-client",
                "client_secret": "s=cret", "required_scopes": ["read"], "authorization_servers": ["https://as.example"],
            ],
            clock: clock.function
        )
        guard case .authenticated(let access) = auth.authenticate(authorization: "Bearer good-token") else {
            Issue.record("refused")
            return
        }
        #expect(
            access.clientID == "c1" && access.subject == "u1" && access.scopes == ["read", "write"]
                && access.expiresAt == 1_800_000_100
        )
        _ = auth.authenticate(authorization: "Bearer good-token")
        #expect(server.requests == 1)  // cached
        guard
            case .challenge(let scoped) = auth.authenticate(
                authorization: "Bearer good-token",
                requiredScopes: ["admin"]
            )
        else {
            Issue.record("accepted")
            return
        }
        #expect(scoped.status == 403)
        guard case .challenge(let inactive) = auth.authenticate(authorization: "Bearer other") else {
            Issue.record("accepted")
            return
        }
        #expect(inactive.status == 401 && inactive.headers["WWW-Authenticate"]!.contains("invalid_token"))
        _ = auth.authenticate(authorization: "Bearer other")
        #expect(server.requests == 2)  // a refused token is remembered briefly too
        clock.advance(101)
        guard case .challenge(let expired) = auth.authenticate(authorization: "Bearer good-token") else {
            Issue.record("accepted after exp")
            return
        }
        #expect(expired.status == 401)  // the cache never outlives exp
        let wrongSecret = try AuthFacade(
            json: [
                "provider": "introspection", "base_url": "http://127.0.0.1:8000",
                "introspection_url": .string(server.baseURL + "/introspect"), "client_id": "rs-client",
                "client_secret": "nope",
            ],
            clock: clock.function
        )
        guard case .challenge(let unavailable) = wrongSecret.authenticate(authorization: "Bearer good-token") else {
            Issue.record("accepted")
            return
        }
        // The endpoint refuses *our* credentials: nothing is known about the token, so the client
        // is told to retry (503), never to throw its token away (401).
        #expect(unavailable.status == 503 && unavailable.headers["Retry-After"] != nil)
        #expect(
            outcome {
                try AuthFacade(json: [
                    "provider": "introspection", "base_url": "http://x", "introspection_url": "http://example.com/i",
                    "client_id": "a", "client_secret": "b",
                ])
            } == .invalidConfig
        )  // http only on loopback
    }

    @Test func workOSUserinfo() throws {
        let token = try JWT.sign(
            claims: ["sub": "user_1", "scope": "openid profile", "exp": 1_800_000_300],
            key: JSONWebKey.generate(.RS256),
            algorithm: .RS256
        )
        let server = try LocalHTTPServer(requestHandler: { request in
            guard request.path == "/oauth2/userinfo", request.headers["authorization"] == "Bearer " + token else {
                return LocalHTTPServer.Response(status: 401)
            }
            return LocalHTTPServer.Response(body: Array(#"{"sub":"user_1","email":"u@example.com"}"#.utf8))
        })
        defer { server.stop() }
        let auth = try AuthFacade(
            json: [
                "provider": "workos-userinfo", "authkit_domain": .string(server.baseURL),
                "base_url": "http://127.0.0.1:8000",
                "required_scopes": ["openid"],
            ],
            clock: clock.function
        )
        guard case .authenticated(let access) = auth.authenticate(authorization: "Bearer " + token) else {
            Issue.record("refused")
            return
        }
        #expect(
            access.subject == "user_1" && access.claims["email"] == "u@example.com"
                && access.scopes == ["openid", "profile"]
        )
        #expect(access.expiresAt == 1_800_000_300)
        guard
            case .challenge(let scoped) = auth.authenticate(authorization: "Bearer " + token, requiredScopes: ["admin"])
        else {
            Issue.record("accepted")
            return
        }
        #expect(scoped.status == 403)
        guard case .challenge(let refused) = auth.authenticate(authorization: "Bearer forged") else {
            Issue.record("accepted")
            return
        }
        #expect(refused.status == 401)
        #expect(server.requests == 2)
        let metadata = try #require(
            auth.handle(AuthRequest(method: "GET", target: "/.well-known/oauth-protected-resource/mcp"))
        )
        #expect(try JSONValue.parse(metadata.body)["authorization_servers"] == .array([.string(server.baseURL)]))
    }

    @Test func formEncoding() {
        #expect(Form.encode("a b+c/é=&") == "a%20b%2Bc%2F%C3%A9%3D%26")
        let decoded = Form.decode("a=1&b=x+y%2Fz&c&%C3%A9=%26")
        #expect(decoded?.map { $0.0 } == ["a", "b", "c", "é"] && decoded?.map { $0.1 } == ["1", "x y/z", "", "&"])
        #expect(Form.decode("a=%zz") == nil && Form.decode("a=%C3") == nil, "bad escapes and invalid UTF-8 are refused")
        #expect(Form.url("https://h/p?x=1", adding: [("y", "a b")]) == "https://h/p?x=1&y=a%20b")
    }
}
