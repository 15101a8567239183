import Foundation
import Testing

@testable import FastMCPAuth

#if canImport(Glibc)
import Glibc
#endif

/// The client's sign-in and refresh rules without network: the authorization request, the checks on
/// the callback (state, RFC 9207 iss, errors), token responses, the cache decision and the refresh
/// machine's answers to every interleaving a second process can cause.
@Suite struct ClientFlowTests {
    static let server = try! AuthorizationServerMetadata(
        json: .object(ClientDiscoveryTests.serverDocument),
        expectedIssuer: "https://auth.example.com/tenant"
    )

    /// RFC 7636 appendix B: these 32 octets give this verifier and this S256 challenge.
    static let appendixB: [UInt8] = [
        116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37, 77, 105, 214, 191, 240,
        91, 88, 5, 88, 83, 132, 141, 121,
    ]

    func pending(scopes: [String] = ["read"]) throws -> PendingAuthorization {
        try PendingAuthorization.start(
            server: Self.server,
            clientID: "client-1",
            redirectURI: "http://127.0.0.1:53682/callback",
            resource: "https://mcp.example.com/mcp",
            scopes: scopes,
            randomBytes: { _ in Self.appendixB }
        )
    }

    @Test func theAuthorizationRequestCarriesPKCEStateAndResource() throws {
        let flow = try pending(scopes: ["read", "write"])
        #expect(flow.codeVerifier == "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        let query = try #require(flow.authorizationURL.split(separator: "?", maxSplits: 1).last.map(String.init))
        let parameters = Parameters(try #require(Form.decode(query)))
        #expect(flow.authorizationURL.hasPrefix("https://auth.example.com/authorize?"))
        #expect(parameters["code_challenge"] == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        #expect(parameters["code_challenge_method"] == "S256" && parameters["response_type"] == "code")
        #expect(parameters["resource"] == "https://mcp.example.com/mcp" && parameters["scope"] == "read write")
        #expect(parameters["state"] == flow.state && parameters["client_id"] == "client-1")
        #expect(parameters["redirect_uri"] == "http://127.0.0.1:53682/callback")
        // Real randomness: two sign-ins share neither state nor verifier.
        let one = try PendingAuthorization.start(
            server: Self.server,
            clientID: "c",
            redirectURI: "http://127.0.0.1:1/cb",
            resource: "https://mcp.example.com/mcp",
            scopes: []
        )
        let two = try PendingAuthorization.start(
            server: Self.server,
            clientID: "c",
            redirectURI: "http://127.0.0.1:1/cb",
            resource: "https://mcp.example.com/mcp",
            scopes: []
        )
        #expect(one.state != two.state && one.codeVerifier != two.codeVerifier && one.codeVerifier.count == 43)
        #expect(!one.authorizationURL.contains("scope="))
    }

    @Test func callbackChecksStateThenIssuerThenErrors() throws {
        let flow = try pending()
        let state = Form.encode(flow.state)
        let iss = Form.encode("https://auth.example.com/tenant")
        #expect(flow.callback(query: "code=abc&state=\(state)&iss=\(iss)") == .code("abc"))
        // Not this sign-in: a second browser, a forged request, a replay of another state. Ignored.
        for query in ["code=abc", "code=abc&state=other&iss=\(iss)", "code=abc&state=\(state)&state=\(state)", "%zz"] {
            guard case .ignored = flow.callback(query: query) else {
                Issue.record("accepted \(query)")
                continue
            }
        }
        // Mix-up (RFC 9207): another issuer, or none from a server that promises one, ends the sign-in.
        let otherIssuer = Form.encode("https://auth.example.com/tenant/")
        #expect(
            flow.callback(query: "code=abc&state=\(state)&iss=\(otherIssuer)")
                == .failed(AuthError(.authorizationDenied, "the authorization response names another issuer"))
        )
        guard case .failed(let missing) = flow.callback(query: "code=abc&state=\(state)") else {
            Issue.record("accepted a response without iss")
            return
        }
        #expect(missing.code == .authorizationDenied)
        var lenient = flow
        lenient.issRequired = false
        #expect(lenient.callback(query: "code=abc&state=\(state)") == .code("abc"))
        guard case .failed(let denied) = flow.callback(query: "error=access_denied&state=\(state)&iss=\(iss)") else {
            Issue.record("access_denied not a failure")
            return
        }
        #expect(denied.code == .authorizationDenied && denied.message == "the sign-in was denied")
        guard case .failed(let noCode) = flow.callback(query: "state=\(state)&iss=\(iss)") else {
            Issue.record("no code accepted")
            return
        }
        #expect(noCode.code == .authorizationDenied)
        let exchange = Parameters(flow.tokenRequest(code: "abc"))
        #expect(exchange["code_verifier"] == flow.codeVerifier && exchange["resource"] == flow.resource)
        #expect(exchange["grant_type"] == "authorization_code" && exchange["redirect_uri"] == flow.redirectURI)
    }

    @Test func tokenResponsesAreTypedAndBounded() throws {
        let ok = try TokenResponse(
            json: [
                "access_token": "at", "token_type": "bearer", "expires_in": 3600, "refresh_token": "rt",
                "scope": "read write",
            ]
        )
        #expect(ok == TokenResponse(accessToken: "at", refreshToken: "rt", expiresIn: 3600, scopes: ["read", "write"]))
        let bad: [JSONValue] = [
            ["access_token": "at", "token_type": "mac"],
            ["access_token": "", "token_type": "Bearer"],
            ["access_token": "a\r\nb", "token_type": "Bearer"],
            ["access_token": "at", "token_type": "Bearer", "expires_in": -1],
            ["access_token": "at", "token_type": "Bearer", "expires_in": 1e300],
            ["token_type": "Bearer"],
            [1, 2],
        ]
        for json in bad {
            #expect(outcome { try TokenResponse(json: json) } == .upstreamUnavailable, "\(json.serialized())")
        }
        #expect(TokenErrorResponse(status: 400, body: Array(#"{"error":"invalid_grant"}"#.utf8)).isInvalidGrant)
        #expect(TokenErrorResponse(status: 401, body: Array("nope".utf8)).isInvalidClient)
        #expect(!TokenErrorResponse(status: 503, body: []).isInvalidGrant)
    }

    static func record(
        _ access: String,
        refresh: String? = "r1",
        expiresAt: Double? = 2_000,
        scopes: [String] = ["read"]
    )
        -> ClientTokenRecord
    {
        ClientTokenRecord(
            issuer: "https://auth.example.com/tenant",
            resource: "https://mcp.example.com/mcp",
            clientID: "client-1",
            accessToken: access,
            refreshToken: refresh,
            expiresAt: expiresAt,
            scopes: scopes
        )
    }

    @Test func recordsRoundTripAndRefuseDamage() throws {
        let record = Self.record("a1")
        #expect(ClientTokenRecord(stored: record.stored) == record)
        let bare = Self.record("a1", refresh: nil, expiresAt: nil)
        #expect(ClientTokenRecord(stored: bare.stored) == bare)
        var damaged = record.stored
        damaged["expires_at"] = "soon"
        #expect(ClientTokenRecord(stored: damaged) == nil)
        damaged = record.stored
        damaged["scopes"] = "read"
        #expect(ClientTokenRecord(stored: damaged) == nil)
        // A response without a new refresh token keeps the old one; without scopes, the requested ones.
        let next = ClientTokenRecord(
            issuer: record.issuer,
            resource: record.resource,
            clientID: record.clientID,
            response: TokenResponse(accessToken: "a2", expiresIn: 60),
            previousRefreshToken: "r1",
            requestedScopes: ["read"],
            now: 1_000
        )
        #expect(next == Self.record("a2", refresh: "r1", expiresAt: 1_060))
    }

    @Test func theCacheDecision() {
        let record = Self.record("a1", expiresAt: 2_000)
        func decide(
            _ record: ClientTokenRecord?,
            now: Double = 1_000,
            refused: String? = nil,
            scopes: [String] = ["read"]
        )
            -> TokenDecision
        {
            TokenDecision.decide(
                record: record,
                requiredScopes: scopes,
                refusedAccessToken: refused,
                now: now,
                margin: 60
            )
        }
        #expect(decide(nil) == .signIn)
        #expect(decide(record) == .use(record))
        #expect(decide(record, now: 1_950) == .refresh(record))
        #expect(decide(record, refused: "a1") == .refresh(record))
        // A refusal of an older token says nothing about this one.
        #expect(decide(record, refused: "a0") == .use(record))
        #expect(decide(Self.record("a1", refresh: nil), now: 1_990) == .signIn)
        #expect(decide(record, scopes: ["read", "admin"]) == .signIn)
        #expect(decide(Self.record("a1", expiresAt: nil), now: 1e12) == .use(Self.record("a1", expiresAt: nil)))
    }

    @Test func refreshWithTheLeaseWritesByCompareAndSwap() {
        let seen = Self.record("a1")
        let new = Self.record("a2", refresh: "r2")
        var machine = RefreshMachine(seen: seen, usableWhileRefreshing: false)
        #expect(machine.start() == .acquireLease)
        #expect(machine.handle(.leaseAcquired(holder: "h", current: seen)) == [.refresh(refreshToken: "r1")])
        #expect(machine.handle(.refreshed(new)) == [.write(expected: seen, new: new)])
        #expect(machine.handle(.written(won: true, current: new)) == [.release(holder: "h"), .finish(.use(new))])
    }

    /// The second process: it finds the lease taken, waits, and takes the first one's result
    /// instead of spending the rotated-away refresh token.
    @Test func aWaiterReReadsInsteadOfRefreshing() {
        let seen = Self.record("a1")
        let theirs = Self.record("a2", refresh: "r2")
        var machine = RefreshMachine(seen: seen, usableWhileRefreshing: false, patience: 5, pollInterval: 0.1)
        #expect(machine.handle(.leaseBusy(current: seen, now: 100)) == [.wait(seconds: 0.1), .acquireLease])
        #expect(machine.handle(.leaseBusy(current: seen, now: 101)) == [.wait(seconds: 0.1), .acquireLease])
        #expect(machine.handle(.leaseBusy(current: theirs, now: 102)) == [.finish(.use(theirs))])
        // The lease came free after their write: still no refresh of ours.
        var late = RefreshMachine(seen: seen, usableWhileRefreshing: false)
        _ = late.handle(.leaseBusy(current: seen, now: 100))
        #expect(
            late.handle(.leaseAcquired(holder: "h2", current: theirs)) == [
                .release(holder: "h2"), .finish(.use(theirs)),
            ]
        )
        // They found the chain dead and removed it: sign in, do not refresh.
        var gone = RefreshMachine(seen: seen, usableWhileRefreshing: false)
        #expect(gone.handle(.leaseBusy(current: nil, now: 100)) == [.finish(.signIn)])
        // A holder that never lets go: a clear error after the wait limit, not a hang.
        var stuck = RefreshMachine(seen: seen, usableWhileRefreshing: false, patience: 5)
        _ = stuck.handle(.leaseBusy(current: seen, now: 100))
        let actions = stuck.handle(.leaseBusy(current: seen, now: 105))
        guard case .finish(.fail(let error)) = actions.last else {
            Issue.record("\(actions)")
            return
        }
        #expect(error.code == .storeUnavailable)
    }

    @Test func deadChainsAndTransientFailures() {
        let seen = Self.record("a1")
        var dead = RefreshMachine(seen: seen, usableWhileRefreshing: true)
        _ = dead.handle(.leaseAcquired(holder: "h", current: seen))
        #expect(dead.handle(.refreshRejected) == [.delete(expected: seen)])
        #expect(dead.handle(.deleted) == [.release(holder: "h"), .finish(.signIn)])
        let down = AuthError(.upstreamUnavailable)
        var ahead = RefreshMachine(seen: seen, usableWhileRefreshing: true)
        _ = ahead.handle(.leaseAcquired(holder: "h", current: seen))
        #expect(ahead.handle(.refreshFailed(down)) == [.release(holder: "h"), .finish(.use(seen))])
        var refused = RefreshMachine(seen: seen, usableWhileRefreshing: false)
        _ = refused.handle(.leaseAcquired(holder: "h", current: seen))
        #expect(refused.handle(.refreshFailed(down)) == [.release(holder: "h"), .finish(.fail(down))])
        // The lease expired under a slow refresh and someone else wrote: theirs is the chain's end.
        let theirs = Self.record("a3", refresh: "r3")
        var lost = RefreshMachine(seen: seen, usableWhileRefreshing: false)
        _ = lost.handle(.leaseAcquired(holder: "h", current: seen))
        _ = lost.handle(.refreshed(Self.record("a2", refresh: "r2")))
        #expect(lost.handle(.written(won: false, current: theirs)) == [.release(holder: "h"), .finish(.use(theirs))])
        // Events out of order are an internal error, never a trap.
        var confused = RefreshMachine(seen: seen, usableWhileRefreshing: false)
        guard case .finish(.fail(let error)) = confused.handle(.deleted).last else {
            Issue.record("accepted")
            return
        }
        #expect(error.code == .internalError)
    }

    @Test func lostWritesSignOutsAndOutOfOrderEvents() {
        let seen = Self.record("a1")
        // Signed out while we refreshed: the sign-out stands.
        var signedOut = RefreshMachine(seen: seen, usableWhileRefreshing: false)
        _ = signedOut.handle(.leaseAcquired(holder: "h", current: seen))
        _ = signedOut.handle(.refreshed(Self.record("a2", refresh: "r2")))
        #expect(signedOut.handle(.written(won: false, current: nil)) == [.release(holder: "h"), .finish(.signIn)])
        // Same tokens but another field changed: ours is the live refresh token, written over it.
        var touched = seen
        touched.scopes = ["read", "extra"]
        let ours = Self.record("a2", refresh: "r2")
        var rewrite = RefreshMachine(seen: seen, usableWhileRefreshing: false)
        _ = rewrite.handle(.leaseAcquired(holder: "h", current: seen))
        _ = rewrite.handle(.refreshed(ours))
        #expect(rewrite.handle(.written(won: false, current: touched)) == [.write(expected: touched, new: ours)])
        #expect(rewrite.handle(.written(won: false, current: touched)) == [.write(expected: touched, new: ours)])
        guard case .finish(.fail(let storeError)) = rewrite.handle(.written(won: false, current: touched)).last else {
            Issue.record("retried forever")
            return
        }
        #expect(storeError.code == .storeUnavailable)
        // Out of order while holding the lease: it is released, not left to expire.
        var holding = RefreshMachine(seen: seen, usableWhileRefreshing: false)
        _ = holding.handle(.leaseAcquired(holder: "h", current: seen))
        #expect(holding.handle(.deleted).first == .release(holder: "h"))
    }

    /// Descriptions (string interpolation, reflection, test failure messages) never show a token,
    /// a code, the state or the PKCE verifier.
    @Test func descriptionsHideSecrets() throws {
        let record = Self.record("access-SECRET", refresh: "refresh-SECRET")
        let flow = try pending()
        let response = TokenResponse(accessToken: "access-SECRET", refreshToken: "refresh-SECRET", expiresIn: 60)
        let action = RefreshMachine.Action.refresh(refreshToken: "refresh-SECRET")
        let code = PendingAuthorization.CallbackResult.code("code-SECRET")
        let texts = [
            "\(record)", String(reflecting: record), "\(response)", String(reflecting: response), "\(action)",
            String(reflecting: [action]), "\(code)", String(reflecting: code),
        ]
        for text in texts {
            #expect(!text.contains("SECRET"), "\(text)")
        }
        for text in ["\(flow)", String(reflecting: flow)] {
            #expect(!text.contains(flow.state) && !text.contains(flow.codeVerifier))
        }
    }
}

/// The loopback redirect listener with real sockets and our own HTTP client as the browser.
@Suite struct LoopbackListenerTests {
    @Test func servesUntilTheRealCallbackAndIgnoresTheRest() throws {
        let listener = try LoopbackListener()
        #expect(listener.port > 0 && listener.redirectURI == "http://127.0.0.1:\(listener.port)/callback")
        let statuses = Locked<[Int]>([])
        let base = "http://127.0.0.1:\(listener.port)"
        let browser = Thread {
            let client = CurlHTTPClient()
            for target in ["/favicon.ico", "/callback?state=forged", "/callback?code=c&state=s"] {
                let status = (try? client.send(HTTPRequest(url: base + target, timeout: 5)).status) ?? -1
                statuses.withLock { $0.append(status) }
            }
        }
        browser.start()
        var queries = [String]()
        try listener.serve(
            until: LoopbackListener.monotonicNow() + 20,
            interrupt: { nil },
            handle: { query in
                queries.append(query)
                return query.contains("code=") ? .finished(page: "done") : .keepWaiting(page: "not this one")
            }
        )
        #expect(queries == ["state=forged", "code=c&state=s"])
        for _ in 0..<100 where statuses.withLock({ $0.count }) < 3 { usleep(20_000) }
        #expect(statuses.withLock { $0 } == [404, 400, 200])
    }

    @Test func timeoutCancellationAndABusyPort() throws {
        let listener = try LoopbackListener()
        let started = LoopbackListener.monotonicNow()
        #expect(
            outcome { try listener.serve(until: started + 0.3, interrupt: { nil }) { _ in .finished(page: "") } }
                == .authorizationTimeout
        )
        #expect(LoopbackListener.monotonicNow() - started < 5)
        #expect(
            outcome {
                try listener.serve(until: started + 60, interrupt: { AuthError(.cancelled) }) { _ in .finished(page: "")
                }
            } == .cancelled
        )
        #expect(outcome { try LoopbackListener(port: listener.port) } == .invalidConfig)
        #expect(outcome { try LoopbackListener(port: 70_000) } == .invalidConfig)
    }

    /// A local process that connects and says nothing, or sends garbage, delays the sign-in by the
    /// read limit at most; the real callback still gets through.
    @Test func silentAndGarbageConnectionsDoNotEndTheWait() throws {
        let listener = try LoopbackListener()
        let port = listener.port
        let done = Locked(false)
        let stranger = Thread {
            let silent = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = UInt16(port).bigEndian
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(silent, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            let client = CurlHTTPClient()
            _ = try? client.send(
                HTTPRequest(method: "POST", url: "http://127.0.0.1:\(port)/callback?code=x", timeout: 10)
            )
            _ = try? client.send(HTTPRequest(url: "http://127.0.0.1:\(port)/callback?code=real", timeout: 10))
            close(silent)
            done.withLock { $0 = true }
        }
        stranger.start()
        var seen = [String]()
        try listener.serve(
            until: LoopbackListener.monotonicNow() + 30,
            interrupt: { nil },
            handle: { query in
                seen.append(query)
                return .finished(page: "ok")
            }
        )
        #expect(seen == ["code=real"])
        for _ in 0..<250 where !done.withLock({ $0 }) { usleep(20_000) }
    }
}

/// `$BROWSER` parsing as Python's webbrowser reads it, and real processes for the exit rules.
@Suite struct BrowserTests {
    @Test func browserVariableParsing() {
        #expect(
            BrowserCommands.parse("firefox:chromium --new-window %s::'/opt/my browser' -x") == [
                ["firefox"], ["chromium", "--new-window", "%s"], ["/opt/my browser", "-x"],
            ]
        )
        #expect(BrowserCommands.parse(#"open "a \"b\"" c\ d"#) == [["open", #"a "b""#, "c d"]])
        #expect(BrowserCommands.parse(" : ").isEmpty)
        #expect(BrowserCommands.arguments(["b", "--url=%s"], url: "http://x/?a=1") == ["b", "--url=http://x/?a=1"])
        #expect(BrowserCommands.arguments(["b", "-n"], url: "http://x/") == ["b", "-n", "http://x/"])
    }

    func waitForExit(_ process: BrowserProcess) -> Int32? {
        for _ in 0..<250 {
            if let status = process.poll() { return status }
            usleep(20_000)
        }
        return nil
    }

    @Test func aCommandThatFailsIsNoticedAndOneThatWorksIsNot() throws {
        let failing = try #require(BrowserProcess.spawn(["sh", "-c", "exit 3"]))
        #expect(waitForExit(failing) == 3 && failing.failed)
        let working = try #require(
            BrowserProcess.spawn(["sh", "-c", "test \"$0\" = http://127.0.0.1/x", "http://127.0.0.1/x"])
        )
        #expect(waitForExit(working) == 0 && !working.failed)
        // glibc's posix_spawnp reports a program that cannot be executed as a failed spawn.
        #expect(BrowserProcess.spawn(["/nonexistent/browser"]) == nil)
    }

    @Test func theChainAndItsRefusals() throws {
        var printed = [String]()
        let url = "https://auth.example/authorize?state=s"
        #expect(
            outcome {
                try BrowserOpener.open(url, commands: [], noBrowser: true, stderrIsTerminal: false) {
                    printed.append($0)
                }
            } == .browserUnavailable
        )
        _ = try BrowserOpener.open(url, commands: [], noBrowser: true, stderrIsTerminal: true) { printed.append($0) }
        _ = try BrowserOpener.open(url, commands: [], noBrowser: false, stderrIsTerminal: false) { printed.append($0) }
        #expect(printed == [url, url])
        let started = try BrowserOpener.open(
            url,
            commands: [["sh", "-c", "exit 0"]],
            noBrowser: false,
            stderrIsTerminal: false
        ) { _ in }
        #expect(started != nil)
        #expect(
            outcome {
                try BrowserOpener.open(
                    url,
                    commands: [["/nonexistent/browser"]],
                    noBrowser: false,
                    stderrIsTerminal: true
                ) {
                    printed.append($0)
                }
            } == .browserUnavailable
        )
        #expect(printed == [url, url])
        // xdg-open is found on PATH only when it is there; $BROWSER wins over it.
        let directory = "/tmp/fastmcpauth-browser-\(getpid())"
        mkdir(directory, 0o700)
        defer {
            unlink(directory + "/xdg-open")
            rmdir(directory)
        }
        #expect(BrowserOpener.defaultCommands(environment: ["PATH": directory]).isEmpty)
        let file = fopen(directory + "/xdg-open", "w")
        fclose(file)
        chmod(directory + "/xdg-open", 0o755)
        #expect(BrowserOpener.defaultCommands(environment: ["PATH": directory]) == [[directory + "/xdg-open"]])
        #expect(
            BrowserOpener.defaultCommands(environment: ["PATH": directory, "BROWSER": "mine %s"]) == [["mine", "%s"]]
        )
    }
}
