import FastMCPAuthMCP
import Foundation
import MCP
import Testing

@testable import FastMCPAuth

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// OAuthClient as swift-sdk's HTTPClientAuthorizer, against our proxy over real HTTP (the full
/// transport, through `fastmcpauth call`, is tested against the host from Python).
@Suite struct OAuthClientAuthorizerTests {
    let clock = TestClock(Double(time(nil)))

    func client(_ proxy: ServedProxy) throws -> OAuthClient {
        var configuration = OAuthClient.Configuration(serverURL: proxy.base + "/mcp")
        configuration.signInTimeout = 20
        var options = Store.Options()
        options.encryptionKeys = [try Fernet.generateKey()]
        return try OAuthClient(
            configuration: configuration,
            store: try Store(url: "memory://", options: options),
            clock: clock.function
        )
    }

    @Test func theTransportGetsTokensAndHandsBackChallenges() async throws {
        let proxy = try ServedProxy(clock: clock)
        let client = try client(proxy)
        let visits = Locked(0)
        client.setBrowser(proxy.browser(visits: visits))
        let endpoint = try #require(URL(string: proxy.base + "/mcp"))
        let session = URLSession(configuration: .ephemeral)
        try client.validateEndpointSecurity(for: endpoint)
        // Only the server the client signs in to, and never plain http off loopback.
        #expect(throws: (any Error).self) {
            try client.validateEndpointSecurity(for: try #require(URL(string: proxy.base + "/other")))
        }
        #expect(throws: (any Error).self) {
            try client.validateEndpointSecurity(for: try #require(URL(string: "http://mcp.example.com/mcp")))
        }
        // Nothing cached yet: no header; the transport's preparation signs in (off the cooperative pool).
        #expect(client.authorizationHeader(for: endpoint) == nil)
        try await client.prepareAuthorization(for: endpoint, session: session)
        let header = try #require(client.authorizationHeader(for: endpoint))
        #expect(header.hasPrefix("Bearer ") && visits.withLock { $0 } == 1)
        #expect(ProxyFlow(auth: try #require(proxy.auth)).bearer(String(header.dropFirst(7))) == 200)
        // A 403 that is not about scope: no new token can help, the transport gives up.
        let forbidden = try await client.handleChallenge(
            statusCode: 403,
            headers: ["WWW-Authenticate": #"Bearer error="access_denied""#],
            endpoint: endpoint,
            operationKey: "tools/call",
            session: session
        )
        #expect(!forbidden && client.authorizationHeader(for: endpoint) == header)
        // A 401 (header name in any case): a refresh, no browser, and the transport retries.
        let retried = try await client.handleChallenge(
            statusCode: 401,
            headers: ["www-authenticate": #"Bearer error="invalid_token""#],
            endpoint: endpoint,
            operationKey: "tools/call",
            session: session
        )
        let renewed = try #require(client.authorizationHeader(for: endpoint))
        #expect(retried && renewed != header && visits.withLock { $0 } == 1)
        #expect(ProxyFlow(auth: try #require(proxy.auth)).bearer(String(renewed.dropFirst(7))) == 200)
        #expect(client.maxAuthorizationAttempts == 3)
        // The error an authorizer throws reaches swift-sdk's message with its code.
        #expect(AuthError(.cancelled, "the sign-in was cancelled").localizedDescription.hasPrefix("cancelled:"))
    }

    /// swift-sdk drops prepareAuthorization's error and sends the request without a token: the 401
    /// that follows throws the person's refusal instead of opening the browser a second time; the
    /// next request asks again.
    @Test func aRefusedSignInIsOnePromptNotTwo() async throws {
        let proxy = try ServedProxy(clock: clock)
        let client = try client(proxy)
        let visits = Locked(0)
        client.setBrowser(proxy.browser(visits: visits, approve: false))
        let endpoint = try #require(URL(string: proxy.base + "/mcp"))
        let session = URLSession(configuration: .ephemeral)
        let unauthorized = [
            "WWW-Authenticate": #"Bearer resource_metadata="\#(proxy.base)/.well-known/oauth-protected-resource/mcp""#
        ]
        let theChallengeIsDenied = { () async -> Bool in
            do {
                _ = try await client.handleChallenge(
                    statusCode: 401,
                    headers: unauthorized,
                    endpoint: endpoint,
                    operationKey: "initialize",
                    session: session
                )
                return false
            } catch {
                return (error as? AuthError)?.code == .authorizationDenied
            }
        }
        await #expect(throws: AuthError.self) { try await client.prepareAuthorization(for: endpoint, session: session) }
        #expect(visits.withLock { $0 } == 1 && client.authorizationHeader(for: endpoint) == nil)
        #expect(await theChallengeIsDenied())
        #expect(visits.withLock { $0 } == 1)
        // The refusal was reported once: the next request's challenge asks the person again.
        #expect(await theChallengeIsDenied())
        #expect(visits.withLock { $0 } == 2)
        // A preparation that succeeds clears what an earlier one kept.
        await #expect(throws: AuthError.self) { try await client.prepareAuthorization(for: endpoint, session: session) }
        #expect(
            visits.withLock { $0 } == 3
                && client.failedPreparations.withLock { $0.values.first }?.code == .authorizationDenied
        )
        client.setBrowser(proxy.browser(visits: visits))
        try await client.prepareAuthorization(for: endpoint, session: session)
        #expect(visits.withLock { $0 } == 4 && client.authorizationHeader(for: endpoint) != nil)
        #expect(client.failedPreparations.withLock { $0.isEmpty })
    }

    /// The same through swift-sdk's own HTTPClientTransport and Client: the server answers 401 to
    /// the request sent without a token; the refusal ends connect() after one prompt.
    @Test func aRefusedSignInEndsTheTransportsRequestAfterOnePrompt() async throws {
        let baseURL = Locked("")
        let proxy = try ServedProxy(clock: clock) { request in
            guard request.path.hasPrefix("/mcp") else { return .init(status: 404) }
            let metadata = baseURL.withLock { $0 } + "/.well-known/oauth-protected-resource/mcp"
            return .init(status: 401, headers: [("WWW-Authenticate", "Bearer resource_metadata=\"\(metadata)\"")])
        }
        baseURL.withLock { $0 = proxy.base }
        let client = try client(proxy)
        let visits = Locked(0)
        client.setBrowser(proxy.browser(visits: visits, approve: false))
        let transport = HTTPClientTransport(
            endpoint: try #require(URL(string: proxy.base + "/mcp")),
            configuration: OAuthClient.transportConfiguration(),
            streaming: false,
            authorizer: client
        )
        let mcp = MCP.Client(name: "test", version: "1")
        await #expect {
            _ = try await mcp.connect(transport: transport)
        } throws: { String(describing: $0).contains("authorization_denied") }
        #expect(visits.withLock { $0 } == 1)
        #expect(client.failedPreparations.withLock { $0.isEmpty })
        await mcp.disconnect()
    }

    /// A task cancelled before the sign-in's thread starts (or while it waits) ends the sign-in: no
    /// browser, and the task's error is `cancelled`.
    @Test func aCancelledTaskCancelsItsSignIn() async throws {
        let proxy = try ServedProxy(clock: clock)
        let client = try client(proxy)
        let opened = Locked(0)
        client.setBrowser { _ in opened.withLock { $0 += 1 } }
        let endpoint = try #require(URL(string: proxy.base + "/mcp"))
        let session = URLSession(configuration: .ephemeral)
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await client.prepareAuthorization(for: endpoint, session: session)
        }
        let refused = await #expect(throws: AuthError.self) { try await early.value }
        #expect(refused?.code == .cancelled)
        #expect(opened.withLock { $0 } == 0)
        // Cancelled while the browser sign-in waits: it returns at once, well before its timeout.
        let waiting = Task { try await client.prepareAuthorization(for: endpoint, session: session) }
        let deadline = Date().addingTimeInterval(15)
        while opened.withLock({ $0 }) == 0 && Date() < deadline { try await Task.sleep(nanoseconds: 10_000_000) }
        #expect(opened.withLock { $0 } == 1, "the sign-in never opened the browser")
        let begun = Date()
        waiting.cancel()
        do {
            try await waiting.value
            Issue.record("a cancelled sign-in returned a token")
        } catch let error as AuthError {
            #expect(error.code == .cancelled)
        }
        #expect(Date().timeIntervalSince(begun) < 5 && client.cachedAccessToken() == nil)
    }
}
