import Foundation
import Synchronization
import Testing

@testable import FastMCPAuth

/// The OAuth proxy through the facade, against a real local HTTP server as the upstream token
/// endpoint. Each step asserts the exact status and OAuth error.
@Suite struct OAuthProxyTests {
    let clock = TestClock(1_800_000_000)

    /// Upstream: any code "up-*" yields tokens; refresh rotates; revocations are counted.
    final class Upstream: Sendable {
        final class Counters: Sendable {
            let revocations = Mutex(0)
            let refreshes = Mutex(0)
        }
        let server: LocalHTTPServer
        let counters = Counters()
        var revocationCount: Int { counters.revocations.withLock { $0 } }
        var refreshCount: Int { counters.refreshes.withLock { $0 } }

        init() throws {
            let counters = self.counters
            server = try LocalHTTPServer(requestHandler: { request in
                let form = Parameters(Form.decode(String(decoding: request.body, as: UTF8.self)) ?? [])
                let basic = "Basic " + Base64.encode(Array("up-client:up-secret".utf8), alphabet: .standard)
                guard request.headers["authorization"] == basic else {
                    return .init(status: 401, body: Array(#"{"error":"invalid_client"}"#.utf8))
                }
                switch (request.path, form["grant_type"]) {
                case ("/token", "authorization_code"):
                    guard form["code"]?.hasPrefix("up-") == true, form["code_verifier"] != nil else {
                        return .init(
                            status: 400,
                            body: Array(#"{"error":"invalid_grant","error_description":"<script>x</script>"}"#.utf8)
                        )
                    }
                    return .init(
                        body: Array(
                            #"{"access_token":"upstream-access-1","refresh_token":"upstream-refresh-1","expires_in":3600,"token_type":"Bearer"}"#
                                .utf8
                        )
                    )
                case ("/token", "refresh_token"):
                    counters.refreshes.withLock { $0 += 1 }
                    return .init(
                        body: Array(
                            #"{"access_token":"upstream-access-2","expires_in":3600,"token_type":"Bearer"}"#.utf8
                        )
                    )
                case ("/revoke", _):
                    counters.revocations.withLock { $0 += 1 }
                    return .init(body: [])
                default:
                    return .init(status: 404)
                }
            })
        }
    }

    func proxy(_ upstream: Upstream, _ extra: [String: JSONValue] = [:]) throws -> AuthFacade {
        var config: [String: JSONValue] = [
            "provider": "oauth_proxy", "base_url": "http://127.0.0.1:8000",
            "upstream_authorization_endpoint": .string(upstream.server.baseURL + "/authorize"),
            "upstream_token_endpoint": .string(upstream.server.baseURL + "/token"),
            "upstream_revocation_endpoint": .string(upstream.server.baseURL + "/revoke"),
            "upstream_client_id": "up-client", "upstream_client_secret": "up-secret",
            "valid_scopes": ["read", "write"], "required_scopes": ["read"],
        ]
        config.merge(extra) { _, new in new }
        return try AuthFacade(json: .object(config), clock: clock.function)
    }

    /// A client-side view of one authorization: what a browser and the MCP client would do.
    struct Flow {
        let auth: AuthFacade
        var clientID = ""
        let redirectURI = "http://127.0.0.1:33418/callback"
        let verifier = Base64URL.encode([UInt8](repeating: 7, count: 32))
        var challenge: String { Base64URL.encode(OpenSSL.sha256(Array(verifier.utf8))) }

        func send(
            _ method: String,
            _ target: String,
            body: String = "",
            headers: [(String, String)] = [],
            address: String = "192.0.2.1"
        ) -> AuthResponse {
            let request = AuthRequest(
                method: method,
                target: target,
                headers: headers.map { (name: $0.0, value: $0.1) },
                body: Array(body.utf8),
                clientAddress: address
            )
            return auth.handle(request) ?? AuthResponse(status: 404, headers: [:], body: [])
        }

        func form(_ target: String, _ pairs: [(String, String)], headers: [(String, String)] = []) -> AuthResponse {
            send(
                "POST",
                target,
                body: Form.encode(pairs),
                headers: [("Content-Type", "application/x-www-form-urlencoded")] + headers
            )
        }

        mutating func register(_ metadata: JSONValue? = nil) throws {
            let body = metadata ?? ["redirect_uris": .array([.string(redirectURI)]), "client_name": "Test <Client>"]
            let response = send("POST", "/register", body: body.serialized())
            #expect(response.status == 201)
            clientID = try #require(try JSONValue.parse(response.body)["client_id"]?.stringValue)
        }

        func authorizeQuery(_ overrides: [(String, String?)] = []) -> String {
            var pairs: [(String, String?)] = [
                ("response_type", "code"), ("client_id", clientID), ("redirect_uri", redirectURI),
                ("code_challenge", challenge), ("code_challenge_method", "S256"), ("state", "st-1"),
                ("scope", "read write"), ("resource", "http://127.0.0.1:8000/mcp"),
            ]
            for (name, value) in overrides {
                pairs.removeAll { $0.0 == name }
                if let value { pairs.append((name, value)) }
            }
            return "/authorize?" + Form.encode(pairs.compactMap { pair in pair.1.map { (pair.0, $0) } })
        }

        /// authorize → consent page → approve; returns (transaction id, binding cookie, upstream URL).
        func consent(_ overrides: [(String, String?)] = []) throws -> (txn: String, cookie: String, upstream: String) {
            let authorize = send("GET", authorizeQuery(overrides))
            #expect(authorize.status == 302)
            let consentURL = try #require(authorize.headers["Location"])
            let target = String(consentURL.dropFirst("http://127.0.0.1:8000".count))
            let page = send("GET", target)
            #expect(page.status == 200 && page.headers["X-Frame-Options"] == "DENY")
            let html = page.bodyText
            let csrf = try #require(Self.field("csrf_token", in: html))
            let txn = try #require(Self.field("txn_id", in: html))
            let approved = form("/consent", [("txn_id", txn), ("csrf_token", csrf), ("action", "approve")])
            #expect(approved.status == 302)
            let cookie = try #require(approved.headers["Set-Cookie"]?.split(separator: ";").first.map(String.init))
            return (txn, cookie, approved.headers["Location"] ?? "")
        }

        /// The upstream redirects the browser back; returns the client's redirect parameters.
        func callback(txn: String, cookie: String?, code: String = "up-code") -> [String: String] {
            let response = send(
                "GET",
                "/auth/callback?" + Form.encode([("code", code), ("state", txn)]),
                headers: cookie.map { [("Cookie", $0)] } ?? []
            )
            guard response.status == 302, let location = response.headers["Location"], location.hasPrefix(redirectURI)
            else {
                return ["status": String(response.status)]
            }
            let query = location.split(separator: "?", maxSplits: 1).last.map(String.init) ?? ""
            return Dictionary(Form.decode(query) ?? [], uniquingKeysWith: { first, _ in first })
        }

        func exchange(
            _ code: String,
            verifier: String? = nil,
            client: String? = nil,
            extra: [(String, String)] = []
        ) -> (Int, [String: JSONValue]) {
            let response = form(
                "/token",
                [
                    ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI),
                    ("code_verifier", verifier ?? self.verifier), ("client_id", client ?? clientID),
                ] + extra
            )
            return (response.status, (try? JSONValue.parse(response.body).objectValue) ?? [:])
        }

        func refresh(_ token: String, client: String? = nil) -> (Int, [String: JSONValue]) {
            let response = form(
                "/token",
                [("grant_type", "refresh_token"), ("refresh_token", token), ("client_id", client ?? clientID)]
            )
            return (response.status, (try? JSONValue.parse(response.body).objectValue) ?? [:])
        }

        static func field(_ name: String, in html: String) -> String? {
            guard let range = html.range(of: "name=\"\(name)\" value=\"") else { return nil }
            let rest = html[range.upperBound...]
            return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
        }

        /// The whole flow to a token response.
        mutating func tokens() throws -> [String: JSONValue] {
            if clientID.isEmpty { try register() }
            let (txn, cookie, _) = try consent()
            let redirect = callback(txn: txn, cookie: cookie)
            let code = try #require(redirect["code"])
            let (status, body) = exchange(code)
            #expect(status == 200)
            return body
        }
    }

    func bearerStatus(_ auth: AuthFacade, _ token: String?, scopes: [String] = []) -> Int {
        switch auth.authenticate(authorization: token.map { "Bearer " + $0 }, requiredScopes: scopes) {
        case .authenticated: return 200
        case .challenge(let response): return response.status
        }
    }

    @Test func signingAndStorageKeysMatchFastMCP() throws {
        // Expected values computed with Python `cryptography` (HKDF / PBKDF2HMAC), as FastMCP derives them.
        #expect(
            try ProxyKeys.signingKey(jwtSigningKey: nil, upstreamClientSecret: "upstream-secret")
                == Array("_2Y3J0wsZ7kauaFyzSt9wNm9tHxClnnABu7736NMKCA=".utf8)
        )
        #expect(
            try ProxyKeys.signingKey(jwtSigningKey: "my-signing-key", upstreamClientSecret: nil, iterations: 10)
                == Array("E_udI7c01PKiFepksaflQi44HA_8JpLIFbopkQ4_hls=".utf8)
        )
        #expect(
            try ProxyKeys.signingKey(jwtSigningKey: "my-signing-key", upstreamClientSecret: "ignored")
                == Array("IrcMIJU2qhIgflnAsyUfGXKl4jQj7oD88_5m5XLsY0k=".utf8)
        )
        #expect(
            ProxyKeys.storageKey(signingKey: Array("_2Y3J0wsZ7kauaFyzSt9wNm9tHxClnnABu7736NMKCA=".utf8))
                == "OmcVBt7tD7lztCxTTIXovBlMleM2C32mpEUwDHOLyJ8="
        )
    }

    @Test func metadataAndIssuerAreOneString() throws {
        let upstream = try Upstream()
        let auth = try proxy(upstream)
        let flow = Flow(auth: auth)
        let metadata = try JSONValue.parse(flow.send("GET", "/.well-known/oauth-authorization-server").body)
        #expect(metadata["issuer"] == "http://127.0.0.1:8000/")
        #expect(metadata["code_challenge_methods_supported"] == ["S256"])
        #expect(metadata["authorization_response_iss_parameter_supported"] == true)
        #expect(
            metadata["token_endpoint"] == "http://127.0.0.1:8000/token"
                && metadata["scopes_supported"] == ["read", "write"]
        )
        let resource = try JSONValue.parse(flow.send("GET", "/.well-known/oauth-protected-resource/mcp").body)
        #expect(resource["authorization_servers"] == ["http://127.0.0.1:8000/"])
        guard case .challenge(let challenge) = auth.authenticate(authorization: nil) else {
            Issue.record("no challenge")
            return
        }
        #expect(
            challenge.headers["WWW-Authenticate"]
                == #"Bearer resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp", scope="read""#
        )
    }

    @Test func theWholeFlowRefreshAndRevoke() throws {
        let upstream = try Upstream()
        let auth = try proxy(upstream)
        var flow = Flow(auth: auth)
        try flow.register()
        let (txn, cookie, upstreamURL) = try flow.consent()
        #expect(upstreamURL.hasPrefix(upstream.server.baseURL + "/authorize?"))
        let upstreamQuery = Parameters(Form.decode(String(upstreamURL.split(separator: "?")[1])) ?? [])
        #expect(
            upstreamQuery["state"] == txn && upstreamQuery["client_id"] == "up-client"
                && upstreamQuery["code_challenge_method"] == "S256"
        )
        #expect(
            upstreamQuery["redirect_uri"] == "http://127.0.0.1:8000/auth/callback"
                && upstreamQuery["scope"] == "read write"
        )
        let redirect = flow.callback(txn: txn, cookie: cookie)
        #expect(redirect["state"] == "st-1" && redirect["iss"] == "http://127.0.0.1:8000/")
        let code = try #require(redirect["code"])
        let (status, tokens) = flow.exchange(code)
        #expect(
            status == 200 && tokens["token_type"] == "Bearer" && tokens["expires_in"] == 3600
                && tokens["scope"] == "read write"
        )
        let preflight = flow.send("OPTIONS", "/token")
        #expect(preflight.status == 204 && preflight.headers["Access-Control-Allow-Origin"] == "*")
        let access = try #require(tokens["access_token"]?.stringValue)
        let refresh = try #require(tokens["refresh_token"]?.stringValue)
        #expect(
            !access.contains("upstream")
                && !String(decoding: Base64URL.decode(String(access.split(separator: ".")[1])) ?? [], as: UTF8.self)
                    .contains("upstream")
        )

        // The MCP endpoint: the server sees the upstream token, our client and scopes.
        guard
            case .authenticated(let token) = auth.authenticate(
                authorization: "Bearer " + access,
                requiredScopes: ["write"]
            )
        else {
            Issue.record("refused")
            return
        }
        #expect(
            token.token == "upstream-access-1" && token.clientID == flow.clientID && token.scopes == ["read", "write"]
        )
        #expect(bearerStatus(auth, access, scopes: ["admin"]) == 403)
        #expect(bearerStatus(auth, refresh) == 401, "a refresh token is not an access token")
        #expect(bearerStatus(auth, "upstream-access-1") == 401, "the raw upstream token is not ours")

        // Refresh rotates; the replaced token works once more within the grace window.
        let (s1, first) = flow.refresh(refresh)
        #expect(s1 == 200)
        let (s2, second) = flow.refresh(refresh)
        #expect(s2 == 200 && second["access_token"] != first["access_token"])
        #expect(bearerStatus(auth, access) == 401, "the access token the refresh replaced is gone")
        // After the grace window, reusing it revokes the whole family.
        clock.advance(31)
        let (s3, reuse) = flow.refresh(refresh)
        #expect(s3 == 400 && reuse["error"] == "invalid_grant")
        #expect(
            bearerStatus(auth, first["access_token"]?.stringValue) == 401
                && bearerStatus(auth, second["access_token"]?.stringValue) == 401
        )
        #expect(upstream.revocationCount == 1, "the upstream grant is revoked too")
        // Narrowing works, widening does not.
        var again = Flow(auth: auth)
        let fresh = try again.tokens()
        let narrowed = again.form(
            "/token",
            [
                ("grant_type", "refresh_token"), ("refresh_token", fresh["refresh_token"]?.stringValue ?? ""),
                ("client_id", again.clientID), ("scope", "read"),
            ]
        )
        let narrowedScope = try JSONValue.parse(narrowed.body)["scope"]
        #expect(narrowed.status == 200 && narrowedScope == "read")
        let widened = again.form(
            "/token",
            [
                ("grant_type", "refresh_token"), ("refresh_token", fresh["refresh_token"]?.stringValue ?? ""),
                ("client_id", again.clientID), ("scope", "read admin"),
            ]
        )
        #expect(widened.status == 400)

        // Revocation by a public client with an empty secret: refused at /mcp at once.
        let more = try again.tokens()
        let accessToRevoke = try #require(more["access_token"]?.stringValue)
        #expect(bearerStatus(auth, accessToRevoke) == 200)
        let revoked = again.form(
            "/revoke",
            [("token", accessToRevoke), ("client_id", again.clientID), ("client_secret", "")]
        )
        #expect(revoked.status == 200)
        #expect(bearerStatus(auth, accessToRevoke) == 401)
    }

    @Test func upstreamTokenIsRefreshedTransparentlyNearExpiry() throws {
        let upstream = try Upstream()
        let auth = try proxy(upstream, ["access_token_lifetime": 7200])
        var flow = Flow(auth: auth)
        let tokens = try flow.tokens()
        let access = try #require(tokens["access_token"]?.stringValue)
        clock.advance(3590)  // the upstream token (1 h) is within a minute of expiry
        guard case .authenticated(let token) = auth.authenticate(authorization: "Bearer " + access) else {
            Issue.record("refused")
            return
        }
        #expect(token.token == "upstream-access-2" && upstream.refreshCount == 1)
        guard case .authenticated = auth.authenticate(authorization: "Bearer " + access) else {
            Issue.record("refused")
            return
        }
        #expect(upstream.refreshCount == 1, "refreshed once, then reused")
    }

    @Test func registrationRules() throws {
        let upstream = try Upstream()
        let auth = try proxy(upstream, ["registration_rate_limit": 5])
        let flow = Flow(auth: auth)
        func register(_ uris: [String], type: String? = nil, address: String = "198.51.100.7") -> (Int, String?) {
            var body: [String: JSONValue] = ["redirect_uris": .array(uris.map { .string($0) })]
            if let type { body["application_type"] = .string(type) }
            let response = flow.send("POST", "/register", body: JSONValue.object(body).serialized(), address: address)
            return (response.status, (try? JSONValue.parse(response.body))?["error"]?.stringValue)
        }
        #expect(register(["javascript:alert(1)"]) == (400, "invalid_redirect_uri"))
        #expect(register(["data:text/html,hi"]) == (400, "invalid_redirect_uri"))
        #expect(register(["http://evil.example/cb"]) == (400, "invalid_redirect_uri"))
        #expect(register(["https://app.example/cb#frag"]) == (400, "invalid_redirect_uri"))
        #expect(
            register(["com.example.app:/cb"]) == (400, "invalid_redirect_uri"),
            "custom schemes are for native apps"
        )
        #expect(register(["com.example.app:/cb"], type: "native").0 == 201)
        #expect(register(["https://app.example/cb"]).0 == 201)
        #expect(register(["http://localhost:1234/cb"]).0 == 201)
        // The flood: after five stored registrations from one address in an hour, the rest are refused.
        #expect(register(["http://127.0.0.1/cb"]).0 == 201)
        #expect(register(["http://127.0.0.1/cb"]).0 == 201)
        #expect(register(["http://127.0.0.1/cb"]) == (429, "too_many_requests"))
        #expect(register(["http://127.0.0.1/cb"], address: "198.51.100.8").0 == 201, "another address is not limited")
        clock.advance(3601)
        #expect(register(["http://127.0.0.1/cb"]).0 == 201)
        // Allowed patterns.
        let strict = Flow(
            auth: try proxy(upstream, ["allowed_client_redirect_uris": ["http://localhost:*", "https://claude.ai/*"]])
        )
        #expect(
            strict.send("POST", "/register", body: #"{"redirect_uris":["https://claude.ai/api/callback"]}"#).status
                == 201
        )
        #expect(strict.send("POST", "/register", body: #"{"redirect_uris":["https://app.example/cb"]}"#).status == 400)
    }

    @Test func authorizeAttacks() throws {
        let upstream = try Upstream()
        let auth = try proxy(upstream)
        var flow = Flow(auth: auth)
        try flow.register()
        func errorOf(_ response: AuthResponse) -> String? {
            guard response.status == 302, let location = response.headers["Location"],
                location.hasPrefix(flow.redirectURI)
            else { return nil }
            return Parameters(Form.decode(String(location.split(separator: "?")[1])) ?? [])["error"]
        }
        // Early errors never redirect.
        #expect(flow.send("GET", flow.authorizeQuery([("redirect_uri", "http://127.0.0.1:33418/other")])).status == 400)
        #expect(
            flow.send("GET", flow.authorizeQuery([("redirect_uri", "https://evil.example/callback")])).status == 400
        )
        #expect(flow.send("GET", flow.authorizeQuery([("client_id", "unknown")])).status == 400)
        // Loopback: another port is the same redirect URI (RFC 8252).
        #expect(
            flow.send("GET", flow.authorizeQuery([("redirect_uri", "http://127.0.0.1:9999/callback")])).status == 302
        )
        #expect(errorOf(flow.send("GET", flow.authorizeQuery([("code_challenge", nil)]))) == "invalid_request")
        #expect(
            errorOf(flow.send("GET", flow.authorizeQuery([("code_challenge_method", "plain")]))) == "invalid_request"
        )
        #expect(
            errorOf(flow.send("GET", flow.authorizeQuery([("resource", "https://other.example/mcp")])))
                == "invalid_target"
        )
        #expect(errorOf(flow.send("GET", flow.authorizeQuery([("scope", "admin")]))) == "invalid_scope")
        #expect(
            errorOf(flow.send("GET", flow.authorizeQuery([("response_type", "token")]))) == "unsupported_response_type"
        )
        // Consent CSRF: a forged token, a token for another transaction, and a second use.
        let (txn, _, _) = try flow.consent()
        #expect(
            flow.form("/consent", [("txn_id", txn), ("csrf_token", "forged"), ("action", "approve")]).status == 403
        )
        // Two open consent pages: both tokens stay valid.
        let authorize = flow.send("GET", flow.authorizeQuery())
        let target = String(try #require(authorize.headers["Location"]).dropFirst("http://127.0.0.1:8000".count))
        let firstPage = flow.send("GET", target).bodyText
        let secondPage = flow.send("GET", target).bodyText
        let pageTxn = try #require(Flow.field("txn_id", in: firstPage))
        #expect(firstPage.contains("Test &lt;Client&gt;") && !firstPage.contains("<Client>"))
        for page in [secondPage, firstPage] {
            let csrf = try #require(Flow.field("csrf_token", in: page))
            #expect(
                flow.form("/consent", [("txn_id", pageTxn), ("csrf_token", csrf), ("action", "approve")]).status == 302
            )
            #expect(
                flow.form("/consent", [("txn_id", pageTxn), ("csrf_token", csrf), ("action", "approve")]).status == 403,
                "one use each"
            )
        }
        // Deny: access_denied to the client, with state and iss.
        let denyPage = flow.send(
            "GET",
            String(
                try #require(flow.send("GET", flow.authorizeQuery()).headers["Location"]).dropFirst(
                    "http://127.0.0.1:8000".count
                )
            )
        ).bodyText
        let denied = flow.form(
            "/consent",
            [
                ("txn_id", try #require(Flow.field("txn_id", in: denyPage))),
                ("csrf_token", try #require(Flow.field("csrf_token", in: denyPage))), ("action", "deny"),
            ]
        )
        #expect(
            errorOf(denied) == "access_denied"
                && denied.headers["Location"]?.contains("iss=http%3A%2F%2F127.0.0.1%3A8000%2F") == true
        )
    }

    @Test func callbackAndTokenAttacks() throws {
        let upstream = try Upstream()
        let auth = try proxy(upstream)
        var flow = Flow(auth: auth)
        try flow.register()
        var other = Flow(auth: auth)
        try other.register()

        // Another browser (no binding cookie, or a wrong one) cannot finish the flow.
        let (txn, cookie, _) = try flow.consent()
        #expect(flow.callback(txn: txn, cookie: nil)["status"] == "403")
        #expect(flow.callback(txn: txn, cookie: "fastmcpauth_flow=stolen")["status"] == "403")
        #expect(flow.callback(txn: "unknown-state", cookie: cookie)["status"] == "400", "state mismatch")
        // The upstream's error text never reaches the client.
        let failed = flow.callback(txn: txn, cookie: cookie, code: "bad-code")
        #expect(failed["error"] == "server_error" && failed["error_description"]?.contains("script") == false)

        let (txn2, cookie2, _) = try flow.consent()
        let code = try #require(flow.callback(txn: txn2, cookie: cookie2)["code"])
        #expect(flow.exchange(code, client: other.clientID).1["error"] == "invalid_grant", "code from another client")
        // That attempt consumed the code: a one-time code stays one-time even when misused.
        let (txn3, cookie3, _) = try flow.consent()
        let code3 = try #require(flow.callback(txn: txn3, cookie: cookie3)["code"])
        #expect(
            flow.exchange(code3, verifier: String(repeating: "x", count: 43)).1["error"] == "invalid_grant",
            "wrong PKCE verifier"
        )
        let (txn4, cookie4, _) = try flow.consent()
        let code4 = try #require(flow.callback(txn: txn4, cookie: cookie4)["code"])
        let resourceMismatch = flow.exchange(code4, extra: [("resource", "https://other.example/mcp")])
        #expect(resourceMismatch.0 == 400 && resourceMismatch.1["error"] == "invalid_target")
        // Replay: the second use fails and revokes what the first issued.
        let (txn5, cookie5, _) = try flow.consent()
        let code5 = try #require(flow.callback(txn: txn5, cookie: cookie5)["code"])
        let (ok, issued) = flow.exchange(code5)
        #expect(ok == 200 && bearerStatus(auth, issued["access_token"]?.stringValue) == 200)
        #expect(flow.exchange(code5).1["error"] == "invalid_grant")
        #expect(bearerStatus(auth, issued["access_token"]?.stringValue) == 401, "replay revoked the tokens")
        // Expired code.
        let (txn6, cookie6, _) = try flow.consent()
        let code6 = try #require(flow.callback(txn: txn6, cookie: cookie6)["code"])
        clock.advance(301)
        #expect(flow.exchange(code6).1["error"] == "invalid_grant")
        // Refresh token of another client; unknown client; a confidential secret from a public client.
        let tokens = try flow.tokens()
        #expect(
            flow.refresh(tokens["refresh_token"]?.stringValue ?? "", client: other.clientID).1["error"]
                == "invalid_grant"
        )
        #expect(flow.refresh(tokens["refresh_token"]?.stringValue ?? "", client: "nobody").0 == 401)
        let withSecret = flow.form(
            "/token",
            [
                ("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"]?.stringValue ?? ""),
                ("client_id", flow.clientID), ("client_secret", "guess"),
            ]
        )
        let secretError = try JSONValue.parse(withSecret.body)["error"]
        #expect(withSecret.status == 401 && secretError == "invalid_client")
        #expect(flow.form("/token", [("grant_type", "password"), ("client_id", flow.clientID)]).status == 400)
    }

    /// The development IdP answering the proxy's back-channel calls in process (its real code,
    /// without a socket): an HTTPClient that hands each request to it.
    struct InProcess: HTTPClient {
        let idp: DevelopmentIdentityProvider
        func send(_ request: HTTPRequest) throws -> HTTPResponse {
            let target = String(request.url.dropFirst("http://127.0.0.1:8000".count))
            let answer =
                idp.handle(
                    AuthRequest(method: request.method, target: target, headers: request.headers, body: request.body)
                )
                ?? AuthResponse(status: 404, headers: [:], body: [])
            return HTTPResponse(
                status: answer.status,
                headers: answer.headers.map { (name: $0.key, value: $0.value) },
                body: answer.body
            )
        }
    }

    @Test func developmentIdentityProviderBehindTheProxy() throws {
        let idp = try DevelopmentIdentityProvider(
            baseURL: "http://127.0.0.1:8000",
            callbackURL: "http://127.0.0.1:8000/auth/callback",
            clock: clock.function
        )
        let auth = try AuthFacade(
            json: [
                "provider": "oauth_proxy", "base_url": "http://127.0.0.1:8000",
                "upstream_authorization_endpoint": .string(idp.authorizationEndpoint),
                "upstream_token_endpoint": .string(idp.tokenEndpoint),
                "userinfo_endpoint": .string(idp.userinfoEndpoint),
                "upstream_client_id": .string(idp.clientID), "upstream_client_secret": .string(idp.clientSecret),
                "required_scopes": ["mcp"],
            ],
            http: InProcess(idp: idp),
            clock: clock.function
        )
        var flow = Flow(auth: auth)
        try flow.register()
        let (txn, cookie, upstreamURL) = try flow.consent([("scope", nil)])
        let loginTarget = String(upstreamURL.dropFirst("http://127.0.0.1:8000".count))
        let page = idp.handle(AuthRequest(method: "GET", target: loginTarget))
        #expect(page?.status == 200 && page?.bodyText.contains("name=\"username\"") == true)
        let hidden = Dictionary(
            ["redirect_uri", "state", "scope", "code_challenge"].compactMap { name in
                Flow.field(name, in: page?.bodyText ?? "").map { (name, $0) }
            },
            uniquingKeysWith: { a, _ in a }
        )
        #expect(hidden["state"] == txn)
        let login = idp.handle(
            AuthRequest(
                method: "POST",
                target: "/dev-idp/authorize",
                body: Array(Form.encode(hidden.map { ($0.key, $0.value) } + [("username", "ada <lovelace>")]).utf8)
            )
        )
        let back = try #require(login?.headers["Location"])
        #expect(back.hasPrefix("http://127.0.0.1:8000/auth/callback?code="))
        let callbackTarget = String(back.dropFirst("http://127.0.0.1:8000".count))
        let redirect = flow.send("GET", callbackTarget, headers: [("Cookie", cookie)])
        let query = Parameters(
            Form.decode(String(try #require(redirect.headers["Location"]).split(separator: "?")[1])) ?? []
        )
        let (status, tokens) = flow.exchange(try #require(query["code"]))
        #expect(status == 200)
        guard
            case .authenticated(let token) = auth.authenticate(
                authorization: "Bearer " + (tokens["access_token"]?.stringValue ?? "")
            )
        else {
            Issue.record("refused")
            return
        }
        #expect(token.subject == "ada <lovelace>" && token.scopes == ["mcp"])
        // The IdP serves only the proxy: wrong client credentials and foreign redirect URIs are refused.
        let wrong = idp.handle(
            AuthRequest(
                method: "POST",
                target: "/dev-idp/token",
                headers: [(name: "Authorization", value: "Basic eDp5")],
                body: Array("grant_type=authorization_code&code=x".utf8)
            )
        )
        #expect(wrong?.status == 401)
        #expect(
            idp.handle(
                AuthRequest(
                    method: "GET",
                    target:
                        "/dev-idp/authorize?response_type=code&client_id=\(idp.clientID)&redirect_uri=https%3A%2F%2Fevil.example%2Fcb"
                )
            )?.status == 400
        )
    }

    @Test func addressPolicyRefusesEverythingButPublicUnicast() {
        for address in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2002:808:808::1"] {
            #expect(AddressPolicy.isPublic(address), "\(address)")
        }
        for address in [
            "10.0.0.1", "172.16.5.4", "192.168.1.1", "127.0.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
            "255.255.255.255", "224.0.0.1", "198.51.100.7", "::1", "::", "::ffff:127.0.0.1", "::ffff:8.8.8.8",
            "64:ff9b::a9fe:a9fe", "fd00::1", "fe80::1", "ff02::1", "2001:db8::1", "2002:a00:1::1", "not an address",
        ] {
            #expect(!AddressPolicy.isPublic(address), "\(address)")
        }
        #expect(ClientMetadataDocuments.lifetime("public, max-age=600") == 600)
        #expect(
            ClientMetadataDocuments.lifetime("max-age=5") == 60
                && ClientMetadataDocuments.lifetime("max-age=9999999") == 86400
        )
        #expect(ClientMetadataDocuments.lifetime("no-store") == 0 && ClientMetadataDocuments.lifetime(nil) == 60)
    }

    @Test func clientIDMetadataDocuments() throws {
        let upstream = try Upstream()
        let documents = Mutex<[String: String]>([:])
        let server = try LocalHTTPServer(requestHandler: { request in
            if request.path == "/redirect.json" { return .init(status: 302, headers: [("Location", "/client.json")]) }
            if request.path == "/big.json" {
                return .init(body: Array(repeating: UInt8(ascii: " "), count: 6000) + Array("{}".utf8))
            }
            guard let body = documents.withLock({ $0[request.path] }) else { return .init(status: 404) }
            return .init(
                headers: [("Content-Type", "application/json"), ("Cache-Control", "max-age=300")],
                body: Array(body.utf8)
            )
        })
        let clientURL = server.baseURL + "/client.json"
        documents.withLock {
            $0["/client.json"] =
                #"{"client_id":"\#(clientURL)","client_name":"Doc <Client>","redirect_uris":["http://127.0.0.1:33418/callback"]}"#
            $0["/mismatch.json"] =
                #"{"client_id":"https://elsewhere.example/client.json","redirect_uris":["http://127.0.0.1:33418/callback"]}"#
            $0["/secret.json"] =
                #"{"client_id":"\#(server.baseURL)/secret.json","client_secret":"x","redirect_uris":["http://127.0.0.1:33418/callback"]}"#
            $0["/evil.json"] = #"{"client_id":"\#(server.baseURL)/evil.json","redirect_uris":["javascript:alert(1)"]}"#
        }
        let auth = try proxy(upstream, ["cimd_test_allow_loopback": true])
        let metadata = try JSONValue.parse(Flow(auth: auth).send("GET", "/.well-known/oauth-authorization-server").body)
        #expect(metadata["client_id_metadata_document_supported"] == true)
        var flow = Flow(auth: auth)
        flow.clientID = clientURL
        let (txn, cookie, _) = try flow.consent()
        let code = try #require(flow.callback(txn: txn, cookie: cookie)["code"])
        #expect(flow.exchange(code).0 == 200)
        let page = flow.send(
            "GET",
            String(
                try #require(flow.send("GET", flow.authorizeQuery()).headers["Location"]).dropFirst(
                    "http://127.0.0.1:8000".count
                )
            )
        )
        #expect(
            page.bodyText.contains("Doc &lt;Client&gt; (127.0.0.1)"),
            "the page names the host vouching for the document"
        )
        // Refused documents: the client is unknown, and the error page does not redirect.
        for path in ["/mismatch.json", "/secret.json", "/evil.json", "/redirect.json", "/big.json", "/missing.json"] {
            var bad = Flow(auth: auth)
            bad.clientID = server.baseURL + path
            #expect(bad.send("GET", bad.authorizeQuery()).status == 400, "\(path)")
        }
        // Without the test setting, a loopback (or any non-public) document host is refused.
        var strict = Flow(auth: try proxy(upstream))
        strict.clientID = clientURL
        #expect(strict.send("GET", strict.authorizeQuery()).status == 400)
        let requestsBefore = server.requests
        for url in [
            "https://127.0.0.1:\(server.port)/client.json", "https://localhost:\(server.port)/client.json",
            "https://10.0.0.1/client.json", "https://[::ffff:127.0.0.1]/client.json",
            "https://169.254.169.254/latest/meta-data",
        ] {
            strict.clientID = url
            #expect(strict.send("GET", strict.authorizeQuery()).status == 400, "\(url)")
        }
        #expect(server.requests == requestsBefore, "no request leaves for a refused address")
        #expect(
            !ClientMetadataDocuments(http: CurlHTTPClient(), allowLoopback: false).isClientIDURL("https://example.com/")
        )
        #expect(
            !ClientMetadataDocuments(http: CurlHTTPClient(), allowLoopback: false).isClientIDURL(
                "https://example.com/a/../b"
            )
        )
        #expect(
            ClientMetadataDocuments(http: CurlHTTPClient(), allowLoopback: false).isClientIDURL(
                "https://app.example.com/oauth/client.json"
            )
        )
    }

    @Test func upstreamJWTsAreVerifiedWithTheConfiguredVerifier() throws {
        let key = try JSONWebKey.generate(.ES256, keyID: "up")
        let now = Int64(clock.now)
        let upstreamJWT = try JWT.sign(
            claims: ["iss": "https://idp.example", "aud": "proxy", "sub": "user-9", "exp": .int(now + 600)],
            key: key,
            algorithm: .ES256
        )
        let server = try LocalHTTPServer(requestHandler: { _ in
            .init(body: Array(#"{"access_token":"\#(upstreamJWT)","expires_in":600,"token_type":"Bearer"}"#.utf8))
        })
        let auth = try AuthFacade(
            json: [
                "provider": "oauth_proxy", "base_url": "http://127.0.0.1:8000",
                "upstream_authorization_endpoint": .string(server.baseURL + "/authorize"),
                "upstream_token_endpoint": .string(server.baseURL + "/token"),
                "upstream_client_id": "c", "upstream_client_secret": "s",
                "token_verifier": [
                    "jwks": ["keys": [try key.publicJWK()]], "algorithm": "ES256", "issuer": "https://idp.example",
                    "audience": "proxy",
                ],
            ],
            clock: clock.function
        )
        var flow = Flow(auth: auth)
        let tokens = try flow.tokens()
        // Without an upstream refresh token our access token cannot outlive the upstream one.
        #expect(tokens["expires_in"] == 600)
        let access = try #require(tokens["access_token"]?.stringValue)
        guard case .authenticated(let token) = auth.authenticate(authorization: "Bearer " + access) else {
            Issue.record("refused")
            return
        }
        #expect(token.subject == "user-9" && token.token == upstreamJWT)
        clock.advance(601)
        #expect(bearerStatus(auth, access) == 401)
    }
}
