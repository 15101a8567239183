import Synchronization

/// `memory://`: a process-local store, bounded per collection. When a collection is full, its
/// expired entries go; a live entry is never evicted to make room (a flood of strangers must
/// not push out registered clients, grants or pending sign-ins): the write is over_capacity.
final class MemoryBackend: StoreBackend, Sendable {
    private struct Entry {
        let valueJSON: String
        /// Parsed once when written: reads are the hot path.
        let value: [String: JSONValue]
        let expiresAt: Double?
        let sequence: UInt64
    }

    private struct State {
        var collections: [String: [String: Entry]] = [:]
        var sequence: UInt64 = 0
        /// When each full collection was last swept for expired entries (a sweep is O(n): at
        /// most one a second, so a flood against a full collection costs no more than that).
        var lastSweep: [String: Double] = [:]
    }

    private let state = Locked(State())
    let maxEntriesPerCollection: Int

    init(maxEntriesPerCollection: Int) { self.maxEntriesPerCollection = maxEntriesPerCollection }

    private static func live(_ entry: Entry?, now: Double) -> Entry? {
        guard let entry else { return nil }
        if let expiresAt = entry.expiresAt, expiresAt <= now { return nil }
        return entry
    }

    private static func stored(_ entry: Entry) -> StoredEntry {
        StoredEntry(value: entry.value, expiresAt: entry.expiresAt, raw: entry.valueJSON)
    }

    /// Before a new key goes into a full collection: the expired entries go; if it is still full,
    /// over_capacity.
    private static func makeRoom(_ state: inout State, _ collection: String, now: Double, maxEntries: Int) throws {
        guard let entries = state.collections[collection], entries.count >= maxEntries else { return }
        if now - (state.lastSweep[collection] ?? -.infinity) >= 1 {
            state.lastSweep[collection] = now
            state.collections[collection] = entries.filter { live($0.value, now: now) != nil }
        }
        if (state.collections[collection]?.count ?? 0) >= maxEntries {
            throw AuthError(.overCapacity, "the collection holds its maximum of \(maxEntries) entries")
        }
    }

    func put(
        _ collection: String,
        _ key: String,
        valueJSON: String,
        value: [String: JSONValue],
        ttl: Double?,
        onlyIfAbsent: Bool,
        now: Double
    ) throws -> Bool {
        try state.withLock { state in
            // Modified in place: copying a collection out and back would cost O(entries) per put.
            if onlyIfAbsent, Self.live(state.collections[collection]?[key], now: now) != nil { return false }
            if state.collections[collection]?[key] == nil {
                try Self.makeRoom(&state, collection, now: now, maxEntries: maxEntriesPerCollection)
            }
            state.sequence += 1
            state.collections[collection, default: [:]][key] = Entry(
                valueJSON: valueJSON,
                value: value,
                expiresAt: ttl.map { now + $0 },
                sequence: state.sequence
            )
            return true
        }
    }

    func get(_ collection: String, _ key: String, now: Double) throws -> StoredEntry? {
        guard let entry = state.withLock({ Self.live($0.collections[collection]?[key], now: now) }) else { return nil }
        return Self.stored(entry)
    }

    func take(_ collection: String, _ key: String, now: Double) throws -> StoredEntry? {
        let entry = state.withLock { state -> Entry? in
            guard let entry = state.collections[collection]?.removeValue(forKey: key) else { return nil }
            return Self.live(entry, now: now)
        }
        return entry.map(Self.stored)
    }

    func delete(_ collection: String, _ key: String) throws -> Bool {
        state.withLock { $0.collections[collection]?.removeValue(forKey: key) != nil }
    }

    func compareAndDelete(_ collection: String, _ key: String, raw: String) throws -> Bool {
        state.withLock { state in
            guard state.collections[collection]?[key]?.valueJSON == raw else { return false }
            state.collections[collection]?[key] = nil
            return true
        }
    }

    func compareAndSwap(
        _ collection: String,
        _ key: String,
        raw: String,
        valueJSON: String,
        value: [String: JSONValue],
        ttl: Double?,
        now: Double
    ) throws -> Bool {
        state.withLock { state in
            guard let current = Self.live(state.collections[collection]?[key], now: now), current.valueJSON == raw
            else {
                return false
            }
            state.sequence += 1
            state.collections[collection]?[key] = Entry(
                valueJSON: valueJSON,
                value: value,
                expiresAt: ttl.map { now + $0 },
                sequence: state.sequence
            )
            return true
        }
    }

    func increment(_ collection: String, _ key: String, delta: Int64, ttl: Double?, now: Double) throws -> Int64 {
        try state.withLock { state in
            var count = delta
            var expiresAt = ttl.map { now + $0 }
            if let current = Self.live(state.collections[collection]?[key], now: now) {
                guard let previous = counterValue(current.value) else {
                    throw AuthError(.corruptedValue, "the entry is not a counter")
                }
                let (sum, overflow) = previous.addingReportingOverflow(delta)
                guard !overflow else { throw AuthError(.invalidArgument, "the counter would overflow") }
                count = sum
                expiresAt = current.expiresAt
            } else if state.collections[collection]?[key] == nil {
                try Self.makeRoom(&state, collection, now: now, maxEntries: maxEntriesPerCollection)
            }
            state.sequence += 1
            state.collections[collection, default: [:]][key] = Entry(
                valueJSON: counterJSON(count),
                value: ["count": .int(count)],
                expiresAt: expiresAt,
                sequence: state.sequence
            )
            return count
        }
    }

    func ttl(_ collection: String, _ key: String, now: Double) throws -> TimeToLive {
        guard let entry = state.withLock({ Self.live($0.collections[collection]?[key], now: now) }) else {
            return .missing
        }
        return entry.expiresAt.map { .seconds($0 - now) } ?? .never
    }

    func keys(_ collection: String, now: Double) throws -> [String] {
        state.withLock { state in
            (state.collections[collection] ?? [:]).filter { Self.live($0.value, now: now) != nil }.keys.sorted()
        }
    }

    func deleteCollection(_ collection: String) throws -> Int {
        state.withLock { $0.collections.removeValue(forKey: collection)?.count ?? 0 }
    }
}
