import Foundation
import Testing

@testable import FastMCPAuth

/// Our OAuth proxy served over real HTTP on a free loopback port, in front of the test upstream.
final class ServedProxy: Sendable {
    let server: LocalHTTPServer
    let upstream: ProxyUpstream
    let clock: TestClock
    private let facade = Locked<AuthFacade?>(nil)
    var auth: AuthFacade? { facade.withLock { $0 } }
    var base: String { server.baseURL }

    /// `mcp`: answers what the facade does not (the MCP endpoint itself); default 404.
    init(
        clock: TestClock,
        _ extra: [String: JSONValue] = [:],
        mcp: @escaping @Sendable (LocalHTTPServer.Request) -> LocalHTTPServer.Response = { _ in .init(status: 404) }
    ) throws {
        let facade = self.facade
        upstream = try ProxyUpstream()
        self.clock = clock
        server = try LocalHTTPServer(requestHandler: { request in
            guard let auth = facade.withLock({ $0 }) else { return .init(status: 503) }
            guard
                let response = auth.handle(
                    AuthRequest(
                        method: request.method,
                        target: request.path,
                        headers: request.headers.map { (name: $0.key, value: $0.value) },
                        body: request.body,
                        clientAddress: "127.0.0.1"
                    )
                )
            else { return mcp(request) }
            return .init(
                status: response.status,
                headers: response.headers.map { ($0.key, $0.value) },
                body: response.body
            )
        })
        var settings = extra
        settings["base_url"] = .string(server.baseURL)
        let auth = try upstream.proxy(clock: clock, settings)
        facade.withLock { $0 = auth }
    }

    /// A headless browser for one sign-in: authorize → consent (approve) → the upstream's redirect
    /// back → the client's loopback redirect. Runs on its own thread, as a real browser would.
    func browser(visits: Locked<Int>, approve: Bool = true) -> @Sendable (String) -> Void {
        { [self] url in
            visits.withLock { $0 += 1 }
            Thread {
                guard let auth = self.auth else { return }
                let flow = ProxyFlow(auth: auth)
                let strip = { (url: String) in url.hasPrefix(self.base) ? String(url.dropFirst(self.base.count)) : url }
                let authorize = flow.browse("GET", strip(url))
                guard let consentURL = authorize.headers["Location"] else { return }
                let page = flow.browse("GET", strip(consentURL))
                guard let csrf = ProxyFlow.field("csrf_token", in: page.bodyText),
                    let txn = ProxyFlow.field("txn_id", in: page.bodyText)
                else { return }
                let decided = flow.decide(txn: txn, csrf: csrf, action: approve ? "approve" : "deny")
                var location = decided.headers["Location"] ?? ""
                if approve {
                    let back = flow.browse(
                        "GET",
                        "/auth/callback?" + Form.encode([("code", "up-code"), ("state", txn)])
                    )
                    location = back.headers["Location"] ?? ""
                }
                _ = try? CurlHTTPClient().send(HTTPRequest(url: location, timeout: 10))
            }.start()
        }
    }
}

/// The client driver end to end against our own proxy: discovery, dynamic registration, the
/// browser sign-in, the cache, refresh, step-up and sign-out, over real HTTP and a real store.
@Suite struct OAuthClientTests {
    let clock = TestClock(Double(time(nil)))

    func client(_ proxy: ServedProxy, store: Store, scopes: [String] = []) throws -> OAuthClient {
        var configuration = OAuthClient.Configuration(serverURL: proxy.base + "/mcp")
        configuration.scopes = scopes
        configuration.signInTimeout = 20
        return try OAuthClient(configuration: configuration, store: store, clock: clock.function)
    }

    func store() throws -> Store {
        var options = Store.Options()
        options.encryptionKeys = [try Fernet.generateKey()]
        return try Store(url: "memory://", options: options)
    }

    @Test func signInCacheRefreshAndSignOut() throws {
        let proxy = try ServedProxy(clock: clock)
        let store = try store()
        let visits = Locked(0)
        let first = try client(proxy, store: store, scopes: ["read"])
        first.setBrowser(proxy.browser(visits: visits))
        let access = try first.token()
        #expect(visits.withLock { $0 } == 1)
        #expect(ProxyFlow(auth: try #require(proxy.auth)).bearer(access) == 200)
        // A second client on the same store (a restarted process): no browser.
        let second = try client(proxy, store: store, scopes: ["read"])
        second.setBrowser(proxy.browser(visits: visits))
        #expect(try second.token() == access)
        #expect(visits.withLock { $0 } == 1)
        // Past expiry: a refresh, still no browser, and the new token works.
        clock.advance(3700)
        let renewed = try second.token()
        #expect(renewed != access && visits.withLock { $0 } == 1)
        #expect(ProxyFlow(auth: try #require(proxy.auth)).bearer(renewed) == 200)
        // The server refuses the token (401): the next call refreshes instead of handing it out again.
        second.challenge(status: 401, wwwAuthenticate: #"Bearer error="invalid_token""#, accessToken: renewed)
        let again = try second.token()
        #expect(again != renewed && visits.withLock { $0 } == 1)
        // Signed out: the next call signs in again.
        try second.logout()
        _ = try second.token()
        #expect(visits.withLock { $0 } == 2)
    }

    @Test func stepUpAsksForTheUnion() throws {
        let proxy = try ServedProxy(clock: clock)
        let visits = Locked(0)
        let client = try client(proxy, store: try store(), scopes: ["read"])
        client.setBrowser(proxy.browser(visits: visits))
        let access = try client.token()
        client.challenge(
            status: 403,
            wwwAuthenticate: #"Bearer error="insufficient_scope", scope="write""#,
            accessToken: access
        )
        let wider = try client.token()
        #expect(visits.withLock { $0 } == 2)
        #expect(ProxyFlow(auth: try #require(proxy.auth)).bearer(wider, scopes: ["read", "write"]) == 200)
        // A server that keeps answering 403: a second step-up, then insufficient_scope, not a loop.
        let forbidden = #"Bearer error="insufficient_scope", scope="write""#
        client.challenge(status: 403, wwwAuthenticate: forbidden, accessToken: wider)
        _ = try client.token()
        client.challenge(status: 403, wwwAuthenticate: forbidden, accessToken: wider)
        #expect(outcome { try client.token() } == .insufficientScope)
        #expect(visits.withLock { $0 } == 3)
        // The next request starts over.
        #expect(try client.token().isEmpty == false)
    }

    @Test func deniedTimedOutAndCancelled() throws {
        let proxy = try ServedProxy(clock: clock)
        let visits = Locked(0)
        let denied = try client(proxy, store: try store())
        denied.setBrowser(proxy.browser(visits: visits, approve: false))
        #expect(outcome { try denied.token() } == .authorizationDenied)
        var configuration = OAuthClient.Configuration(serverURL: proxy.base + "/mcp")
        configuration.signInTimeout = 0.5
        let slow = try OAuthClient(configuration: configuration, store: try store(), clock: clock.function)
        slow.setBrowser { _ in }
        #expect(outcome { try slow.token() } == .authorizationTimeout)
        configuration.signInTimeout = 30
        let cancelled = try OAuthClient(configuration: configuration, store: try store(), clock: clock.function)
        // Weak: the client keeps its browser function, which must not keep the client.
        cancelled.setBrowser { [weak cancelled] _ in
            let target = cancelled
            Thread {
                usleep(200_000)
                target?.cancel()
            }.start()
        }
        #expect(outcome { try cancelled.token() } == .cancelled)
        // A cancel is not undone by a call that starts right after it (within the listener's poll).
        configuration.signInTimeout = 5
        let raced = try OAuthClient(configuration: configuration, store: try store(), clock: clock.function)
        let opened = Locked(0)
        raced.setBrowser { [weak raced] _ in
            guard
                opened.withLock({ value -> Bool in
                    value += 1
                    return value == 1
                })
            else { return }
            let target = raced
            Thread {
                usleep(200_000)
                target?.cancel()
                Thread { _ = try? target?.token() }.start()
            }.start()
        }
        let begun = LoopbackListener.monotonicNow()
        #expect(outcome { try raced.token() } == .cancelled)
        #expect(LoopbackListener.monotonicNow() - begun < 3)
        raced.cancel()
        // A cancel between reading the point and the call (a caller handing the call to a thread of
        // its own, as the swift-sdk authorizer does): cancelled, nothing registered, nothing opened.
        let earlyStore = try store()
        let early = try OAuthClient(configuration: configuration, store: earlyStore, clock: clock.function)
        early.setBrowser { _ in Issue.record("a cancelled call opened the browser") }
        let point = early.cancellationPoint
        early.cancel()
        #expect(outcome { try early.token(unlessCancelledSince: point) } == .cancelled)
        #expect(try earlyStore.keys("fastmcpauth-client-registrations").isEmpty)
        // A later call starts afresh (the cancel was for the calls before it).
        early.setBrowser(proxy.browser(visits: visits, approve: true))
        #expect(try early.token().count > 20)
    }

    @Test func discoveryRefusesAStrangersMetadata() throws {
        let proxy = try ServedProxy(clock: clock)
        // The proxy's metadata names its own /mcp resource; a client for another path refuses it.
        var configuration = OAuthClient.Configuration(serverURL: proxy.base + "/other")
        configuration.signInTimeout = 5
        let client = try OAuthClient(configuration: configuration, store: try store(), clock: clock.function)
        client.setBrowser { _ in Issue.record("a browser was opened for a server that failed discovery") }
        #expect(outcome { try client.token() } == .discoveryFailed)
    }

    /// Four clients (threads here; processes share the store the same way) refresh at once through
    /// one SQLite cache: one refresh reaches the server, everyone gets its result, the chain lives on.
    @Test func concurrentRefreshesThroughOneCacheKeepTheChain() throws {
        let proxy = try ServedProxy(clock: clock)
        let path = "/tmp/fastmcpauth-client-race-\(getpid())-\(Int.random(in: 0..<1_000_000)).sqlite"
        defer { unlink(path) }
        var options = Store.Options()
        options.encryptionKeys = [try Fernet.generateKey()]
        let visits = Locked(0)
        let first = try client(proxy, store: try Store(url: "sqlite:///" + path, options: options), scopes: ["read"])
        first.setBrowser(proxy.browser(visits: visits))
        let original = try first.token()
        clock.advance(3700)
        let clients = try (0..<4).map { _ in
            try client(proxy, store: try Store(url: "sqlite:///" + path, options: options), scopes: ["read"])
        }
        let results = Locked<[String]>([])
        DispatchQueue.concurrentPerform(iterations: clients.count) { index in
            let token = (try? clients[index].token()) ?? "failed"
            results.withLock { $0.append(token) }
        }
        let tokens = results.withLock { $0 }
        #expect(Set(tokens).count == 1 && tokens.first != original && tokens.first != "failed", "\(tokens.count)")
        #expect(visits.withLock { $0 } == 1)
        #expect(ProxyFlow(auth: try #require(proxy.auth)).bearer(tokens.first) == 200)
        // The chain still refreshes afterwards.
        clock.advance(3700)
        let next = try clients[0].token()
        #expect(next != tokens.first)
        #expect(ProxyFlow(auth: try #require(proxy.auth)).bearer(next) == 200)
        #expect(visits.withLock { $0 } == 1)
    }
}

@Suite struct OAuthClientConfigurationTests {
    @Test func theJSONConfiguration() throws {
        let full = try OAuthClient.Configuration(
            json: [
                "server_url": "https://mcp.example.com/mcp", "client_name": "Tool", "client_id": "c",
                "client_secret": "s", "client_issuer": "https://auth.example.com", "redirect_port": 53682,
                "scopes": "read write", "no_browser": true, "sign_in_timeout": 60, "timeout": 5,
            ]
        )
        #expect(full.preRegistered == ["https://auth.example.com": ClientCredentials(clientID: "c", clientSecret: "s")])
        #expect(
            full.scopes == ["read", "write"] && full.redirectPort == 53682 && full.noBrowser && full.signInTimeout == 60
        )
        let bad: [JSONValue] = [
            [:], ["server_url": "https://m/mcp", "nonsense": 1],
            ["server_url": "https://m/mcp", "redirect_port": 70_000],
            ["server_url": "https://m/mcp", "client_id": "c", "client_secret": "s"],
            ["server_url": "https://m/mcp", "client_secret": "s"],
            ["server_url": "https://m/mcp", "scopes": ["bad scope"]],
            ["server_url": "https://m/mcp", "sign_in_timeout": 0],
            ["server_url": "https://m/mcp", "client_metadata_url": "http://a/c"],
            ["server_url": "https://m/mcp", "client_metadata_url": "http://127.0.0.1:8"],
            ["server_url": "https://m/mcp", "client_name": "a\nb"],
        ]
        for json in bad {
            #expect(outcome { try OAuthClient.Configuration(json: json) } == .invalidConfig, "\(json.serialized())")
        }
        // A loopback metadata document (a development server) may be plain http.
        let loopback = try OAuthClient.Configuration(
            json: ["server_url": "https://m/mcp", "client_metadata_url": "http://127.0.0.1:8/client.json"]
        )
        #expect(loopback.clientMetadataURL == "http://127.0.0.1:8/client.json")
        // The server URL itself is checked when the client is made.
        let plain = try OAuthClient.Configuration(json: ["server_url": "http://example.com/mcp"])
        #expect(outcome { try OAuthClient(configuration: plain, store: try Store(url: "memory://")) } == .invalidConfig)
    }

    @Test func theDefaultCacheIsPrivateAndKeepsItsKey() throws {
        let base = "/tmp/fastmcpauth-cache-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        defer {
            for file in ["key", "tokens.db", "tokens.db-wal", "tokens.db-shm"] { unlink(base + "/fastmcpauth/" + file) }
            rmdir(base + "/fastmcpauth")
            rmdir(base)
        }
        let first = try OAuthClient.defaultStore(environment: ["XDG_CACHE_HOME": base])
        try first.put("c", "k", ["v": 1])
        let second = try OAuthClient.defaultStore(environment: ["XDG_CACHE_HOME": base])
        #expect(try second.get("c", "k") == ["v": 1])
        var info = stat()
        for (path, mode) in [("/fastmcpauth", 0o700), ("/fastmcpauth/key", 0o600), ("/fastmcpauth/tokens.db", 0o600)] {
            #expect(stat(base + path, &info) == 0 && Int(info.st_mode & 0o777) == mode, "\(path)")
        }
        #expect(outcome { try OAuthClient.defaultStore(environment: [:]) } == .invalidConfig)
    }
}
