import Foundation
import Synchronization
import Testing

@testable import FastMCPAuth
@testable import FastMCPAuthDevelopment

/// How a metadata-document fetch ended: "ok", "refused" or "unreachable".
func outcomeOf(_ body: () throws -> Any) -> String {
    do {
        _ = try body()
        return "ok"
    } catch ClientMetadataDocuments.Failure.refused {
        return "refused"
    } catch ClientMetadataDocuments.Failure.unreachable {
        return "unreachable"
    } catch {
        return "other"
    }
}

/// The OAuth proxy through the facade, against a real local HTTP server as the upstream. Each
/// step asserts the exact status and OAuth error; each defect of the security review has its case.
@Suite struct OAuthProxyTests {
    let clock = TestClock(1_800_000_000)

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
            try ProxyKeys.storageKey(signingKey: Array("_2Y3J0wsZ7kauaFyzSt9wNm9tHxClnnABu7736NMKCA=".utf8))
                == "OmcVBt7tD7lztCxTTIXovBlMleM2C32mpEUwDHOLyJ8="
        )
    }

    @Test func metadataAndIssuerAreOneString() throws {
        let upstream = try ProxyUpstream()
        let auth = try upstream.proxy(clock: clock)
        let flow = ProxyFlow(auth: auth)
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
        let upstream = try ProxyUpstream()
        let auth = try upstream.proxy(clock: clock)
        let flow = ProxyFlow(auth: auth)
        try flow.register()
        let (txn, upstreamURL) = try flow.consent()
        #expect(upstreamURL.hasPrefix(upstream.baseURL + "/authorize?"))
        let upstreamQuery = Parameters(Form.decode(String(upstreamURL.split(separator: "?")[1])) ?? [])
        #expect(
            upstreamQuery["state"] == txn && upstreamQuery["client_id"] == "up-client"
                && upstreamQuery["code_challenge_method"] == "S256"
        )
        #expect(
            upstreamQuery["redirect_uri"] == "http://127.0.0.1:8000/auth/callback"
                && upstreamQuery["scope"] == "read write"
        )
        let redirect = flow.callback(txn: txn)
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
        #expect(flow.bearer(access, scopes: ["admin"]) == 403)
        #expect(flow.bearer(refresh) == 401, "a refresh token is not an access token")
        #expect(flow.bearer("upstream-access-1") == 401, "the raw upstream token is not ours")

        // Narrowing works, widening does not, and a refused refresh leaves the token live.
        let widened = flow.refresh(refresh, scope: "read admin")
        #expect(widened.0 == 400 && widened.1["error"] == "invalid_scope")
        let (s1, narrowed) = flow.refresh(refresh, scope: "read")
        #expect(s1 == 200 && narrowed["scope"] == "read")
        #expect(flow.bearer(access) == 401, "the access token the refresh replaced is gone")

        // Revocation by a public client with an empty secret: refused at /mcp at once.
        let more = try flow.tokens()
        let accessToRevoke = try #require(more["access_token"]?.stringValue)
        #expect(flow.bearer(accessToRevoke) == 200)
        let revoked = flow.form(
            "/revoke",
            [("token", accessToRevoke), ("client_id", flow.clientID), ("client_secret", "")]
        )
        #expect(revoked.status == 200)
        #expect(flow.bearer(accessToRevoke) == 401)
        // Revoking a refresh token ends its whole grant, upstream too.
        let last = try flow.tokens()
        #expect(
            flow.form("/revoke", [("token", last["refresh_token"]?.stringValue ?? ""), ("client_id", flow.clientID)])
                .status == 200
        )
        #expect(flow.bearer(last["access_token"]?.stringValue) == 401)
        #expect(upstream.revocationCount == 1)
    }

    @Test func upstreamTokenIsRefreshedTransparentlyNearExpiry() throws {
        let upstream = try ProxyUpstream()
        let auth = try upstream.proxy(clock: clock, ["access_token_lifetime": 7200])
        let flow = ProxyFlow(auth: auth)
        let access = try #require(try flow.tokens()["access_token"]?.stringValue)
        clock.advance(3590)  // the upstream token (1 h) is within a minute of expiry
        guard case .authenticated(let token) = auth.authenticate(authorization: "Bearer " + access) else {
            Issue.record("refused")
            return
        }
        #expect(token.token == "upstream-renewed-1" && upstream.refreshCount == 1)
        #expect(flow.bearer(access) == 200)
        #expect(upstream.refreshCount == 1, "refreshed once, then reused")
    }

    // MARK: - Defect 1: consent is bound to the browser that renders it

    @Test func theConsentPageSetsTheBrowserBindingCookie() throws {
        let upstream = try ProxyUpstream()
        let flow = ProxyFlow(auth: try upstream.proxy(clock: clock))
        try flow.register()
        let (_, _, page) = try flow.consentPage()
        let cookie = try #require(page.headers["Set-Cookie"])
        #expect(cookie.hasPrefix("fastmcpauth_browser="))
        let attributes = Set(cookie.split(separator: ";").dropFirst().map { $0.trimmingCharacters() })
        // Lax, not Strict: the callback arrives as a cross-site redirect from the IdP.
        #expect(attributes.isSuperset(of: ["Path=/", "HttpOnly", "SameSite=Lax"]) && !attributes.contains("Secure"))
        #expect(page.headers["Referrer-Policy"] == "same-origin" && page.headers["X-Frame-Options"] == "DENY")
        #expect(try #require(flow.cookie).split(separator: "=")[1].count == 43, "256 random bits")
        // A render that arrives with the cookie reuses it.
        let (_, _, again) = try flow.consentPage()
        #expect(again.headers["Set-Cookie"] == nil)

        // On https the cookie is __Host- and Secure (no loopback test can see the difference).
        let secure = try ProxyUpstream().proxy(clock: clock, ["base_url": "https://mcp.example.com"])
        let https = ProxyFlow(auth: secure)
        try https.register(["redirect_uris": ["http://127.0.0.1:33418/callback"]])
        let authorize = https.browse("GET", https.authorizeQuery([("resource", "https://mcp.example.com/mcp")]))
        let location = try #require(authorize.headers["Location"])
        let securePage = https.browse("GET", String(location.dropFirst("https://mcp.example.com".count)))
        let secureCookie = try #require(securePage.headers["Set-Cookie"])
        #expect(secureCookie.hasPrefix("__Host-fastmcpauth_browser=") && secureCookie.contains("; Secure"))
        #expect(secureCookie.contains("SameSite=Lax") && secureCookie.contains("Path=/"))
        #expect(!secureCookie.contains("Domain"))
    }

    /// The reported takeover: an attacker renders the consent page for their own authorization
    /// and has a victim's browser submit it. The form is bound to the attacker's browser.
    @Test func aFormRenderedByOneBrowserCannotBeSubmittedByAnother() throws {
        let upstream = try ProxyUpstream()
        let auth = try upstream.proxy(clock: clock)
        let attacker = ProxyFlow(auth: auth)
        try attacker.register()
        let (txn, csrf, _) = try attacker.consentPage()
        // The victim's browser: no cookie at all, or one of its own from an earlier visit.
        let victim = ProxyFlow(auth: auth)
        victim.clientID = attacker.clientID
        let bare = victim.decide(txn: txn, csrf: csrf)
        #expect(bare.status == 403 && victim.cookie == nil, "the POST sets no cookie")
        let victimFlow = ProxyFlow(auth: auth)
        try victimFlow.register()
        _ = try victimFlow.consentPage()
        victim.cookie = victimFlow.cookie
        #expect(victim.decide(txn: txn, csrf: csrf).status == 403)
        // Those attempts used the CSRF token up. Cross-site submissions are refused before the
        // token is even read, so one fresh token survives all of them.
        let (txn2, csrf2, _) = try attacker.consentPage()
        for headers in [
            [("Origin", "https://evil.example")], [("Origin", "null")], [("Sec-Fetch-Site", "cross-site")],
            [("Sec-Fetch-Site", "same-site")], [("Origin", "http://127.0.0.1:8000"), ("Sec-Fetch-Site", "cross-site")],
        ] {
            #expect(attacker.decide(txn: txn2, csrf: csrf2, headers: headers).status == 403, "\(headers)")
        }
        // Our own origin (or a same-origin fetch without Origin) is accepted.
        #expect(attacker.decide(txn: txn2, csrf: csrf2, headers: [("Origin", "http://127.0.0.1:8000")]).status == 302)
        let (txn3, csrf3, _) = try attacker.consentPage()
        #expect(attacker.decide(txn: txn3, csrf: csrf3, headers: [("Sec-Fetch-Site", "same-origin")]).status == 302)
        // The callback is bound as well: only the approving browser finishes.
        #expect(victim.callback(txn: txn2)["status"] == "403")
        let stranger = ProxyFlow(auth: auth)
        #expect(stranger.callback(txn: txn2)["status"] == "403", "no cookie")
        #expect(attacker.callback(txn: txn2)["code"] != nil)
    }

    @Test func aCallbackWithoutApprovalIsRefused() throws {
        let upstream = try ProxyUpstream()
        let flow = ProxyFlow(auth: try upstream.proxy(clock: clock))
        try flow.register()
        let (txn, _, _) = try flow.consentPage()
        #expect(flow.callback(txn: txn)["status"] == "403", "the page was rendered but never approved")
        #expect(flow.callback(txn: "unknown-state")["status"] == "400")
    }

    @Test func duplicatePagesAndTwoAuthorizationsInOneBrowserAllComplete() throws {
        let upstream = try ProxyUpstream()
        let flow = ProxyFlow(auth: try upstream.proxy(clock: clock))
        try flow.register()
        // A prefetch renders the page a second time: the page already shown still works.
        let (txn, csrf, page) = try flow.consentPage()
        _ = flow.browse("GET", "/consent?txn_id=" + Form.encode(txn))
        #expect(page.bodyText.contains("Test &lt;Client&gt;") && !page.bodyText.contains("<Client>"))
        // Two authorizations at once in the same browser.
        let (otherTxn, otherCSRF, _) = try flow.consentPage()
        #expect(flow.decide(txn: txn, csrf: csrf).status == 302)
        #expect(flow.decide(txn: otherTxn, csrf: otherCSRF).status == 302)
        #expect(flow.decide(txn: txn, csrf: csrf).status == 403, "each CSRF token works once")
        let first = try #require(flow.callback(txn: txn)["code"])
        let second = try #require(flow.callback(txn: otherTxn)["code"])
        #expect(flow.exchange(first).0 == 200 && flow.exchange(second).0 == 200)
        #expect(flow.callback(txn: txn)["status"] == "400", "a sign-in finishes once")
        // Deny: access_denied to the client, with state and iss.
        let (denyTxn, denyCSRF, _) = try flow.consentPage()
        let denied = ProxyFlow.clientParameters(
            flow.decide(txn: denyTxn, csrf: denyCSRF, action: "deny"),
            flow.redirectURI
        )
        #expect(
            denied["error"] == "access_denied" && denied["iss"] == "http://127.0.0.1:8000/" && denied["state"] == "st-1"
        )
    }

    @Test func withoutConsentTheAuthorizingBrowserIsBound() throws {
        let upstream = try ProxyUpstream()
        let flow = ProxyFlow(auth: try upstream.proxy(clock: clock, ["require_authorization_consent": false]))
        try flow.register()
        let authorize = flow.browse("GET", flow.authorizeQuery())
        #expect(authorize.status == 302 && authorize.headers["Location"]?.hasPrefix(upstream.baseURL) == true)
        let txn = try #require(
            Parameters(Form.decode(String(authorize.headers["Location"]?.split(separator: "?")[1] ?? "")) ?? [])[
                "state"
            ]
        )
        let other = ProxyFlow(auth: flow.auth)
        #expect(other.callback(txn: txn)["status"] == "403")
        #expect(flow.callback(txn: txn)["code"] != nil)
    }

    @Test func theConsentPageShowsWhoAsksAndWhereTheAnswerGoes() throws {
        let upstream = try ProxyUpstream()
        let flow = ProxyFlow(auth: try upstream.proxy(clock: clock))
        try flow.register([
            "redirect_uris": ["http://127.0.0.1:33418/callback"],
            "client_name": .string("Good\u{202E}lanimreT\u{200B} App\u{0007}"),
        ])
        let (_, _, page) = try flow.consentPage()
        let html = page.bodyText
        #expect(html.contains("<strong>GoodlanimreT App</strong>"), "bidi, zero-width and control characters are gone")
        #expect(!html.contains("\u{202E}") && !html.contains("\u{200B}"))
        #expect(html.contains("http://<strong>127.0.0.1</strong>:33418/callback"), "the full URI, its host emphasised")
        #expect(html.contains("Unverified"))
        #expect(ConsentPage.displayName("\u{202E}\u{2066}") == "An unnamed client")
    }

    // MARK: - Defects 2 and 3: refresh rotation

    @Test func aReplayInsideTheGraceWindowGetsTheSameSuccessorOnce() throws {
        let upstream = try ProxyUpstream()
        let auth = try upstream.proxy(clock: clock)
        let flow = ProxyFlow(auth: auth)
        let refresh = try #require(try flow.tokens()["refresh_token"]?.stringValue)
        let (s1, first) = flow.refresh(refresh)
        #expect(s1 == 200)
        clock.advance(5)
        let (s2, second) = flow.refresh(refresh)
        #expect(s2 == 200 && second == first, "exactly the recorded successor, never a new chain")
        let (s3, third) = flow.refresh(refresh)
        #expect(s3 == 400 && third["error"] == "invalid_grant")
        // The grant is untouched: the successor works and refreshes.
        #expect(flow.bearer(first["access_token"]?.stringValue) == 200)
        let (s4, next) = flow.refresh(first["refresh_token"]?.stringValue ?? "")
        #expect(s4 == 200 && flow.bearer(next["access_token"]?.stringValue) == 200)
        // Another client presenting the token gets nothing.
        let other = ProxyFlow(auth: auth)
        try other.register()
        #expect(flow.refresh(refresh, client: other.clientID).1["error"] == "invalid_grant")
        // After the window, any reuse revokes the whole grant.
        clock.advance(30)
        let (s5, late) = flow.refresh(refresh)
        #expect(s5 == 400 && late["error"] == "invalid_grant")
        #expect(flow.bearer(next["access_token"]?.stringValue) == 401)
        #expect(flow.refresh(next["refresh_token"]?.stringValue ?? "").0 == 400)
        #expect(upstream.revocationCount == 1)
    }

    /// Review finding: a grant revoked while its upstream token was being renewed came back when
    /// the renewal wrote the token set back. It must stay revoked.
    @Test func aGrantRevokedDuringAnUpstreamRenewalStaysRevoked() throws {
        let upstream = try ProxyUpstream()
        let auth = try upstream.proxy(clock: clock, ["access_token_lifetime": 7200])
        let flow = ProxyFlow(auth: auth)
        let tokens = try flow.tokens()
        let access = try #require(tokens["access_token"]?.stringValue)
        clock.advance(3590)  // the upstream token is due for renewal
        upstream.state.refreshDelay.withLock { $0 = 0.6 }
        let renewal = Thread { _ = flow.bearer(access) }
        renewal.start()
        Thread.sleep(forTimeInterval: 0.2)  // the renewal is on its way upstream
        #expect(
            flow.form("/revoke", [("token", tokens["refresh_token"]?.stringValue ?? ""), ("client_id", flow.clientID)])
                .status == 200
        )
        Thread.sleep(forTimeInterval: 0.8)
        #expect(upstream.refreshCount == 1)
        #expect(flow.bearer(access) == 401, "still revoked after the renewal finished")
        #expect(upstream.revocationCount == 2, "the grant, then the tokens the renewal obtained")
    }

    /// Review finding: a revoked refresh token's rotation claim made every later use wait ~10 s.
    @Test func aRefreshTokenThatIsNotLiveIsRefusedAtOnceEveryTime() throws {
        let upstream = try ProxyUpstream()
        let flow = ProxyFlow(auth: try upstream.proxy(clock: clock))
        let tokens = try flow.tokens()
        let refresh = tokens["refresh_token"]?.stringValue ?? ""
        #expect(flow.form("/revoke", [("token", refresh), ("client_id", flow.clientID)]).status == 200)
        let started = Date()
        for _ in 0..<3 { #expect(flow.refresh(refresh).1["error"] == "invalid_grant") }
        #expect(Date().timeIntervalSince(started) < 2)
    }

    @Test func withoutAGraceWindowAnyReplayRevokes() throws {
        let upstream = try ProxyUpstream()
        let flow = ProxyFlow(auth: try upstream.proxy(clock: clock, ["refresh_grace_period": 0]))
        let refresh = try #require(try flow.tokens()["refresh_token"]?.stringValue)
        let (_, first) = flow.refresh(refresh)
        #expect(flow.refresh(refresh).0 == 400)
        #expect(flow.bearer(first["access_token"]?.stringValue) == 401)
    }

    @Test func theStoredSuccessorIsUnreadableWithoutTheOldToken() throws {
        let upstream = try ProxyUpstream()
        let auth = try upstream.proxy(clock: clock)
        let flow = ProxyFlow(auth: auth)
        let refresh = try #require(try flow.tokens()["refresh_token"]?.stringValue)
        let (_, successor) = flow.refresh(refresh)
        let store = try #require(auth.proxy?.store)
        let record = try #require(try store.get(ProxyCollection.refreshRotations, try OpenSSL.sha256Hex(refresh)))
        let text = JSONValue.object(record).serialized()
        for token in [successor["access_token"], successor["refresh_token"]] {
            let value = try #require(token?.stringValue)
            #expect(!text.contains(value) && !text.contains(String(value.split(separator: ".")[1])))
        }
        // Nowhere in the store is a refresh token kept but as a hash.
        for collection in [
            ProxyCollection.refreshTokens, ProxyCollection.jtiMappings, ProxyCollection.upstreamTokens,
            ProxyCollection.refreshRotations, ProxyCollection.codeRedemptions,
        ] {
            for key in try store.keys(collection) {
                let stored = JSONValue.object(try store.get(collection, key) ?? [:]).serialized()
                #expect(!stored.contains(refresh) && !stored.contains(successor["refresh_token"]?.stringValue ?? "?"))
            }
        }
    }

    @Test func fastMCPRefreshRecordsFindTheirGrantThroughTheJTIMapping() throws {
        // FastMCP's refresh record names no upstream_token_id: the refresh token's jti mapping
        // does. A token FastMCP issued (same key, issuer, audience) refreshes with us.
        let upstream = try ProxyUpstream()
        let auth = try upstream.proxy(clock: clock)
        let proxy = try #require(auth.proxy)
        let flow = ProxyFlow(auth: auth)
        try flow.register()
        let tokenSet = UpstreamTokenSet(
            id: "fastmcp-grant",
            accessToken: "upstream-from-fastmcp",
            refreshToken: "upstream-refresh-fastmcp",
            refreshTokenExpiresAt: nil,
            expiresAt: clock.now + 3600,
            tokenType: "Bearer",
            scope: "read",
            clientID: flow.clientID,
            createdAt: clock.now,
            rawTokenData: [:]
        )
        try proxy.storeTokenSet(tokenSet)
        let jti = "fastmcp-refresh-jti"
        let claims: JSONValue = [
            "iss": "http://127.0.0.1:8000/", "aud": "http://127.0.0.1:8000/mcp", "client_id": .string(flow.clientID),
            "scope": "read", "exp": .int(Int64(clock.now) + 86400), "iat": .int(Int64(clock.now)), "jti": .string(jti),
            "token_use": "refresh",
        ]
        let refresh = try JWT.sign(claims: claims, key: proxy.signingJWK, algorithm: .HS256)
        try proxy.store.put(
            ProxyCollection.refreshTokens,
            try OpenSSL.sha256Hex(refresh),
            [
                "client_id": .string(flow.clientID), "scopes": ["read"], "expires_at": .int(Int64(clock.now) + 86400),
                "created_at": .double(clock.now),
            ]
        )
        try proxy.store.put(
            ProxyCollection.jtiMappings,
            jti,
            ["jti": .string(jti), "upstream_token_id": "fastmcp-grant", "created_at": .double(clock.now)]
        )
        let (status, body) = flow.refresh(refresh)
        #expect(status == 200 && body["scope"] == "read")
        guard
            case .authenticated(let token) = auth.authenticate(
                authorization: "Bearer " + (body["access_token"]?.stringValue ?? "")
            )
        else {
            Issue.record("refused")
            return
        }
        #expect(token.token == "upstream-from-fastmcp")
    }

    // MARK: - Defect 4: scopes are those offered, and what the upstream granted

    @Test func nothingOfferedMeansNoScopeIsGranted() throws {
        let upstream = try ProxyUpstream()
        let flow = ProxyFlow(auth: try upstream.proxy(clock: clock, ["valid_scopes": .null, "required_scopes": []]))
        try flow.register()
        let refused = flow.send("GET", flow.authorizeQuery([("scope", "admin")]))
        #expect(ProxyFlow.clientParameters(refused, flow.redirectURI)["error"] == "invalid_scope")
        let tokens = try flow.tokens([("scope", nil)])
        #expect(tokens["scope"] == nil)
        let registration = flow.send(
            "POST",
            "/register",
            body: #"{"redirect_uris":["http://127.0.0.1:1/cb"],"scope":"admin"}"#
        )
        #expect(registration.status == 400 && registration.bodyText.contains("invalid_client_metadata"))
    }

    @Test func clientsGetTheirRegisteredScopeInEveryLeg() throws {
        let upstream = try ProxyUpstream()
        let auth = try upstream.proxy(clock: clock)
        let flow = ProxyFlow(auth: auth)
        // Registration: a scope outside the offered set is refused; a subset is kept.
        let bad = flow.send(
            "POST",
            "/register",
            body: #"{"redirect_uris":["\#(flow.redirectURI)"],"scope":"read admin"}"#
        )
        let badError = try JSONValue.parse(bad.body)["error"]
        #expect(bad.status == 400 && badError == "invalid_client_metadata")
        try flow.register(["redirect_uris": .array([.string(flow.redirectURI)]), "scope": "read"])
        // Authorize: beyond the registered scope is invalid_scope; no scope gets the registered one.
        let wider = flow.send("GET", flow.authorizeQuery([("scope", "read write")]))
        #expect(ProxyFlow.clientParameters(wider, flow.redirectURI)["error"] == "invalid_scope")
        let tokens = try flow.tokens([("scope", nil)])
        #expect(tokens["scope"] == "read")
        // Refresh without scope keeps it.
        let (status, refreshed) = flow.refresh(tokens["refresh_token"]?.stringValue ?? "")
        #expect(status == 200 && refreshed["scope"] == "read")
        // A client registered without scope gets the offered set.
        let plain = ProxyFlow(auth: auth)
        #expect(try plain.tokens([("scope", nil)])["scope"] == "read write")
    }

    @Test func theGrantIsConfinedToWhatTheUpstreamGranted() throws {
        let upstream = try ProxyUpstream()
        let auth = try upstream.proxy(clock: clock, ["upstream_scope_names": ["mcp.read": "read"]])
        let flow = ProxyFlow(auth: auth)
        upstream.state.grantedScope.withLock { $0 = "openid,mcp.read" }  // commas, and its own names
        let tokens = try flow.tokens()
        #expect(tokens["scope"] == "read", "asked read write; the upstream granted only (its name for) read")
        #expect(flow.bearer(tokens["access_token"]?.stringValue, scopes: ["write"]) == 403)
        upstream.state.grantedScope.withLock { $0 = nil }
        #expect(try flow.tokens()["scope"] == "read write", "no upstream scope: the request stands (RFC 6749 §5.1)")
    }

    @Test func unauthenticatedStateIsCappedAndNeverEvictsAnyone() throws {
        let upstream = try ProxyUpstream()
        let auth = try upstream.proxy(clock: clock, ["max_pending_transactions": 3, "max_registrations_per_hour": 4])
        let user = ProxyFlow(auth: auth)
        try user.register()
        let (txn, csrf, _) = try user.consentPage()  // a user's sign-in, pending
        let stranger = ProxyFlow(auth: auth)
        try stranger.register()
        var statuses = [Int]()
        for index in 0..<4 {
            statuses.append(stranger.send("GET", stranger.authorizeQuery(), address: "203.0.113.\(index)").status)
        }
        #expect(statuses == [302, 302, 503, 503], "\(statuses)")
        let capped = stranger.send("GET", stranger.authorizeQuery(), address: "203.0.113.9")
        #expect((try JSONValue.parse(capped.body))["error"] == "over_capacity" && capped.headers["Retry-After"] != nil)
        // Registrations too (two above, then two more, then the cap).
        let more = (0..<3).map { _ in
            ProxyFlow(auth: auth).send("POST", "/register", body: #"{"redirect_uris":["http://127.0.0.1:1/cb"]}"#)
                .status
        }
        #expect(more == [201, 201, 503])
        // The user's pending sign-in is intact and completes.
        #expect(user.decide(txn: txn, csrf: csrf).status == 302)
        #expect(user.callback(txn: txn)["code"] != nil)
        // The window passes: room again.
        clock.advance(15 * 60)
        #expect(stranger.send("GET", stranger.authorizeQuery(), address: "203.0.113.9").status == 302)
    }

    @Test func authorizeAndConsentAreLimitedPerAddress() throws {
        let upstream = try ProxyUpstream()
        let auth = try upstream.proxy(clock: clock, ["authorize_rate_limit": 3, "consent_rate_limit": 2])
        let flow = ProxyFlow(auth: auth)
        try flow.register()
        let statuses = (0..<4).map { _ in
            flow.send("GET", flow.authorizeQuery(), address: "2001:db8:5:5::\(Int.random(in: 1...999))").status
        }
        #expect(statuses == [302, 302, 302, 429], "one IPv6 /64 is one address")
        #expect(flow.send("GET", flow.authorizeQuery(), address: "2001:db8:5:6::1").status == 302)
        let limited = flow.send("GET", flow.authorizeQuery(), address: "2001:db8:5:5::1")
        #expect(
            (try JSONValue.parse(limited.body))["error"] == "rate_limited" && limited.headers["Retry-After"] == "60"
        )
        // Consent renders and posts count against the consent limit.
        let location = try #require(
            flow.send("GET", flow.authorizeQuery(), address: "198.51.100.1").headers["Location"]
        )
        #expect(flow.send("GET", location, address: "198.51.100.2").status == 200)
        #expect(flow.send("GET", location, address: "198.51.100.2").status == 200)
        #expect(flow.send("GET", location, address: "198.51.100.2").status == 429)
        clock.advance(60)
        #expect(flow.send("GET", location, address: "198.51.100.2").status == 200)
    }

    // MARK: - Defect 5: redirect rules

    @Test func registrationRedirectRules() throws {
        let upstream = try ProxyUpstream()
        let auth = try upstream.proxy(clock: clock, ["registration_rate_limit": 100])
        let flow = ProxyFlow(auth: auth)
        func register(_ uris: [String], type: String? = nil, on auth: AuthFacade? = nil) -> (Int, String?) {
            var body: [String: JSONValue] = ["redirect_uris": .array(uris.map { .string($0) })]
            if let type { body["application_type"] = .string(type) }
            let response = ProxyFlow(auth: auth ?? flow.auth).send(
                "POST",
                "/register",
                body: JSONValue.object(body).serialized()
            )
            return (response.status, (try? JSONValue.parse(response.body))?["error"]?.stringValue)
        }
        for uri in [
            "javascript:alert(1)", "data:text/html,hi", "http://evil.example/cb", "https://app.example/cb#frag",
            "http://127.attacker.example/cb", "http://localhost.evil.example/cb", "http://0177.0.0.1/cb",
            "http://127.0.0.1:８０/cb", "http://127.0.0.1:99999/cb", "https://user@app.example/cb",
            "https://app.example/a/../b", "https://app.example/a/%2e%2E/b", "https://app.example/./b",
            "https://app.example\\@evil.example/cb",
        ] {
            #expect(register([uri]) == (400, "invalid_redirect_uri"), "\(uri)")
        }
        #expect(
            register(["com.example.app:/cb"]) == (400, "invalid_redirect_uri"),
            "custom schemes are for native apps"
        )
        #expect(register(["com.example.app:/cb"], type: "native").0 == 201)
        for uri in ["https://app.example/cb", "http://localhost:1234/cb", "http://127.1.2.3/cb", "http://[::1]:9/cb"] {
            #expect(register([uri]).0 == 201, "\(uri)")
        }
        // Allowed patterns are matched part by part.
        let strict = try upstream.proxy(
            clock: clock,
            [
                "allowed_client_redirect_uris": [
                    "http://localhost:*", "https://*.corp.example/cb", "https://claude.ai/api/*",
                ]
            ]
        )
        for uri in [
            "https://a.corp.example/cb", "https://a.b.corp.example/cb", "http://localhost:4000/anything",
            "https://claude.ai/api/x/callback",
        ] {
            #expect(register([uri], on: strict).0 == 201, "\(uri)")
        }
        for uri in [
            "https://evil.example/?.corp.example/cb", "https://corp.example/cb", "https://evilcorp.example/cb",
            "https://a.corp.example/cb?x=1", "https://a.corp.example:8443/cb", "https://claude.ai/apix",
            "https://claude.ai/api?x=/api/", "http://127.0.0.1:4000/cb",
        ] {
            #expect(register([uri], on: strict) == (400, "invalid_redirect_uri"), "\(uri)")
        }
        // A pattern with * anywhere else is a configuration error.
        for pattern in [
            "https://a*.corp.example/cb", "http*://x.example/", "https://x.example/cb?a=*", "https://*@x.example/",
        ] {
            #expect(
                outcome { try upstream.proxy(clock: clock, ["allowed_client_redirect_uris": [.string(pattern)]]) }
                    == .invalidConfig,
                "\(pattern)"
            )
        }
    }

    // MARK: - Defect 6: codes

    @Test func aMisusedCodeIsNotUsedUpAndAReplayRevokes() throws {
        let upstream = try ProxyUpstream()
        let auth = try upstream.proxy(clock: clock)
        let flow = ProxyFlow(auth: auth)
        try flow.register()
        let other = ProxyFlow(auth: auth)
        try other.register()
        let code = try flow.code()
        // Wrong client, redirect URI or verifier: refused, and the code survives for its owner.
        #expect(flow.exchange(code, client: other.clientID).1["error"] == "invalid_grant")
        #expect(flow.exchange(code, redirect: "http://127.0.0.1:1/other").1["error"] == "invalid_grant")
        #expect(flow.exchange(code, verifier: String(repeating: "x", count: 43)).1["error"] == "invalid_grant")
        #expect(
            flow.exchange(code, extra: [("resource", "http://127.0.0.1:8000/other")]).1["error"] == "invalid_target"
        )
        let (ok, issued) = flow.exchange(code)
        #expect(ok == 200 && flow.bearer(issued["access_token"]?.stringValue) == 200)
        // The client POSTs twice: refused, the grant left alone.
        clock.advance(3)
        #expect(flow.exchange(code).1["error"] == "invalid_grant")
        #expect(flow.bearer(issued["access_token"]?.stringValue) == 200)
        // Any other replay revokes what the code issued.
        #expect(flow.exchange(code, verifier: String(repeating: "y", count: 43)).1["error"] == "invalid_grant")
        #expect(flow.bearer(issued["access_token"]?.stringValue) == 401)
        // A late duplicate (past 10 s) by the same client revokes too.
        let second = try flow.code()
        let (_, tokens) = flow.exchange(second)
        clock.advance(11)
        #expect(flow.exchange(second).1["error"] == "invalid_grant")
        #expect(flow.bearer(tokens["access_token"]?.stringValue) == 401)
        // Expired codes and made-up codes.
        let third = try flow.code()
        clock.advance(301)
        #expect(flow.exchange(third).1["error"] == "invalid_grant")
        #expect(flow.exchange("made-up").1["error"] == "invalid_grant")
    }

    @Test func tokenEndpointClientChecks() throws {
        let upstream = try ProxyUpstream()
        let auth = try upstream.proxy(clock: clock)
        let flow = ProxyFlow(auth: auth)
        let other = ProxyFlow(auth: auth)
        try other.register()
        let tokens = try flow.tokens()
        let refresh = tokens["refresh_token"]?.stringValue ?? ""
        #expect(flow.refresh(refresh, client: other.clientID).1["error"] == "invalid_grant")
        #expect(flow.refresh(refresh, client: "nobody").0 == 401)
        let withSecret = flow.form(
            "/token",
            [
                ("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", flow.clientID),
                ("client_secret", "guess"),
            ]
        )
        let secretError = try JSONValue.parse(withSecret.body)["error"]
        #expect(withSecret.status == 401 && secretError == "invalid_client")
        #expect(flow.form("/token", [("grant_type", "password"), ("client_id", flow.clientID)]).status == 400)
        // The upstream's error text never reaches the client.
        try flow.register()
        let (txn, _) = try flow.consent()
        let failed = flow.callback(txn: txn, code: "bad-code")
        #expect(failed["error"] == "server_error" && failed["error_description"]?.contains("script") == false)
    }

    // MARK: - Defect 7: honest outcomes

    @Test func revokedTokensAreTokenRevokedAndOutagesAre503() throws {
        let upstream = try ProxyUpstream()
        // Our tokens outlive the upstream's hour, so the upstream expires first.
        let auth = try upstream.proxy(clock: clock, ["access_token_lifetime": 20000])
        let flow = ProxyFlow(auth: auth)
        let tokens = try flow.tokens()
        let access = try #require(tokens["access_token"]?.stringValue)
        let proxy = try #require(auth.proxy)
        #expect(outcome { try proxy.verify(access, requiredScopes: []) } == .ok)
        #expect(flow.form("/revoke", [("token", access), ("client_id", flow.clientID)]).status == 200)
        #expect(outcome { try proxy.verify(access, requiredScopes: []) } == .tokenRevoked)
        guard case .challenge(let revoked) = auth.authenticate(authorization: "Bearer " + access) else {
            Issue.record("accepted")
            return
        }
        #expect(revoked.status == 401 && revoked.headers["WWW-Authenticate"]?.contains("invalid_token") == true)

        // The upstream token expires and the upstream is down: 503 with Retry-After, never 401.
        let live = try flow.tokens()
        upstream.state.mode.withLock { $0 = .down }
        clock.advance(3601)
        let liveAccess = live["access_token"]?.stringValue
        #expect(outcome { try proxy.verify(liveAccess ?? "", requiredScopes: []) } == .upstreamUnavailable)
        guard case .challenge(let outage) = auth.authenticate(authorization: "Bearer " + (liveAccess ?? "")) else {
            Issue.record("accepted")
            return
        }
        #expect(outage.status == 503 && outage.headers["Retry-After"] != nil)
        // At /token the same outage is temporarily_unavailable.
        let (status, body) = flow.refresh(live["refresh_token"]?.stringValue ?? "")
        #expect(status == 503 && body["error"] == "temporarily_unavailable")
        // Back up: the client carries on with its grant, nothing was revoked.
        upstream.state.mode.withLock { $0 = .normal }
        let (again, renewed) = flow.refresh(live["refresh_token"]?.stringValue ?? "")
        #expect(again == 200 && flow.bearer(renewed["access_token"]?.stringValue) == 200)
        // An upstream that ends the grant (invalid_grant on refresh) revokes ours.
        upstream.state.mode.withLock { $0 = .refusesRefresh }
        clock.advance(3601)
        #expect(
            outcome { try proxy.verify(renewed["access_token"]?.stringValue ?? "", requiredScopes: []) }
                == .tokenRevoked
        )
    }

    @Test func aStoreOutageIs503AtTheMCPEndpoint() throws {
        let redis = try RedisServer()
        let upstream = try ProxyUpstream()
        let auth = try upstream.proxy(clock: clock, ["storage": .string(redis.url)])
        let flow = ProxyFlow(auth: auth)
        let tokens = try flow.tokens()
        let access = tokens["access_token"]?.stringValue
        #expect(flow.bearer(access) == 200)
        redis.stop()
        guard case .challenge(let outage) = auth.authenticate(authorization: "Bearer " + (access ?? "")) else {
            Issue.record("accepted")
            return
        }
        #expect(outage.status == 503 && outage.headers["Retry-After"] != nil, "a Redis blip must not log users out")
        let (status, body) = flow.refresh(tokens["refresh_token"]?.stringValue ?? "")
        #expect(status == 503 && body["error"] == "temporarily_unavailable")
        try redis.start()
        #expect(flow.bearer(access) == 200)
    }

    // MARK: - Test-only settings

    @Test func testOnlySettingsNeedTestingAndLoopback() throws {
        let upstream = try ProxyUpstream()
        #expect(outcome { try upstream.proxy(clock: clock, ["cimd_test_allow_loopback": true]) } == .invalidConfig)
        #expect(outcome { try upstream.proxy(clock: clock, ["pbkdf2_iterations": 10]) } == .invalidConfig)
        #expect(
            outcome {
                try upstream.proxy(clock: clock, ["testing": true, "base_url": "https://mcp.example.com"])
            } == .invalidConfig
        )
        #expect(
            outcome { try upstream.proxy(clock: clock, ["testing": true, "cimd_test_allow_loopback": true]) } == .ok
        )
        let environment = [
            "FASTMCP_SERVER_AUTH": "oauth_proxy", "FASTMCP_SERVER_AUTH_OAUTH_PROXY_BASE_URL": "http://127.0.0.1:8000",
            "FASTMCP_SERVER_AUTH_OAUTH_PROXY_UPSTREAM_AUTHORIZATION_ENDPOINT": upstream.baseURL + "/authorize",
            "FASTMCP_SERVER_AUTH_OAUTH_PROXY_UPSTREAM_TOKEN_ENDPOINT": upstream.baseURL + "/token",
            "FASTMCP_SERVER_AUTH_OAUTH_PROXY_UPSTREAM_CLIENT_ID": "up-client",
            "FASTMCP_SERVER_AUTH_OAUTH_PROXY_UPSTREAM_CLIENT_SECRET": "up-secret",
        ]
        #expect(outcome { try AuthFacade.configuration(environment: environment) as Any } == .ok)
        for (name, value) in [
            ("FASTMCP_SERVER_AUTH_OAUTH_PROXY_TESTING", "true"),
            ("FASTMCP_SERVER_AUTH_OAUTH_PROXY_PBKDF2_ITERATIONS", "1"),
            ("FASTMCP_SERVER_AUTH_OAUTH_PROXY_CIMD_TEST_ALLOW_LOOPBACK", "true"),
        ] {
            do {
                _ = try AuthFacade.configuration(environment: environment.merging([name: value]) { $1 })
                Issue.record("\(name) was accepted")
            } catch let error as AuthError {
                #expect(error.code == .invalidConfig && error.message.contains(name))
            }
        }
    }

    // MARK: - Client ID Metadata Documents

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
        let upstream = try ProxyUpstream()
        let documents = Locked<[String: String]>([:])
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
        let auth = try upstream.proxy(clock: clock, ["testing": true, "cimd_test_allow_loopback": true])
        let metadata = try JSONValue.parse(
            ProxyFlow(auth: auth).send("GET", "/.well-known/oauth-authorization-server").body
        )
        #expect(metadata["client_id_metadata_document_supported"] == true)
        let flow = ProxyFlow(auth: auth)
        flow.clientID = clientURL
        #expect(flow.exchange(try flow.code()).0 == 200)
        let (_, _, page) = try flow.consentPage()
        #expect(page.bodyText.contains("<strong>Doc &lt;Client&gt;</strong>"))
        #expect(
            page.bodyText.contains("Verified: its metadata document is published by <strong>127.0.0.1</strong>"),
            "the page names the host vouching for the document"
        )
        // Refused documents: the client is unknown, and the error page does not redirect.
        for path in ["/mismatch.json", "/secret.json", "/evil.json", "/redirect.json", "/big.json", "/missing.json"] {
            let bad = ProxyFlow(auth: auth)
            bad.clientID = server.baseURL + path
            #expect(bad.send("GET", bad.authorizeQuery()).status == 400, "\(path)")
        }
        // A document host that cannot be reached is an outage (503), never "unknown client" (401).
        let away = ProxyFlow(auth: auth)
        away.clientID = "http://127.0.0.1:1/client.json"
        #expect(away.send("GET", away.authorizeQuery()).status == 503)
        #expect(away.refresh("x").0 == 503)
        // Without the test setting, a loopback (or any non-public) document host is refused.
        let strict = ProxyFlow(auth: try upstream.proxy(clock: clock))
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
        let policy = ClientMetadataDocuments(http: CurlHTTPClient(), allowLoopback: false)
        #expect(!policy.isClientIDURL("https://example.com/") && !policy.isClientIDURL("https://example.com/a/../b"))
        #expect(policy.isClientIDURL("https://app.example.com/oauth/client.json"))
    }

    @Test func metadataDocumentFetchesAreCoalescedCappedAndRemembered() throws {
        let served = Locked([String: Int]())
        let inFlight = Locked((now: 0, peak: 0))
        let server = try LocalHTTPServer(requestHandler: { request in
            served.withLock { $0[request.path, default: 0] += 1 }
            inFlight.withLock {
                $0.now += 1
                $0.peak = max($0.peak, $0.now)
            }
            defer { inFlight.withLock { $0.now -= 1 } }
            Thread.sleep(forTimeInterval: 0.4)
            guard request.path.hasPrefix("/client") else { return .init(status: 404) }
            return .init(
                headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
                body: Array(#"{"client_id":"http://127.0.0.1:\#(0)","redirect_uris":["http://127.0.0.1:1/cb"]}"#.utf8)
            )
        })
        let documents = ClientMetadataDocuments(http: CurlHTTPClient(), allowLoopback: true, clock: clock.function)
        // Eight callers of one URL at once: one fetch.
        let url = server.baseURL + "/client-a.json"
        _ = ProxyRaceTests.together(8) { _ in (try? documents.fetch(url)) == nil }
        #expect(served.withLock { $0["/client-a.json"] } == 1)
        // A failure is remembered for a minute: no second request.
        #expect(outcomeOf { try documents.fetch(server.baseURL + "/missing.json") } == "refused")
        #expect(outcomeOf { try documents.fetch(server.baseURL + "/missing.json") } == "refused")
        #expect(served.withLock { $0["/missing.json"] } == 1)
        clock.advance(61)
        _ = outcomeOf { try documents.fetch(server.baseURL + "/missing.json") }
        #expect(served.withLock { $0["/missing.json"] } == 2)
        // Twelve different documents of one host at once: at most four fetches in flight; the
        // rest are told to retry at once (an outage for them, not an unknown client).
        let outcomes = ProxyRaceTests.together(12) { index in
            outcomeOf { try documents.fetch(server.baseURL + "/client-\(index).json") }
        }
        #expect(inFlight.withLock { $0.peak } <= 4)
        #expect(outcomes.filter { $0 == "unreachable" }.count >= 8, "\(outcomes)")
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
                "upstream_client_id": "c", "upstream_client_secret": "s", "required_scopes": ["read"],
                "token_verifier": [
                    "jwks": ["keys": [try key.publicJWK()]], "algorithm": "ES256", "issuer": "https://idp.example",
                    "audience": "proxy",
                ],
            ],
            clock: clock.function
        )
        let flow = ProxyFlow(auth: auth)
        let tokens = try flow.tokens([("scope", nil)])
        // Without an upstream refresh token our access token cannot outlive the upstream one.
        #expect(tokens["expires_in"] == 600)
        let access = try #require(tokens["access_token"]?.stringValue)
        guard case .authenticated(let token) = auth.authenticate(authorization: "Bearer " + access) else {
            Issue.record("refused")
            return
        }
        #expect(token.subject == "user-9" && token.token == upstreamJWT)
        clock.advance(601)
        #expect(flow.bearer(access) == 401)
    }

    // MARK: - The development identity provider

    /// The development IdP answering the proxy's back-channel calls in process (its real code,
    /// without a socket): an HTTPClient that hands each request to it.
    struct InProcess: HTTPClient {
        let idp: DevelopmentIdentityProvider
        func send(_ request: HTTPRequest) throws -> HTTPResponse {
            let target = String(request.url.dropFirst("http://127.0.0.1:8000".count))
            let answer =
                idp.handle(
                    AuthRequest(
                        method: request.method,
                        target: target,
                        headers: request.headers + [(name: "Host", value: "127.0.0.1:8000")],
                        body: request.body
                    )
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
        let flow = ProxyFlow(auth: auth)
        try flow.register()
        let (txn, upstreamURL) = try flow.consent([("scope", nil)])
        let loginTarget = String(upstreamURL.dropFirst("http://127.0.0.1:8000".count))
        let local: [(name: String, value: String)] = [("Host", "127.0.0.1:8000")]
        let page = idp.handle(AuthRequest(method: "GET", target: loginTarget, headers: local))
        #expect(page?.status == 200 && page?.bodyText.contains("name=\"username\"") == true)
        let hidden = Dictionary(
            ["redirect_uri", "state", "scope", "code_challenge"].compactMap { name in
                ProxyFlow.field(name, in: page?.bodyText ?? "").map { (name, $0) }
            },
            uniquingKeysWith: { a, _ in a }
        )
        #expect(hidden["state"] == txn)
        let login = idp.handle(
            AuthRequest(
                method: "POST",
                target: "/dev-idp/authorize",
                headers: local,
                body: Array(Form.encode(hidden.map { ($0.key, $0.value) } + [("username", "ada <lovelace>")]).utf8)
            )
        )
        let back = try #require(login?.headers["Location"])
        #expect(back.hasPrefix("http://127.0.0.1:8000/auth/callback?code="))
        let redirect = ProxyFlow.clientParameters(flow.browse("GET", back), flow.redirectURI)
        let (status, tokens) = flow.exchange(try #require(redirect["code"]))
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
                headers: local + [(name: "Authorization", value: "Basic eDp5")],
                body: Array("grant_type=authorization_code&code=x".utf8)
            )
        )
        #expect(wrong?.status == 401)
        #expect(
            idp.handle(
                AuthRequest(
                    method: "GET",
                    target:
                        "/dev-idp/authorize?response_type=code&client_id=\(idp.clientID)&redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
                    headers: local
                )
            )?.status == 400
        )
        // A request that names a non-loopback host (a tunnel) never reaches the password-less sign-in.
        for host in ["mcp.example.com", "127.0.0.1.evil.example", "evil.example:8000", "[::2]:8000", "0177.0.0.1"] {
            let tunnelled = idp.handle(AuthRequest(method: "GET", target: loginTarget, headers: [("Host", host)]))
            #expect(tunnelled?.status == 403, "\(host)")
        }
        #expect(idp.handle(AuthRequest(method: "GET", target: loginTarget))?.status == 403, "no Host at all")
        #expect(
            idp.handle(AuthRequest(method: "GET", target: loginTarget, headers: [("Host", "localhost:8000")]))?.status
                == 200
        )
    }
}
