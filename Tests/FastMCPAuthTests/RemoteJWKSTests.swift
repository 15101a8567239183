import Foundation
import Synchronization
import Testing

@testable import FastMCPAuth

/// jwks_uri against a real local HTTP server: caching, rotation, unknown-kid cooldown,
/// failures. The verifier's clock is injected; the server is real.
@Suite struct RemoteJWKSTests {
    static let keyA = try! JSONWebKey.generate(.ES256, keyID: "A")
    static let keyB = try! JSONWebKey.generate(.ES256, keyID: "B")
    let clock = TestClock(1_800_000_000)

    /// What the server answers, changeable while it runs.
    final class Script: Sendable {
        let state = Locked(LocalHTTPServer.Response())
        func set(_ change: (inout LocalHTTPServer.Response) -> Void) { state.withLock { change(&$0) } }
    }

    static func jwks(_ keys: [JSONWebKey]) -> [UInt8] {
        Array(JSONValue.object(["keys": .array(keys.map { try! $0.publicJWK() })]).serialized().utf8)
    }

    func serve(_ keys: [JSONWebKey], cacheControl: String? = nil) throws -> (LocalHTTPServer, Script) {
        let script = Script()
        script.set {
            $0.body = Self.jwks(keys)
            if let cacheControl { $0.headers.append(("Cache-Control", cacheControl)) }
        }
        let server = try LocalHTTPServer { path in
            path == "/jwks" ? script.state.withLock { $0 } : LocalHTTPServer.Response(status: 404)
        }
        return (server, script)
    }

    func verifier(_ server: LocalHTTPServer, _ extra: [String: JSONValue] = [:]) throws -> JWTVerifier {
        var config: [String: JSONValue] = [
            "jwks_uri": .string(server.baseURL + "/jwks"), "algorithms": ["ES256"], "cache_size": 0,
        ]
        config.merge(extra) { _, new in new }
        return try JWTVerifier(json: .object(config), clock: clock.function)
    }

    func token(_ key: JSONWebKey, kid: String? = nil) throws -> String {
        let claims: JSONValue = ["sub": "alice", "exp": .int(Int64(clock.now) + 100_000)]
        guard let kid else { return try JWT.sign(claims: claims, key: key, algorithm: .ES256) }
        return try rawToken(header: #"{"alg":"ES256","kid":"\#(kid)"}"#, claims: claims.serialized()) {
            try key.sign(.ES256, input: $0)
        }
    }

    @Test func cachesPerMaxAge() throws {
        let (server, _) = try serve([Self.keyA], cacheControl: "public, max-age=120")
        defer { server.stop() }
        let v = try verifier(server)
        let t = try token(Self.keyA)
        #expect(outcome { try v.verify(t) } == .ok)
        clock.advance(119)
        #expect(outcome { try v.verify(t) } == .ok)
        #expect(server.requests == 1)
        clock.advance(2)
        #expect(outcome { try v.verify(t) } == .ok)
        #expect(server.requests == 2)
    }

    @Test(arguments: [("max-age=5", 60.0), ("no-store", 60.0), ("max-age=9999999", 86_400.0), (nil, 3_600.0)])
    func lifetimeIsClamped(cacheControl: String?, lifetime: Double) throws {
        let (server, _) = try serve([Self.keyA], cacheControl: cacheControl)
        defer { server.stop() }
        let v = try verifier(server)
        let t = try token(Self.keyA)
        #expect(outcome { try v.verify(t) } == .ok)
        clock.advance(lifetime - 1)
        #expect(outcome { try v.verify(t) } == .ok)
        #expect(server.requests == 1)
        clock.advance(2)
        #expect(outcome { try v.verify(t) } == .ok)
        #expect(server.requests == 2)
    }

    @Test func rotationIsPickedUpAfterTheCooldown() throws {
        let (server, script) = try serve([Self.keyA])
        defer { server.stop() }
        let v = try verifier(server)
        #expect(outcome { try v.verify(try token(Self.keyA)) } == .ok)
        script.set { $0.body = Self.jwks([Self.keyB]) }  // the IdP rotates to B
        clock.advance(31)
        #expect(outcome { try v.verify(try token(Self.keyB)) } == .ok)
        #expect(server.requests == 2)
        // A is gone from the new set.
        #expect(outcome { try v.verify(try token(Self.keyA)) } == .keyNotFound)
    }

    @Test func unknownKidsRefetchAtMostOncePerCooldown() throws {
        let (server, _) = try serve([Self.keyA])
        defer { server.stop() }
        let v = try verifier(server, ["jwks_refetch_cooldown": 30])
        #expect(outcome { try v.verify(try token(Self.keyA)) } == .ok)
        for index in 0..<20 {
            #expect(outcome { try v.verify(try token(Self.keyB, kid: "forged-\(index)")) } == .keyNotFound)
        }
        #expect(server.requests == 1)  // within the cooldown of the first fetch: no refetch at all
        clock.advance(30)
        for index in 0..<20 {
            #expect(outcome { try v.verify(try token(Self.keyB, kid: "forged-\(index)")) } == .keyNotFound)
        }
        #expect(server.requests == 2)  // one refetch for twenty unknown kids
    }

    @Test func serverErrorsAndRecovery() throws {
        let (server, script) = try serve([Self.keyA])
        defer { server.stop() }
        script.set { $0.status = 503 }
        let v = try verifier(server)
        let t = try token(Self.keyA)
        #expect(outcome { try v.verify(t) } == .jwksUnavailable)
        #expect(outcome { try v.verify(t) } == .jwksUnavailable)
        #expect(server.requests == 1)  // failing fast inside the cooldown
        script.set { $0.status = 200 }
        clock.advance(31)
        #expect(outcome { try v.verify(t) } == .ok)
        #expect(server.requests == 2)
    }

    @Test func keepsServingTheLastGoodSetWhenARefreshFails() throws {
        let (server, script) = try serve([Self.keyA], cacheControl: "max-age=60")
        defer { server.stop() }
        let v = try verifier(server)
        let t = try token(Self.keyA)
        #expect(outcome { try v.verify(t) } == .ok)
        script.set { $0.status = 500 }
        clock.advance(61)
        #expect(outcome { try v.verify(t) } == .ok)  // stale but last good
        #expect(server.requests == 2)
        #expect(outcome { try v.verify(t) } == .ok)
        #expect(server.requests == 2)  // no hammering within the cooldown
        script.set {
            $0.body = Array("{ not json".utf8)
            $0.status = 200
        }
        clock.advance(31)
        #expect(outcome { try v.verify(t) } == .ok)  // a garbage answer does not replace the good set
        #expect(server.requests == 3)
    }

    @Test func slowResponsePastTheTimeout() throws {
        let (server, script) = try serve([Self.keyA])
        defer { server.stop() }
        script.set { $0.delay = 3 }
        let v = try verifier(server, ["jwks_timeout": .double(0.3)])
        let started = Date()
        #expect(outcome { try v.verify(try token(Self.keyA)) } == .jwksUnavailable)
        #expect(Date().timeIntervalSince(started) < 2.5, "the timeout, not the server, ended the request")
    }

    @Test func oversizedBodyIsRefused() throws {
        let (server, script) = try serve([Self.keyA])
        defer { server.stop() }
        let padding = String(repeating: " ", count: 10_000)
        script.set { $0.body = Array(padding.utf8) + Self.jwks([Self.keyA]) }
        let v = try verifier(server, ["jwks_max_bytes": 4096])
        #expect(outcome { try v.verify(try token(Self.keyA)) } == .jwksUnavailable)
        let roomy = try verifier(server, ["jwks_max_bytes": 65536])
        #expect(outcome { try roomy.verify(try token(Self.keyA)) } == .ok)
    }

    @Test func unusableDocumentsAndStatuses() throws {
        for (status, body) in [(200, "{\"keys\":[]}"), (200, "[]"), (404, "{}"), (302, "")] {
            let (server, script) = try serve([Self.keyA])
            defer { server.stop() }
            script.set {
                $0.status = status
                $0.body = Array(body.utf8)
            }
            #expect(
                outcome { try verifier(server).verify(try token(Self.keyA)) } == .jwksUnavailable,
                "\(status) \(body)"
            )
        }
    }

    @Test func insecureURLsAreRefused() {
        for uri in ["http://idp.example/jwks", "ftp://127.0.0.1/jwks", "file:///etc/passwd", "not a url", "https://"] {
            #expect(outcome { try JWTVerifier(json: ["jwks_uri": .string(uri)]) } == .invalidConfig, "\(uri)")
        }
        #expect(outcome { try JWTVerifier(json: ["jwks_uri": "http://localhost:9/jwks"]) } == .ok)
        #expect(outcome { try JWTVerifier(json: ["jwks_uri": "http://[::1]:9/jwks"]) } == .ok)
    }

    /// Eight threads start cold against one verifier: one fetch, every result right.
    @Test func eightThreadsShareOneFetch() throws {
        let (server, _) = try serve([Self.keyA, Self.keyB])
        defer { server.stop() }
        let v = try verifier(server)
        let good = [try token(Self.keyA), try token(Self.keyB)]
        let bad = good.map { $0.dropLast(4) + "AAAA" }
        let wrong = Locked(0)
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for round in 0..<50 {
                if outcome({ try v.verify(good[(thread + round) % 2]) }) != .ok { wrong.withLock { $0 += 1 } }
                if outcome({ try v.verify(String(bad[round % 2])) }) != .badSignature { wrong.withLock { $0 += 1 } }
            }
        }
        #expect(wrong.withLock { $0 } == 0)
        #expect(server.requests == 1)
    }
}
