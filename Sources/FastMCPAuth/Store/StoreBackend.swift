/// One stored entry as a backend returns it: the value object, its expiry, and the exact
/// stored text that compare-and-delete matches against.
struct StoredEntry {
    let value: [String: JSONValue]
    let expiresAt: Double?
    let raw: String
}

/// Seconds left on an entry.
public enum TimeToLive: Equatable, Sendable {
    case missing
    case never
    case seconds(Double)
}

/// A storage engine under the Store: it keeps value objects per collection and key, with an
/// optional expiry, and makes each operation atomic (across processes for SQLite and Redis).
/// Expired entries are never returned. `now` is the store's clock.
protocol StoreBackend: AnyObject, Sendable {
    /// Stores `valueJSON` (a JSON object's text); with `onlyIfAbsent`, only when no live entry
    /// exists. Returns whether it stored.
    func put(
        _ collection: String,
        _ key: String,
        valueJSON: String,
        value: [String: JSONValue],
        ttl: Double?,
        onlyIfAbsent: Bool,
        now: Double
    ) throws -> Bool
    func get(_ collection: String, _ key: String, now: Double) throws -> StoredEntry?
    /// Get and delete in one atomic step.
    func take(_ collection: String, _ key: String, now: Double) throws -> StoredEntry?
    func delete(_ collection: String, _ key: String) throws -> Bool
    /// Deletes only while the stored text is still `raw`.
    func compareAndDelete(_ collection: String, _ key: String, raw: String) throws -> Bool
    /// Replaces the entry only while its stored text is still `raw` and it is live; returns
    /// whether it did.
    func compareAndSwap(
        _ collection: String,
        _ key: String,
        raw: String,
        valueJSON: String,
        value: [String: JSONValue],
        ttl: Double?,
        now: Double
    ) throws -> Bool
    /// Adds `delta` to the counter entry `{"count": n}` in one atomic step and returns the new
    /// count. Without a live entry the counter starts at `delta` and expires after `ttl`; later
    /// increments keep that expiry (a fixed window). An entry that is not a counter is
    /// corrupted_value.
    func increment(_ collection: String, _ key: String, delta: Int64, ttl: Double?, now: Double) throws -> Int64
    func ttl(_ collection: String, _ key: String, now: Double) throws -> TimeToLive
    func keys(_ collection: String, now: Double) throws -> [String]
    func deleteCollection(_ collection: String) throws -> Int
}

/// The value of a counter entry, or nil when the object is not one.
func counterValue(_ value: [String: JSONValue]) -> Int64? {
    guard value.count == 1, case .int(let count)? = value["count"] else { return nil }
    return count
}

/// The counter entry's JSON text.
func counterJSON(_ count: Int64) -> String { "{\"count\":\(count)}" }

/// Parses a stored value object's text; anything else is corruption.
func parseStoredObject(_ text: String) throws -> [String: JSONValue] {
    guard let value = try? JSONValue.parse(text), let object = value.objectValue else {
        throw AuthError(.corruptedValue, "a stored value is not a JSON object")
    }
    return object
}
