import Foundation
import Synchronization
import Testing

@testable import FastMCPAuth

/// The store's contract, run against each backend: memory, SQLite, and a real redis-server.
@Suite(.serialized) struct StoreTests {
    enum Backend: String, CaseIterable, CustomStringConvertible {
        case memory, sqlite, redis
        var description: String { rawValue }
    }

    /// A store of the given backend with a settable clock; `extra` adds options.
    final class Fixture {
        let clock = TestClock(1_800_000_000)
        let url: String
        let redis: RedisServer?
        let directory: String

        init(_ backend: Backend) throws {
            directory = NSTemporaryDirectory() + "fma-store-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            switch backend {
            case .memory:
                redis = nil
                url = "memory://"
            case .sqlite:
                redis = nil
                url = "sqlite:///" + directory + "/store.db"
            case .redis:
                let server = try RedisServer()
                redis = server
                url = server.url
            }
        }

        func store(_ configure: (inout Store.Options) -> Void = { _ in }) throws -> Store {
            var options = Store.Options()
            configure(&options)
            return try Store(url: url, options: options, clock: clock.function)
        }

        /// The backend under the store, to see exactly what is stored.
        func rawBackend() throws -> StoreBackend {
            if url.hasPrefix("redis://") {
                return RedisBackend(endpoint: try RedisBackend.endpoint(from: url), timeout: 2)
            }
            return try SQLiteBackend(path: String(url.dropFirst("sqlite:///".count)), busyTimeoutMilliseconds: 2000)
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }
    }

    @Test(arguments: Backend.allCases)
    func basicOperations(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let store = try fixture.store()
        #expect(try store.get("c", "k") == nil)
        try store.put("c", "k", ["a": 1, "name": "café ☃"])
        #expect(try store.get("c", "k") == ["a": 1, "name": "café ☃"])
        try store.put("c", "k", ["a": 2])
        #expect(try store.get("c", "k") == ["a": 2])
        try store.put("c", "other", ["b": true], ttl: 60)
        try store.put("d", "k", ["x": .null])
        #expect(try store.keys("c") == ["k", "other"])
        #expect(try store.ttl("c", "k") == .never)
        #expect(try store.ttl("c", "missing") == .missing)
        if case .seconds(let left) = try store.ttl("c", "other") {
            #expect(left > 59 && left <= 60)
        } else {
            Issue.record("no ttl")
        }
        #expect(try store.delete("c", "k"))
        #expect(try !store.delete("c", "k"))
        #expect(try store.deleteCollection("c") == 1)
        #expect(try store.keys("c").isEmpty)
        #expect(try store.get("d", "k") == ["x": .null])
        #expect(outcome { try store.put("c", "k", ["a": 1], ttl: 0) } == .invalidArgument)
        #expect(outcome { try store.put("c", "k", ["a": 1], ttl: -5) } == .invalidArgument)
        #expect(outcome { try store.put("", "k", ["a": 1]) } == .invalidArgument)
    }

    @Test(arguments: [Backend.memory, .sqlite])
    func expiredEntriesAreNeverReturned(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let store = try fixture.store()
        try store.put("c", "k", ["v": 1], ttl: 10)
        fixture.clock.advance(9.9)
        #expect(try store.get("c", "k") == ["v": 1])
        fixture.clock.advance(0.1)
        #expect(try store.get("c", "k") == nil)
        #expect(try store.keys("c").isEmpty)
        #expect(try store.ttl("c", "k") == .missing)
        #expect(try store.take("c", "k") == nil)
        #expect(try store.putIfAbsent("c", "k", ["v": 2], ttl: 10))  // an expired entry is absent
        #expect(try store.get("c", "k") == ["v": 2])
    }

    @Test(arguments: Backend.allCases)
    func atomicOperations(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let store = try fixture.store()
        #expect(try store.putIfAbsent("codes", "c1", ["client": "a"], ttl: 300))
        #expect(try !store.putIfAbsent("codes", "c1", ["client": "b"], ttl: 300))
        #expect(try store.get("codes", "c1") == ["client": "a"])
        #expect(try store.take("codes", "c1") == ["client": "a"])
        #expect(try store.take("codes", "c1") == nil)
        try store.put("refresh", "r", ["gen": 1])
        #expect(try !store.compareAndDelete("refresh", "r", expected: ["gen": 2]))
        #expect(try store.compareAndDelete("refresh", "r", expected: ["gen": 1]))
        #expect(try store.get("refresh", "r") == nil)
        let holder = try #require(try store.acquireLease("upstream-refresh:abc", ttl: 30))
        #expect(try store.acquireLease("upstream-refresh:abc", ttl: 30) == nil)
        #expect(try !store.releaseLease("upstream-refresh:abc", holder: "someone else"))
        #expect(try store.releaseLease("upstream-refresh:abc", holder: holder))
        #expect(try store.acquireLease("upstream-refresh:abc", ttl: 30) != nil)
    }

    @Test(arguments: Backend.allCases)
    func compareAndSwapAndIncrement(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let store = try fixture.store { $0.encryptionKeys = [try! Fernet.generateKey()] }
        // nil expected: only while absent.
        #expect(try store.compareAndSwap("grants", "g", expected: nil, new: ["state": "pending"], ttl: 60))
        #expect(try !store.compareAndSwap("grants", "g", expected: nil, new: ["state": "other"], ttl: 60))
        #expect(try !store.compareAndSwap("grants", "g", expected: ["state": "approved"], new: ["state": "x"]))
        #expect(
            try store.compareAndSwap("grants", "g", expected: ["state": "pending"], new: ["state": "approved"], ttl: 30)
        )
        #expect(try store.get("grants", "g") == ["state": "approved"])
        if case .seconds(let left) = try store.ttl("grants", "g") {
            #expect(left > 29 && left <= 30)
        } else {
            Issue.record("the swap did not set the new expiry")
        }
        #expect(try !store.compareAndSwap("grants", "missing", expected: ["state": "pending"], new: ["state": "x"]))
        #expect(try store.get("grants", "missing") == nil)
        #expect(
            outcome { try store.compareAndSwap("grants", "g", expected: nil, new: ["a": 1], ttl: 1e17) }
                == .invalidArgument
        )

        // Counters: a fixed window that starts with the first increment.
        #expect(try store.increment("limits", "a", ttl: 3600) == 1)
        #expect(try store.increment("limits", "a", by: 4, ttl: 10) == 5)
        #expect(try store.increment("limits", "a", by: 0) == 5)
        #expect(try store.increment("limits", "a", by: -2) == 3)
        if case .seconds(let left) = try store.ttl("limits", "a") {
            #expect(left > 3599 && left <= 3600)
        } else {
            Issue.record("the counter lost its window")
        }
        // Not a counter: corrupted, and left as it was.
        try store.put("limits", "plain", ["count": 1, "other": true])
        #expect(outcome { try store.increment("limits", "plain") } == .corruptedValue)
        #expect(try store.get("limits", "plain") == ["count": 1, "other": true])
        #expect(outcome { try store.increment("limits", "b", ttl: 0) } == .invalidArgument)
        #expect(outcome { try store.increment("limits", "b", ttl: .infinity) } == .invalidArgument)
        #expect(outcome { try store.increment("limits", "b", ttl: 1e16) } == .invalidArgument)
        #expect(outcome { try store.put("limits", "b", ["a": 1], ttl: .nan) } == .invalidArgument)
        #expect(try store.increment("limits", "b", ttl: Store.maxTTL) == 1)
    }

    @Test(arguments: [Backend.memory, .sqlite])
    func expiredCountersStartAgain(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let store = try fixture.store()
        #expect(try store.increment("limits", "a", by: 3, ttl: 10) == 3)
        fixture.clock.advance(9)
        #expect(try store.increment("limits", "a") == 4)
        fixture.clock.advance(1)
        #expect(try store.increment("limits", "a", ttl: 10) == 1)
        try store.put("grants", "g", ["v": 1], ttl: 5)
        fixture.clock.advance(5)
        // An expired entry is not there to be swapped.
        #expect(try !store.compareAndSwap("grants", "g", expected: ["v": 1], new: ["v": 2]))
        #expect(try store.compareAndSwap("grants", "g", expected: nil, new: ["v": 3]))
    }

    /// 8 threads on one handle: no increment is lost, and of the writers racing one
    /// compare-and-swap chain every generation is written exactly once.
    @Test(arguments: Backend.allCases)
    func eightThreadsCountAndSwap(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let store = try fixture.store { $0.encryptionKeys = [try! Fernet.generateKey()] }
        try store.put("chain", "c", ["generation": 0])
        let failures = Locked(0)
        let swaps = Locked(0)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<25 {
                do {
                    _ = try store.increment("limits", "shared", ttl: 60)
                    // Read, then swap in the next generation; a loser reads again.
                    while true {
                        let current = try #require(try store.get("chain", "c"))
                        let generation = current["generation"]?.numberValue ?? -1
                        let next: [String: JSONValue] = ["generation": .int(Int64(generation) + 1)]
                        if try store.compareAndSwap("chain", "c", expected: current, new: next) { break }
                    }
                    swaps.withLock { $0 += 1 }
                } catch { failures.withLock { $0 += 1 } }
            }
        }
        #expect(failures.withLock { $0 } == 0)
        #expect(try store.increment("limits", "shared", by: 0) == 200)
        #expect(try store.get("chain", "c") == ["generation": 200])
        #expect(swaps.withLock { $0 } == 200)
    }

    /// 8 threads race on one handle: every one-time code is taken exactly once, and of the
    /// writers of one key exactly one wins put_if_absent.
    @Test(arguments: Backend.allCases)
    func eightThreadsRace(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let store = try fixture.store { $0.encryptionKeys = [try! Fernet.generateKey()] }
        for index in 0..<40 { try store.put("codes", "code\(index)", ["n": .int(Int64(index))]) }
        let taken = Locked([Int64]())
        let winners = Locked(0)
        let failures = Locked(0)
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for index in 0..<40 {
                do {
                    if let value = try store.take("codes", "code\(index)") {
                        taken.withLock { $0.append(value["n"]!.numberValue.map { Int64($0) }!) }
                    }
                    if try store.putIfAbsent("race", "key\(index)", ["thread": .int(Int64(thread))]) {
                        winners.withLock { $0 += 1 }
                    }
                } catch { failures.withLock { $0 += 1 } }
            }
        }
        #expect(failures.withLock { $0 } == 0)
        #expect(taken.withLock { $0.sorted() } == (0..<40).map { Int64($0) })
        #expect(winners.withLock { $0 } == 40)
    }

    @Test(arguments: Backend.allCases)
    func encryptionAtRestAndItsFailures(backend: Backend) throws {
        let fixture = try Fixture(backend)
        let key = try Fernet.generateKey()
        let otherKey = try Fernet.generateKey()
        let sealed = try fixture.store { $0.encryptionKeys = [key] }
        try sealed.put("tokens", "t", ["access_token": "secret-upstream-token"])
        #expect(try sealed.get("tokens", "t") == ["access_token": "secret-upstream-token"])
        // What is stored is only the envelope (memory stores are per handle, so not for memory).
        if backend != .memory {
            #expect(outcome { try fixture.store().get("tokens", "t") } == .undecryptableValue)  // a store without keys
            let raw = try #require(try fixture.rawBackend().get("tokens", "t", now: fixture.clock.now)).value
            #expect(raw["__encryption_version__"] == 1)
            #expect(raw["__encrypted_data__"]?.stringValue?.contains("secret") == false)
            #expect(raw.count == 2)
            // Wrong key: undecryptable (error by default, or a miss).
            #expect(
                outcome { try fixture.store { $0.encryptionKeys = [otherKey] }.get("tokens", "t") }
                    == .undecryptableValue
            )
            #expect(
                try fixture.store {
                    $0.encryptionKeys = [otherKey]
                    $0.onUndecryptable = .miss
                }.get("tokens", "t") == nil
            )
            // Rotation: new key first, old key still decrypts.
            #expect(
                try fixture.store { $0.encryptionKeys = [otherKey, key] }.get("tokens", "t") == [
                    "access_token": "secret-upstream-token"
                ]
            )
            // A plaintext entry under an encrypting store.
            try fixture.store().put("tokens", "plain", ["access_token": "x"])
            #expect(outcome { try sealed.get("tokens", "plain") } == .plaintextValue)
            #expect(
                try fixture.store {
                    $0.encryptionKeys = [key]
                    $0.onPlaintext = .miss
                }.get("tokens", "plain") == nil
            )
            // A damaged envelope.
            try fixture.store().put(
                "tokens",
                "bad",
                ["__encrypted_data__": "!!not base64!!", "__encryption_version__": 1]
            )
            #expect(outcome { try sealed.get("tokens", "bad") } == .corruptedValue)
            try fixture.store().put("tokens", "bad2", ["__encrypted_data__": 7, "__encryption_version__": 1])
            #expect(outcome { try sealed.get("tokens", "bad2") } == .corruptedValue)
        }
        let small = try fixture.store {
            $0.encryptionKeys = [key]
            $0.maxValueBytes = 256
        }
        #expect(
            outcome { try small.put("tokens", "big", ["blob": .string(String(repeating: "x", count: 300))]) }
                == .tooLarge
        )
        #expect(
            outcome {
                try Store(
                    url: "memory://",
                    options: {
                        var o = Store.Options()
                        o.encryptionKeys = ["nope"]
                        return o
                    }()
                )
            } == .invalidConfig
        )
    }

    @Test func memoryIsBoundedPerCollection() throws {
        let clock = TestClock(1_000)
        var options = Store.Options()
        options.maxEntriesPerCollection = 3
        let store = try Store(url: "memory://", options: options, clock: clock.function)
        try store.put("c", "short", ["n": 0], ttl: 5)
        for index in 1...2 { try store.put("c", "k\(index)", ["n": .int(Int64(index))]) }
        // Full: a live entry is never evicted to make room; the new key is refused.
        #expect(outcome { try store.put("c", "k3", ["n": 3]) } == .overCapacity)
        #expect(outcome { try store.increment("c", "counter") } == .overCapacity)
        #expect(try store.keys("c") == ["k1", "k2", "short"])
        // Expired entries make room.
        clock.advance(10)
        try store.put("c", "k3", ["n": 3])
        #expect(try store.keys("c") == ["k1", "k2", "k3"])
        try store.put("other", "x", ["n": 9])  // another collection has its own bound
        #expect(try store.keys("c").count == 3 && store.keys("other") == ["x"])
        try store.put("c", "k3", ["n": 33])  // overwriting an existing key is always allowed
        #expect(try store.get("c", "k3") == ["n": 33])
        #expect(try store.compareAndSwap("c", "k2", expected: ["n": 2], new: ["n": 22]))
    }

    @Test func sqlitePurgesExpiredRowsAndSurvivesReopen() throws {
        let fixture = try Fixture(.sqlite)
        let store = try fixture.store()
        for index in 0..<300 { try store.put("c", "k\(index)", ["n": .int(Int64(index))], ttl: 1) }
        try store.put("c", "keep", ["n": -1])
        fixture.clock.advance(2)
        for index in 0..<300 { try store.put("d", "k\(index)", ["n": 1]) }  // passes a purge point
        let raw = try fixture.rawBackend()
        #expect(try raw.keys("c", now: 0) == ["keep"])  // even at time 0: the expired rows are gone
        #expect(try fixture.store().get("c", "keep") == ["n": -1])
    }

    @Test func badURLs() {
        for url in ["", "postgres://x", "sqlite:///", "redis://host:notaport/0", "redis://h:6379/x", "file:///tmp/x"] {
            #expect(outcome { try Store(url: url) } == .invalidConfig, "\(url)")
        }
    }

    @Test func redisURLParts() throws {
        #expect(
            try RedisBackend.endpoint(from: "redis://:p%40ss@10.0.0.1:6380/3")
                == RedisBackend.Endpoint(host: "10.0.0.1", port: 6380, database: 3, username: nil, password: "p@ss")
        )
        #expect(
            try RedisBackend.endpoint(from: "redis://user:pw@localhost")
                == RedisBackend.Endpoint(host: "localhost", port: 6379, database: 0, username: "user", password: "pw")
        )
        #expect(try RedisBackend.endpoint(from: "redis://[::1]:7000/1").host == "::1")
    }

    @Test func redisLayoutIsPyKeyValues() throws {
        let fixture = try Fixture(.redis)
        let store = try fixture.store()
        fixture.clock.now = 1_800_000_000.25
        try store.put("mcp-oauth-transactions", "txn1", ["client_id": "abc", "n": 1.5], ttl: 900)
        let raw = try RedisBackend(endpoint: RedisBackend.endpoint(from: fixture.url), timeout: 2)
        let entry = try #require(try raw.get("mcp-oauth-transactions", "txn1", now: 1_800_000_000))
        #expect(
            entry.raw
                == #"{"collection": "mcp-oauth-transactions", "created_at": "2027-01-15T08:00:00.250000+00:00", "expires_at": "2027-01-15T08:15:00.250000+00:00", "key": "txn1", "value": {"client_id": "abc", "n": 1.5}, "version": 1}"#
        )
    }

    @Test func redisServerDownAndBack() throws {
        let fixture = try Fixture(.redis)
        let store = try fixture.store { $0.timeout = 1 }
        try store.put("c", "k", ["v": 1])
        fixture.redis!.stop()
        #expect(outcome { try store.get("c", "k") } == .storeUnavailable)
        #expect(outcome { try store.put("c", "k2", ["v": 2]) } == .storeUnavailable)
        try fixture.redis!.start()
        #expect(try store.get("c", "k") == ["v": 1])  // reconnected; the append-only file kept the data
        try store.put("c", "k2", ["v": 2])
        #expect(try store.keys("c") == ["k", "k2"])
    }

    /// A frozen Redis (SIGSTOP) costs one store timeout per call, never two: the command whose
    /// reply timed out is not sent again (it may have run).
    @Test func aFrozenRedisCostsOneTimeoutPerCall() throws {
        let fixture = try Fixture(.redis)
        let store = try fixture.store { $0.timeout = 1 }
        try store.put("c", "k", ["v": 1])
        fixture.redis?.freeze()
        defer { fixture.redis?.thaw() }
        for operation in [
            { _ = try store.get("c", "k") }, { _ = try store.increment("n", "a") },
            { _ = try store.compareAndSwap("c", "k", expected: ["v": 1], new: ["v": 2]) },
        ] as [() throws -> Void] {
            let started = Date()
            #expect(outcome { try operation() } == .storeUnavailable)
            let elapsed = Date().timeIntervalSince(started)
            #expect(elapsed >= 0.9 && elapsed < 1.6, "\(elapsed) s for a 1 s timeout")
        }
        fixture.redis?.thaw()
        #expect(try store.get("c", "k") == ["v": 1], "the compare-and-swap never ran")
    }

    @Test func isoTimestamps() {
        #expect(ISOTime.format(0) == "1970-01-01T00:00:00+00:00")
        #expect(ISOTime.format(1_800_000_000.5) == "2027-01-15T08:00:00.500000+00:00")
        #expect(ISOTime.format(951_782_400) == "2000-02-29T00:00:00+00:00")
        #expect(ISOTime.parse("2027-01-15T08:00:00.500000+00:00") == 1_800_000_000.5)
        #expect(ISOTime.parse("2027-01-15T10:00:00+02:00") == 1_800_000_000)
        #expect(ISOTime.parse("2027-01-15T08:00:00Z") == 1_800_000_000)
        #expect(ISOTime.parse("2027-01-15") == nil)
        #expect(ISOTime.parse("2027-13-15T08:00:00+00:00") == nil)
    }
}
