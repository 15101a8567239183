import Foundation
import Synchronization
import Testing

@testable import FastMCPAuth

/// The proxy's drivers raced from threads, on each store: concurrent refreshes of one token,
/// concurrent redemptions of one code, and a registration flood from one address. (Processes
/// sharing one Redis race through two hosts in the Python suite.)
@Suite(.serialized) struct ProxyRaceTests {
    enum Backend: String, CaseIterable, CustomStringConvertible {
        case memory, sqlite, redis
        var description: String { rawValue }
    }

    /// A proxy on the given store; Redis and SQLite keep the server and folder alive.
    final class Fixture: @unchecked Sendable {  // Built once per test, then only read.
        let clock = TestClock(1_800_000_000)
        let upstream: ProxyUpstream
        let auth: AuthFacade
        let redis: RedisServer?
        let directory: String

        init(_ backend: Backend, _ extra: [String: JSONValue] = [:]) throws {
            directory = NSTemporaryDirectory() + "fma-race-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            upstream = try ProxyUpstream()
            var config = extra
            switch backend {
            case .memory:
                redis = nil
            case .sqlite:
                redis = nil
                config["storage"] = .string("sqlite:///" + directory + "/proxy.db")
            case .redis:
                let server = try RedisServer()
                redis = server
                config["storage"] = .string(server.url)
            }
            auth = try upstream.proxy(clock: clock, config)
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// Runs `body` on `count` threads at once (released together) and collects the results.
    static func together<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) -> T) -> [T] {
        let results = Locked<[T]>([])
        let gate = DispatchSemaphore(value: 0)
        let group = DispatchGroup()
        for index in 0..<count {
            group.enter()
            Thread {
                gate.wait()
                let result = body(index)
                results.withLock { $0.append(result) }
                group.leave()
            }.start()
        }
        for _ in 0..<count { gate.signal() }
        group.wait()
        return results.withLock { $0 }
    }

    static let cases: [(Backend, Int)] = Backend.allCases.flatMap { backend in [2, 5, 10].map { (backend, $0) } }

    @Test(arguments: cases)
    func concurrentRefreshesNeverRevokeTheGrant(backend: Backend, concurrency: Int) throws {
        let fixture = try Fixture(backend)
        let flow = ProxyFlow(auth: fixture.auth)
        let refresh = try #require(try flow.tokens()["refresh_token"]?.stringValue)
        let clientID = flow.clientID
        let auth = fixture.auth
        for round in 0..<3 {
            // Each round races the first refresh of a grant of its own.
            let grant = round == 0 ? refresh : try #require(try flow.tokens()["refresh_token"]?.stringValue)
            let outcomes = Self.together(concurrency) { _ -> (Int, [String: JSONValue]) in
                let response =
                    auth.handle(
                        AuthRequest(
                            method: "POST",
                            target: "/token",
                            headers: [(name: "Content-Type", value: "application/x-www-form-urlencoded")],
                            body: Array(
                                Form.encode([
                                    ("grant_type", "refresh_token"), ("refresh_token", grant), ("client_id", clientID),
                                ]).utf8
                            )
                        )
                    ) ?? AuthResponse(status: 404, headers: [:], body: [])
                return (response.status, (try? JSONValue.parse(response.body).objectValue) ?? [:])
            }
            let granted = outcomes.filter { $0.0 == 200 }.map(\.1)
            #expect(!granted.isEmpty, "\(backend) x\(concurrency): someone got the successor")
            #expect(
                outcomes.allSatisfy { $0.0 == 200 || ($0.0 == 400 && $0.1["error"] == "invalid_grant") },
                "\(outcomes.map(\.0))"
            )
            #expect(granted.allSatisfy { $0 == granted[0] }, "one successor, never a second chain")
            #expect(granted.count <= 2, "the winner and at most one grace replay")
            // Every access token handed out works, and the grant refreshes on.
            for body in granted { #expect(flow.bearer(body["access_token"]?.stringValue) == 200) }
            let (status, next) = flow.refresh(granted.first?["refresh_token"]?.stringValue ?? "")
            #expect(status == 200 && flow.bearer(next["access_token"]?.stringValue) == 200)
        }
        #expect(fixture.upstream.revocationCount == 0)
    }

    @Test(arguments: Backend.allCases)
    func concurrentRedemptionsOfOneCodeIssueOnce(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let flow = ProxyFlow(auth: fixture.auth)
        let code = try flow.code()
        let outcomes = Self.together(8) { _ in flow.exchange(code) }
        #expect(outcomes.filter { $0.0 == 200 }.count == 1)
        #expect(outcomes.filter { $0.0 == 400 && $0.1["error"] == "invalid_grant" }.count == 7)
        let winner = try #require(outcomes.first { $0.0 == 200 })
        #expect(flow.bearer(winner.1["access_token"]?.stringValue) == 200, "the client's own duplicates revoke nothing")
    }

    @Test(arguments: Backend.allCases.flatMap { backend in [30, 100].map { (backend, $0) } })
    func theRegistrationLimitHoldsUnderConcurrency(backend: Backend, attempts: Int) throws {
        let fixture = try Fixture(backend)
        let auth = fixture.auth
        let statuses = Self.together(attempts) { _ -> Int in
            auth.handle(
                AuthRequest(
                    method: "POST",
                    target: "/register",
                    body: Array(#"{"redirect_uris":["http://127.0.0.1:33418/callback"]}"#.utf8),
                    clientAddress: "2001:db8:7:7::\(Int.random(in: 1...9999))"  // one /64
                )
            )?.status ?? 0
        }
        #expect(statuses.filter { $0 == 201 }.count == 20, "\(backend): exactly the limit, never more or less")
        #expect(statuses.filter { $0 == 429 }.count == attempts - 20)
    }
}
