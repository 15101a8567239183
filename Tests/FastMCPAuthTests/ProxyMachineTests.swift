import Testing

@testable import FastMCPAuth

/// The proxy's multi-step rules as pure state machines: events in, actions out, no store, no
/// network. The drivers that perform the actions are raced in ProxyRaceTests.
@Suite struct ProxyMachineTests {
    static let now = 1_800_000_000.0

    // MARK: - Consent

    static func transaction(approvedBy binding: String? = nil) -> Transaction {
        var transaction = Transaction(
            id: "txn-1",
            clientID: "client-1",
            clientRedirectURI: "http://127.0.0.1:1/cb",
            clientState: "st",
            codeChallenge: String(repeating: "A", count: 43),
            scopes: ["read"],
            createdAt: now,
            resource: nil,
            proxyCodeVerifier: "verifier"
        )
        transaction.approvedBinding = binding
        transaction.approvedAt = binding.map { _ in now }
        return transaction
    }

    static func submission(
        render: ConsentRender? = ConsentRender(
            transactionID: "txn-1",
            expiresAt: now + 60,
            browserBinding: "browser-A"
        ),
        transaction: Transaction? = transaction(),
        browser: String? = "browser-A",
        decision: ConsentMachine.Decision? = .approve,
        now: Double = now
    ) -> ConsentMachine.Submission {
        ConsentMachine.Submission(
            render: render,
            transactionID: "txn-1",
            transaction: transaction,
            browser: browser,
            decision: decision,
            now: now
        )
    }

    @Test func consentApprovalBindsTheTransactionToTheRenderingBrowser() {
        guard case .approve(let approved) = ConsentMachine.submit(Self.submission()) else {
            Issue.record("not approved")
            return
        }
        #expect(approved.approvedBinding == "browser-A" && approved.approvedAt == Self.now)
        // The callback: only that browser finishes.
        #expect(ConsentMachine.callback(transaction: approved, browser: "browser-A") == .finish)
        #expect(
            ConsentMachine.callback(transaction: approved, browser: "browser-B")
                == .refuse(status: 403, message: ConsentMachine.Messages.otherBrowser)
        )
        #expect(ConsentMachine.callback(transaction: approved, browser: nil) != .finish)
        #expect(
            ConsentMachine.callback(transaction: Self.transaction(), browser: "browser-A")
                == .refuse(status: 403, message: ConsentMachine.Messages.notApproved)
        )
        #expect(
            ConsentMachine.callback(transaction: nil, browser: "browser-A")
                == .refuse(status: 400, message: ConsentMachine.Messages.unknownSignIn)
        )
    }

    @Test func consentRefusals() {
        let other = ConsentMachine.Messages.otherBrowser
        // A form rendered for browser A, submitted by B or by a browser without the cookie.
        #expect(ConsentMachine.submit(Self.submission(browser: "browser-B")) == .refuse(status: 403, message: other))
        #expect(ConsentMachine.submit(Self.submission(browser: nil)) == .refuse(status: 403, message: other))
        // A render recorded without a binding (FastMCP's own CSRF records) never approves.
        let unbound = ConsentRender(json: ["txn_id": "txn-1", "expires_at": .double(Self.now + 60)])
        #expect(ConsentMachine.submit(Self.submission(render: unbound)) == .refuse(status: 403, message: other))
        // Unknown, used, expired or foreign CSRF tokens.
        let expired = ConsentMachine.Messages.formExpired
        #expect(ConsentMachine.submit(Self.submission(render: nil)) == .refuse(status: 403, message: expired))
        #expect(
            ConsentMachine.submit(
                Self.submission(
                    render: ConsentRender(transactionID: "txn-2", expiresAt: Self.now + 60, browserBinding: "browser-A")
                )
            ) == .refuse(status: 403, message: expired)
        )
        #expect(ConsentMachine.submit(Self.submission(now: Self.now + 61)) == .refuse(status: 403, message: expired))
        #expect(ConsentMachine.submit(Self.submission(transaction: nil)).isRefusal)
        #expect(ConsentMachine.submit(Self.submission(decision: nil)).isRefusal)
        // Approved by another browser: this one can neither approve nor deny it.
        let taken = Self.transaction(approvedBy: "browser-B")
        #expect(ConsentMachine.submit(Self.submission(transaction: taken)) == .refuse(status: 403, message: other))
        #expect(
            ConsentMachine.submit(Self.submission(transaction: taken, decision: .deny))
                == .refuse(status: 403, message: other)
        )
        // Approved by this browser from another page: go on; deny ends it.
        let mine = Self.transaction(approvedBy: "browser-A")
        #expect(ConsentMachine.submit(Self.submission(transaction: mine)) == .proceed(mine))
        #expect(ConsentMachine.submit(Self.submission(transaction: mine, decision: .deny)) == .deny(mine))
        #expect(ConsentMachine.submit(Self.submission(decision: .deny)) == .deny(Self.transaction()))
    }

    @Test func consentSubmissionOrigins() {
        let ours = "https://mcp.example.com"
        func allowed(_ origin: String?, _ site: String?) -> Bool {
            ConsentMachine.submissionOriginAllowed(origin: origin, fetchSite: site, proxyOrigin: ours)
        }
        #expect(allowed(ours, nil) && allowed(ours, "same-origin") && allowed(nil, nil) && allowed(nil, "same-origin"))
        #expect(allowed("HTTPS://MCP.EXAMPLE.COM", nil))
        #expect(
            !allowed("null", nil) && !allowed("https://evil.example", nil)
                && !allowed("https://mcp.example.com:444", nil)
        )
        #expect(!allowed(nil, "cross-site") && !allowed(nil, "same-site") && !allowed(nil, "none"))
        #expect(!allowed(ours, "cross-site") && !allowed(ours, "same-site"))
        // A base URL written with its default port: browsers send the origin without it.
        #expect(
            ConsentMachine.submissionOriginAllowed(origin: ours, fetchSite: nil, proxyOrigin: ours + ":443")
                && ConsentMachine.submissionOriginAllowed(
                    origin: "http://127.0.0.1",
                    fetchSite: nil,
                    proxyOrigin: "http://127.0.0.1:80"
                )
        )
        #expect(!ConsentMachine.submissionOriginAllowed(origin: ours + ":8443", fetchSite: nil, proxyOrigin: ours))
    }

    // MARK: - Code redemption

    static let code = AuthorizationCode(
        code: "code-1",
        clientID: "client-1",
        redirectURI: "http://127.0.0.1:1/cb",
        codeChallenge: "challenge-of-v",
        scopes: ["read"],
        upstreamTokens: ["access_token": "up"],
        expiresAt: now + 300,
        createdAt: now,
        resource: "https://mcp.example.com/mcp"
    )

    static func presentation(
        client: String = "client-1",
        redirect: String? = "http://127.0.0.1:1/cb",
        challenge: String? = "challenge-of-v",
        hash: String? = "hash-of-v",
        resource: String? = nil,
        now: Double = now
    ) -> CodeRedemption.Presentation {
        CodeRedemption.Presentation(
            clientID: client,
            redirectURI: redirect,
            verifierChallenge: challenge,
            verifierHash: hash,
            resource: resource,
            now: now
        )
    }

    @Test func codesAreRedeemedOnlyByTheirClientRedirectAndVerifier() {
        #expect(CodeRedemption.decide(.issued(Self.code), Self.presentation()) == .redeem(Self.code))
        #expect(
            CodeRedemption.decide(.issued(Self.code), Self.presentation(resource: "https://mcp.example.com/mcp/"))
                == .redeem(Self.code)
        )
        for (presentation, error) in [
            (Self.presentation(client: "client-2"), "invalid_grant"),
            (Self.presentation(redirect: "http://127.0.0.1:1/other"), "invalid_grant"),
            (Self.presentation(redirect: nil), "invalid_grant"),
            (Self.presentation(challenge: "challenge-of-w"), "invalid_grant"),
            (Self.presentation(challenge: nil), "invalid_grant"),
            (Self.presentation(now: Self.now + 300), "invalid_grant"),
            (Self.presentation(resource: "https://other.example/mcp"), "invalid_target"),
        ] {
            guard case .refuse(let code, _) = CodeRedemption.decide(.issued(Self.code), presentation) else {
                Issue.record("not refused: \(presentation)")
                continue
            }
            // A refusal is no transition: the code stays issued for its rightful client.
            #expect(code == error)
        }
        #expect(CodeRedemption.decide(.unknown, Self.presentation()).isRefusal)
    }

    @Test func aSecondUseIsADuplicateOrAReplay() {
        let redemption = CodeRedemption.Redemption(
            clientID: "client-1",
            verifierHash: "hash-of-v",
            redeemedAt: Self.now,
            upstreamTokenID: "grant-1"
        )
        #expect(CodeRedemption.decide(.redeemed(redemption), Self.presentation(now: Self.now + 10)) == .refuseDuplicate)
        for presentation in [
            Self.presentation(now: Self.now + 10.5), Self.presentation(client: "client-2"),
            Self.presentation(hash: "hash-of-w"), Self.presentation(hash: nil),
        ] {
            #expect(
                CodeRedemption.decide(.redeemed(redemption), presentation)
                    == .revokeAndRefuse(upstreamTokenID: "grant-1")
            )
        }
        var revoked = redemption
        revoked.revoked = true
        #expect(
            CodeRedemption.decide(.redeemed(revoked), Self.presentation())
                == .revokeAndRefuse(upstreamTokenID: "grant-1")
        )
        #expect(CodeRedemption.Redemption(json: redemption.json) == redemption)
    }

    // MARK: - Refresh rotation

    static let record = RefreshRecord(
        clientID: "client-1",
        scopes: ["read"],
        expiresAt: now + 86400,
        createdAt: now,
        upstreamTokenID: "grant-1",
        accessJTI: "a-1"
    )

    static func rotated(at: Double = now, replays: Int = 0, client: String = "client-1") -> RefreshRotation.Record {
        RefreshRotation.Record(
            phase: .rotated,
            clientID: client,
            upstreamTokenID: "grant-1",
            startedAt: at,
            rotatedAt: at,
            replays: replays
        )
    }

    @Test func theClaimantRotatesAndTheOthersWaitForIt() {
        func decide(
            _ state: RefreshRotation.State,
            client: String = "client-1",
            now: Double = ProxyMachineTests.now
        ) -> RefreshRotation.Action {
            RefreshRotation.decide(state, clientID: client, now: now, gracePeriod: 30)
        }
        #expect(decide(.claimed(Self.record)) == .rotate(Self.record))
        // Not live (revoked, rotated long ago, or rotated by a FastMCP peer): the grant ends.
        #expect(decide(.claimed(nil)) == .revokeGrant(upstreamTokenID: nil))
        var expired = Self.record
        expired.expiresAt = Self.now
        #expect(decide(.claimed(expired)).isRefusal)
        #expect(decide(.claimed(Self.record), client: "client-2").isRefusal)
        // A concurrent request sees the claim, never "nothing": it waits, it does not revoke.
        let rotating = RefreshRotation.Record.claim(clientID: "client-1", now: Self.now)
        #expect(decide(.rotating(rotating)) == .wait)
        #expect(decide(.rotating(rotating), client: "client-2").isRefusal)
    }

    @Test func graceReplaysGetTheSuccessorOnceThenNothingThenRevocation() {
        func decide(
            _ record: RefreshRotation.Record,
            client: String = "client-1",
            after: Double
        ) -> RefreshRotation.Action {
            RefreshRotation.decide(.rotated(record), clientID: client, now: Self.now + after, gracePeriod: 30)
        }
        #expect(decide(Self.rotated(), after: 0) == .serveSuccessor(Self.rotated()))
        #expect(decide(Self.rotated(), after: 29.9) == .serveSuccessor(Self.rotated()))
        #expect(decide(Self.rotated(replays: 1), after: 1).isRefusal, "later replays: refused, grant alone")
        #expect(decide(Self.rotated(), client: "client-2", after: 1).isRefusal)
        #expect(decide(Self.rotated(), after: 30) == .revokeGrant(upstreamTokenID: "grant-1"))
        #expect(decide(Self.rotated(replays: 1), after: 3600) == .revokeGrant(upstreamTokenID: "grant-1"))
        // No grace window: any replay revokes.
        #expect(
            RefreshRotation.decide(.rotated(Self.rotated()), clientID: "client-1", now: Self.now, gracePeriod: 0)
                == .revokeGrant(upstreamTokenID: "grant-1")
        )
        // A token found not live leaves a final record: later uses are refused at once, never wait.
        var revoked = Self.rotated()
        revoked.phase = .revoked
        #expect(decide(revoked, after: 1).isRefusal && decide(revoked, after: 3600).isRefusal)
        #expect(RefreshRotation.Record(json: Self.rotated().json) == Self.rotated())
    }

    // MARK: - Rate limit

    @Test func fixedWindowLimit() throws {
        let limit = FixedWindowRateLimit(name: "register", limit: 20, window: 3600)
        #expect(limit.decide(count: 1, now: 7200) == .allow && limit.decide(count: 20, now: 7200) == .allow)
        #expect(limit.decide(count: 21, now: 7200) == .refuse(retryAfter: 3600))
        #expect(limit.decide(count: 21, now: 7200 + 3599.5) == .refuse(retryAfter: 1))
        #expect(try limit.counterKey(subject: "a", now: 7200) == limit.counterKey(subject: "a", now: 10799))
        #expect(try limit.counterKey(subject: "a", now: 7200) != limit.counterKey(subject: "a", now: 10800))
        #expect(try limit.counterKey(subject: "a", now: 7200) != limit.counterKey(subject: "b", now: 7200))
        #expect(limit.windowIndex(.infinity) == 0 && limit.windowIndex(-.infinity) == 0 && limit.windowIndex(.nan) == 0)
        // Addresses: an IPv4 address alone, an IPv6 address by its /64.
        let subject = FixedWindowRateLimit.subject(forAddress:)
        #expect(subject("2001:db8:1:2::1") == subject("2001:db8:1:2:ffff::9"))
        #expect(subject("2001:db8:1:2::1") != subject("2001:db8:1:3::1"))
        #expect(subject("[2001:db8:1:2::1]") == subject("2001:db8:1:2::1"))
        #expect(subject("::ffff:192.0.2.1") == subject("192.0.2.1") && subject("192.0.2.1") != subject("192.0.2.2"))
        #expect(subject(nil) == "unknown" && subject("") == "unknown")
    }

    @Test func forwardedAddressesAreBelievedFromTrustedProxiesOnly() throws {
        let trusted = try ["10.0.0.0/8", "2001:db8::/32"].map { try #require(AddressRange($0)) }
        let effective = ClientAddress.effective(peer:forwardedFor:trusted:)
        // An untrusted peer is the client, whatever it writes in the header.
        #expect(effective("198.51.100.7", "1.2.3.4", trusted) == "198.51.100.7")
        // A trusted proxy: the nearest untrusted address, read from the right.
        #expect(effective("10.1.2.3", "1.2.3.4", trusted) == "1.2.3.4")
        #expect(effective("10.1.2.3", "6.6.6.6, 1.2.3.4, 10.9.9.9", trusted) == "1.2.3.4")
        #expect(effective("2001:db8::5", "[2001:db8:1::1], 203.0.113.5", trusted) == "203.0.113.5")
        #expect(effective("10.1.2.3", "not-an-address", trusted) == "10.1.2.3")
        #expect(effective("10.1.2.3", nil, trusted) == "10.1.2.3")
        #expect(effective("10.1.2.3", "1.2.3.4", []) == "10.1.2.3", "no trusted proxies: the header is ignored")
        #expect(AddressRange("10.0.0.0/8")?.contains("11.0.0.1") == false)
        #expect(AddressRange("192.168.1.128/25")?.contains("192.168.1.200") == true)
        #expect(AddressRange("192.168.1.128/25")?.contains("192.168.1.100") == false)
        for bad in ["10.0.0.0/33", "10.0.0.0/x", "nope", "2001:db8::/129", "10.0.0.0/8/8"] {
            #expect(AddressRange(bad) == nil, "\(bad)")
        }
    }

    // MARK: - Scopes

    @Test func scopePolicy() {
        let policy = ScopePolicy(validScopes: ["read", "write"], requiredScopes: ["read"])
        #expect(policy.offered == ["read", "write"])
        #expect(ScopePolicy(validScopes: nil, requiredScopes: ["read"]).offered == ["read"])
        #expect(ScopePolicy(validScopes: nil, requiredScopes: []).offered.isEmpty)
        #expect(policy.registered(nil) == ["read", "write"] && policy.registered("write") == ["write"])
        #expect(policy.registered("write admin") == nil)
        #expect(
            policy.allowed(forClientScope: "read admin") == ["read"],
            "a stored scope is confined to the offered set"
        )
        #expect(ScopePolicy.narrowed(nil, within: ["read"]) == ["read"])
        #expect(ScopePolicy.narrowed("read read", within: ["read"]) == ["read"])
        #expect(ScopePolicy.narrowed("read write", within: ["read"]) == nil)
        #expect(ScopePolicy.narrowed("", within: ["read"]) == [])
        let mapped = ScopePolicy(validScopes: ["read", "write"], requiredScopes: [], upstreamNames: ["repo": "write"])
        #expect(mapped.confined(["read", "write"], byUpstream: nil) == ["read", "write"])
        #expect(mapped.confined(["read", "write"], byUpstream: "repo,user") == ["write"])
        #expect(mapped.confined(["read", "write"], byUpstream: "read  repo") == ["read", "write"])
        #expect(mapped.confined(["read"], byUpstream: "") == [])
    }

    // MARK: - Redirect URIs

    @Test func loopbackIsThreeLiteralsOnly() {
        for host in ["localhost", "LOCALHOST", "127.0.0.1", "127.255.0.9", "::1", "[::1]"] {
            #expect(isLoopbackHost(host), "\(host)")
        }
        for host in [
            "127.attacker.example", "127.0.0.1.nip.io", "localhost.evil", "0177.0.0.1", "127.1", "127.0.0.01",
            "2130706433", "[::2]", "0:0:0:0:0:0:0:1", "128.0.0.1", "127.0.0.256", "１２７.0.0.1",
        ] {
            #expect(!isLoopbackHost(host), "\(host)")
        }
        #expect(isLoopbackURL("http://127.0.0.1:8000/x") && !isLoopbackURL("http://127.evil.example/x"))
    }

    @Test func redirectPatternsMatchPartByPart() throws {
        func matches(_ pattern: String, _ uri: String) throws -> Bool {
            guard let parts = RedirectURIs.parts(uri) else { return false }
            return try RedirectPattern(pattern).matches(parts)
        }
        #expect(try matches("https://*.corp.example/cb", "https://a.corp.example/cb"))
        #expect(try matches("https://*.corp.example/cb", "https://x.y.corp.example/cb"))
        #expect(try !matches("https://*.corp.example/cb", "https://corp.example/cb"))
        #expect(try !matches("https://*.corp.example/cb", "https://evil.example/?.corp.example/cb"))
        #expect(try !matches("https://*.corp.example/cb", "https://evil.example/a.corp.example/cb"))
        #expect(try !matches("https://*.corp.example/cb", "https://evilcorp.example/cb"))
        #expect(try !matches("https://*.corp.example/cb", "http://a.corp.example/cb"))
        #expect(try matches("https://app.example/auth/*", "https://app.example/auth/x/y"))
        #expect(try !matches("https://app.example/auth/*", "https://app.example/auth?x=/auth/y"))
        #expect(try !matches("https://app.example/auth/*", "https://app.example/other/auth/x"))
        #expect(try matches("http://localhost:*", "http://localhost:5173/callback"))
        #expect(try !matches("http://localhost:*", "http://127.0.0.1:5173/callback"))
        #expect(
            try matches("http://localhost/cb", "http://localhost:3000/cb"),
            "a loopback pattern without a port: any port"
        )
        #expect(try matches("https://app.example/cb", "https://app.example:443/cb"))
        #expect(try !matches("https://app.example/cb", "https://app.example:444/cb"))
        #expect(try matches("https://app.example:8443/cb", "https://app.example:8443/cb"))
        #expect(try matches("https://app.example/cb?mode=a", "https://app.example/cb?mode=a"))
        #expect(try !matches("https://app.example/cb", "https://app.example/cb?mode=a"))
        #expect(try matches("com.example.app:/cb", "com.example.app:/cb"))
        for invalid in [
            "https://a*.corp.example/cb", "https://*corp.example/cb", "https://*/cb", "https://*.127.0.0.1/cb",
            "http*://x.example/", "https://x.example/cb?a=*", "https://*@x.example/", "https://u@x.example/",
            "https://x.example/a/../b", "https://x.example/#frag", "myapp:/cb*",
        ] {
            #expect(outcome { try RedirectPattern(invalid) } == .invalidConfig, "\(invalid)")
        }
        // Dot-segments, raw or percent-encoded, and userinfo never parse as redirect URIs.
        for uri in [
            "https://a.example/x/../y", "https://a.example/x/%2e%2e/y", "https://a.example/x/.%2E/y",
            "https://a.example/%2E/y", "https://u:p@a.example/cb", "https://a.example\\b/cb", "https://a.example:0/cb",
            // A malformed escape hides what a segment is: refused, dot-segment or not.
            "https://a.example/oauth/%2e%2e/evil%ff", "https://a.example/oauth/%2e%2e/evil/%", "https://a.example/x%zz",
            "https://a.example/oauth/.%2E/.%2e/x", "https://ex%41mple.com/cb", "https://exämple.com/cb",
            "https://a.example:+80/cb", "https://a.example:٨٠/cb",
        ] {
            #expect(RedirectURIs.parts(uri) == nil, "\(uri)")
        }
        #expect(RedirectURIs.parts("https://a.example/x/%2e%2ex/y") != nil, "a segment that merely contains dots")
        #expect(RedirectURIs.matches(requested: "http://127.0.0.1:9/cb", registered: "http://127.0.0.1:33418/cb"))
        #expect(!RedirectURIs.matches(requested: "http://127.0.0.1:9/cb2", registered: "http://127.0.0.1:33418/cb"))
        #expect(!RedirectURIs.matches(requested: "https://a.example:9/cb", registered: "https://a.example/cb"))
    }

    // MARK: - Records

    @Test func recordsKeepFieldsTheyDoNotModel() throws {
        var stored = Self.transaction().json
        stored["csrf_token"] = "fastmcp-field"
        stored["future_field"] = ["nested": true]
        let transaction = try #require(Transaction(json: stored))
        #expect(transaction.json == stored, "read and written back unchanged")
        var fastMCPRefresh: [String: JSONValue] = [
            "client_id": "c", "scopes": ["read"], "expires_at": 1_800_086_400, "created_at": 1_800_000_000.5,
        ]
        let refresh = try #require(RefreshRecord(json: fastMCPRefresh))
        #expect(refresh.upstreamTokenID == nil && refresh.json == fastMCPRefresh)
        fastMCPRefresh["scopes"] = "read"
        #expect(RefreshRecord(json: fastMCPRefresh) == nil, "a wrongly typed field: unreadable, never a crash")
        #expect(UpstreamTokenSet(json: ["access_token": "a"]) == nil)
        #expect(AuthorizationCode(json: Self.code.json) == Self.code)
        let client = ClientRecord(
            clientID: "c",
            redirectURIs: ["http://127.0.0.1/cb"],
            applicationType: "native",
            clientName: "n",
            scope: "read",
            issuedAt: 1e300
        )
        #expect(ClientRecord(json: client.json)?.clientID == "c", "an absurd timestamp is written without trapping")
    }
}

extension ConsentMachine.SubmissionAction {
    var isRefusal: Bool {
        if case .refuse = self { return true }
        return false
    }
}

extension CodeRedemption.Action {
    var isRefusal: Bool {
        if case .refuse = self { return true }
        return false
    }
}

extension RefreshRotation.Action {
    var isRefusal: Bool {
        if case .refuse = self { return true }
        return false
    }
}
