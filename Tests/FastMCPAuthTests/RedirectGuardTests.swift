import Foundation
import Testing

@testable import FastMCPAuth
@testable import FastMCPAuthMCP

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// OAuthClient.transportConfiguration(): URLSession must not carry a bearer token through a
/// redirect to another origin (Foundation's own sessions do: the first test shows it), while
/// same-origin redirects and unauthorized requests work as before. Real HTTP on loopback.
@Suite(.serialized) struct RedirectGuardTests {
    /// A server that records each request and answers by `route(path)`.
    final class Recorder: Sendable {
        let requests = Locked<[LocalHTTPServer.Request]>([])
        let server: LocalHTTPServer

        init(route: @escaping @Sendable (String) -> LocalHTTPServer.Response) throws {
            let requests = self.requests
            server = try LocalHTTPServer(requestHandler: { request in
                requests.withLock { $0.append(request) }
                return route(request.path)
            })
        }

        private let running = Locked(true)

        var seen: [LocalHTTPServer.Request] { requests.withLock { $0 } }

        /// Once only: a second close could hit a descriptor another test has been given since.
        func stop() {
            if running.withLock({
                let was = $0
                $0 = false
                return was
            }) {
                server.stop()
            }
        }
        deinit { stop() }
    }

    static func redirect(to location: String) -> LocalHTTPServer.Response {
        LocalHTTPServer.Response(status: 307, headers: [("Location", location)], body: [])
    }

    static let ok = LocalHTTPServer.Response(
        status: 200,
        headers: [("Content-Type", "application/json")],
        body: Array("{}".utf8)
    )

    func post(_ url: String, token: String?, configuration: URLSessionConfiguration) async throws -> (Int, String) {
        var request = URLRequest(url: try #require(URL(string: url)))
        request.httpMethod = "POST"
        request.httpBody = Data(#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#.utf8)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        if let token { request.setValue("Bearer " + token, forHTTPHeaderField: "Authorization") }
        let session = URLSession(configuration: configuration)
        defer { session.finishTasksAndInvalidate() }
        let (data, response) = try await session.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    @Test func foundationAloneSendsTheTokenToTheRedirectTarget() async throws {
        // Why the guard exists: a plain configuration hands the token to another origin.
        let elsewhere = try Recorder { _ in Self.ok }
        let server = try Recorder { _ in Self.redirect(to: elsewhere.server.baseURL + "/collect") }
        let (status, _) = try await post(server.server.baseURL + "/mcp", token: "tok-plain", configuration: .default)
        #expect(status == 200)
        #expect(elsewhere.seen.first?.headers["authorization"] == "Bearer tok-plain")
    }

    @Test func anAuthorizedRequestIsNotRedirectedToAnotherOrigin() async throws {
        let elsewhere = try Recorder { _ in Self.ok }
        let targets = [
            elsewhere.server.baseURL + "/collect",  // another port
            "http://localhost:\(elsewhere.server.port)/collect",  // another host name
        ]
        for target in targets {
            let server = try Recorder { _ in Self.redirect(to: target) }
            await #expect {
                _ = try await post(
                    server.server.baseURL + "/mcp",
                    token: "tok-1",
                    configuration: OAuthClient.transportConfiguration()
                )
            } throws: { error in
                let refusal = error as? CrossOriginRedirectRefused
                return refusal?.origin == "http://\(URL(string: target)?.host ?? ""):\(elsewhere.server.port)"
                    && !error.localizedDescription.contains("tok-1")
            }
            #expect(server.seen.count == 1 && server.seen.first?.headers["authorization"] == "Bearer tok-1")
        }
        #expect(elsewhere.seen.isEmpty)
    }

    @Test func aSchemeRelativeLocationToAnotherHostIsRefused() async throws {
        let elsewhere = try Recorder { _ in Self.ok }
        let server = try Recorder { _ in Self.redirect(to: "//localhost:\(elsewhere.server.port)/collect") }
        await #expect(throws: CrossOriginRedirectRefused.self) {
            _ = try await post(
                server.server.baseURL + "/mcp",
                token: "tok-5",
                configuration: OAuthClient.transportConfiguration()
            )
        }
        #expect(elsewhere.seen.isEmpty)
    }

    @Test func onlyRequestsWithATokenGoThroughTheGuard() throws {
        var request = URLRequest(url: try #require(URL(string: "https://mcp.example.com/mcp")))
        #expect(!AuthorizationRedirectGuard.canInit(with: request))
        request.setValue("Bearer x", forHTTPHeaderField: "Authorization")
        #expect(AuthorizationRedirectGuard.canInit(with: request))
        request.url = URL(string: "ftp://mcp.example.com/")
        #expect(!AuthorizationRedirectGuard.canInit(with: request))
    }

    /// A cancelled request ends at once (the server is still sleeping) and leaves nothing behind.
    @Test func aCancelledRequestEndsAndIsForgotten() async throws {
        let server = try Recorder { _ in LocalHTTPServer.Response(status: 200, headers: [], body: [], delay: 3) }
        let started = Date()
        let call = Task {
            try await post(
                server.server.baseURL + "/mcp",
                token: "tok-6",
                configuration: OAuthClient.transportConfiguration()
            )
        }
        try await Task.sleep(nanoseconds: 300_000_000)
        call.cancel()
        await #expect(throws: (any Error).self) { _ = try await call.value }
        #expect(Date().timeIntervalSince(started) < 2.5)
        var remaining = RedirectForwarder.shared.inFlight
        for _ in 0..<100 where remaining > 0 {
            try await Task.sleep(nanoseconds: 20_000_000)
            remaining = RedirectForwarder.shared.inFlight
        }
        #expect(remaining == 0)
    }

    @Test func aSameOriginHopThenAnotherOriginIsRefused() async throws {
        let elsewhere = try Recorder { _ in Self.ok }
        // Absolute locations: swift-corelibs-foundation resolves a relative one against the wrong path.
        let base = Locked("")
        let server = try Recorder { path in
            path == "/mcp"
                ? Self.redirect(to: base.withLock { $0 } + "/mcp/") : Self.redirect(to: elsewhere.server.baseURL + "/x")
        }
        base.withLock { $0 = server.server.baseURL }
        await #expect(throws: CrossOriginRedirectRefused.self) {
            _ = try await post(
                server.server.baseURL + "/mcp",
                token: "tok-2",
                configuration: OAuthClient.transportConfiguration()
            )
        }
        #expect(server.seen.map(\.path) == ["/mcp", "/mcp/"] && elsewhere.seen.isEmpty)
    }

    @Test func sameOriginRedirectsKeepTheToken() async throws {
        let base = Locked("")
        let server = try Recorder { path in path == "/mcp" ? Self.redirect(to: base.withLock { $0 } + "/mcp/") : Self.ok
        }
        base.withLock { $0 = server.server.baseURL }
        let (status, body) = try await post(
            server.server.baseURL + "/mcp",
            token: "tok-3",
            configuration: OAuthClient.transportConfiguration()
        )
        #expect(status == 200 && body == "{}")
        let followed = try #require(server.seen.last)
        #expect(server.seen.count == 2 && followed.path == "/mcp/")
        #expect(followed.headers["authorization"] == "Bearer tok-3")
        // (swift-corelibs-foundation resends a 307's POST without its body, with or without the
        // guard: not asserted here.)
    }

    @Test func requestsWithoutATokenFollowRedirectsAnywhere() async throws {
        let elsewhere = try Recorder { _ in Self.ok }
        let server = try Recorder { _ in Self.redirect(to: elsewhere.server.baseURL + "/public") }
        let (status, _) = try await post(
            server.server.baseURL + "/mcp",
            token: nil,
            configuration: OAuthClient.transportConfiguration()
        )
        #expect(status == 200 && elsewhere.seen.map(\.path) == ["/public"])
    }

    @Test func errorsAndStatusesPassThrough() async throws {
        let server = try Recorder { _ in
            LocalHTTPServer.Response(
                status: 401,
                headers: [("WWW-Authenticate", #"Bearer error="invalid_token""#)],
                body: []
            )
        }
        let (status, _) = try await post(
            server.server.baseURL + "/mcp",
            token: "tok-4",
            configuration: OAuthClient.transportConfiguration()
        )
        #expect(status == 401)
        server.stop()
        await #expect(throws: (any Error).self) {
            _ = try await post(
                server.server.baseURL + "/mcp",
                token: "tok-4",
                configuration: OAuthClient.transportConfiguration()
            )
        }
    }

    @Test func originsCompareSchemeHostAndPort() {
        func origin(_ text: String) -> Origin? { Origin(URL(string: text)) }
        #expect(origin("http://Example.COM/a") == origin("http://example.com:80/b"))
        #expect(origin("https://example.com/") == origin("https://example.com:443/"))
        #expect(origin("https://example.com/") != origin("http://example.com/"))
        #expect(origin("https://example.com/") != origin("https://example.com:8443/"))
        #expect(origin("https://example.com/") != origin("https://api.example.com/"))
        #expect(origin("ftp://example.com/") == nil && origin("/relative") == nil)
    }
}
