import CSQLite
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `sqlite:///relative/path.db` or `sqlite:////absolute/path.db` (SQLAlchemy's convention): a
/// persistent store in WAL mode, safe for several processes on one file. Every operation is
/// one statement or one transaction, so a crash leaves either the old or the new value.
final class SQLiteBackend: StoreBackend, Sendable {
    private let database: Locked<OpaquePointer>
    private let operations = Locked(0)

    init(path: String, busyTimeoutMilliseconds: Int32) throws {
        try SQLiteBackend.prepareParent(of: path)
        var handle: OpaquePointer? = nil
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX
        let created = access(path, F_OK) != 0
        guard sqlite3_open_v2(path, &handle, flags, nil) == SQLITE_OK, let handle else {
            if let handle { sqlite3_close_v2(handle) }
            throw AuthError(.storeUnavailable, "cannot open the SQLite database")
        }
        if created { chmod(path, 0o600) }  // tokens live here: owner only
        sqlite3_busy_timeout(handle, busyTimeoutMilliseconds)
        database = Locked(handle)
        try execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA synchronous=FULL")
        try execute(
            """
            CREATE TABLE IF NOT EXISTS fastmcpauth_entries (
                collection TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                created_at REAL NOT NULL, expires_at REAL,
                PRIMARY KEY (collection, key)) WITHOUT ROWID
            """
        )
        try execute(
            "CREATE INDEX IF NOT EXISTS fastmcpauth_entries_expiry ON fastmcpauth_entries (expires_at) WHERE expires_at IS NOT NULL"
        )
    }

    deinit { database.withLock { _ = sqlite3_close_v2($0) } }

    /// Creates a missing parent directory with mode 0700.
    private static func prepareParent(of path: String) throws {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        let parent = String(path[..<slash])
        if access(parent, F_OK) != 0, mkdir(parent, 0o700) != 0 {
            throw AuthError(.storeUnavailable, "cannot create the directory for the SQLite database")
        }
    }

    enum Binding {
        case text(String)
        case real(Double)
        case integer(Int64)
        case null
    }

    /// Runs one statement; `row` sees each result row. Busy and locked states become
    /// store_unavailable after the busy timeout.
    @discardableResult
    private func run(_ sql: String, _ bindings: [Binding] = [], row: ((OpaquePointer) -> Void)? = nil) throws -> Int {
        try database.withLock { db in
            var statement: OpaquePointer? = nil
            guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
                throw AuthError(.storeUnavailable, "SQLite: \(String(cString: sqlite3_errmsg(db)))")
            }
            defer { sqlite3_finalize(statement) }
            for (index, binding) in bindings.enumerated() {
                let position = Int32(index + 1)
                switch binding {
                case .text(let text): sqlite3_bind_text(statement, position, text, -1, fma_sqlite_transient())
                case .real(let value): sqlite3_bind_double(statement, position, value)
                case .integer(let value): sqlite3_bind_int64(statement, position, value)
                case .null: sqlite3_bind_null(statement, position)
                }
            }
            while true {
                let step = sqlite3_step(statement)
                if step == SQLITE_ROW {
                    row?(statement)
                    continue
                }
                if step == SQLITE_DONE { break }
                throw AuthError(.storeUnavailable, "SQLite: \(String(cString: sqlite3_errmsg(db)))")
            }
            return Int(sqlite3_changes(db))
        }
    }

    private func execute(_ sql: String) throws { try run(sql) }

    private static func text(_ statement: OpaquePointer, _ column: Int32) -> String? {
        guard let pointer = sqlite3_column_text(statement, column) else { return nil }
        return String(cString: pointer)
    }

    private static func optionalReal(_ statement: OpaquePointer, _ column: Int32) -> Double? {
        sqlite3_column_type(statement, column) == SQLITE_NULL ? nil : sqlite3_column_double(statement, column)
    }

    /// Deletes expired rows now and then, so the file does not grow with dead entries.
    private func purgeOccasionally(now: Double) throws {
        let due = operations.withLock { count -> Bool in
            count += 1
            return count % 256 == 1
        }
        if due {
            try run("DELETE FROM fastmcpauth_entries WHERE expires_at IS NOT NULL AND expires_at <= ?", [.real(now)])
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
        try purgeOccasionally(now: now)
        let expiresAt: Binding = ttl.map { .real(now + $0) } ?? .null
        let values: [Binding] = [.text(collection), .text(key), .text(valueJSON), .real(now), expiresAt]
        if onlyIfAbsent {
            // One statement: insert, or replace only a row that has already expired.
            let changed = try run(
                """
                INSERT INTO fastmcpauth_entries (collection, key, value, created_at, expires_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (collection, key) DO UPDATE SET value = excluded.value, created_at = excluded.created_at,
                    expires_at = excluded.expires_at
                WHERE fastmcpauth_entries.expires_at IS NOT NULL AND fastmcpauth_entries.expires_at <= ?
                """,
                values + [.real(now)]
            )
            return changed == 1
        }
        try run(
            "INSERT OR REPLACE INTO fastmcpauth_entries (collection, key, value, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
            values
        )
        return true
    }

    private func entry(_ statement: OpaquePointer) -> (String?, Double?) {
        (Self.text(statement, 0), Self.optionalReal(statement, 1))
    }

    private func live(_ row: (String?, Double?)?, now: Double) throws -> StoredEntry? {
        guard let row, let raw = row.0 else { return nil }
        if let expiresAt = row.1, expiresAt <= now { return nil }
        return StoredEntry(value: try parseStoredObject(raw), expiresAt: row.1, raw: raw)
    }

    func get(_ collection: String, _ key: String, now: Double) throws -> StoredEntry? {
        var found: (String?, Double?)? = nil
        try run(
            "SELECT value, expires_at FROM fastmcpauth_entries WHERE collection = ? AND key = ?",
            [.text(collection), .text(key)]
        ) { found = self.entry($0) }
        return try live(found, now: now)
    }

    func take(_ collection: String, _ key: String, now: Double) throws -> StoredEntry? {
        var found: (String?, Double?)? = nil
        try run(
            "DELETE FROM fastmcpauth_entries WHERE collection = ? AND key = ? RETURNING value, expires_at",
            [.text(collection), .text(key)]
        ) { found = self.entry($0) }
        return try live(found, now: now)
    }

    func delete(_ collection: String, _ key: String) throws -> Bool {
        try run("DELETE FROM fastmcpauth_entries WHERE collection = ? AND key = ?", [.text(collection), .text(key)])
            == 1
    }

    func compareAndDelete(_ collection: String, _ key: String, raw: String) throws -> Bool {
        try run(
            "DELETE FROM fastmcpauth_entries WHERE collection = ? AND key = ? AND value = ?",
            [.text(collection), .text(key), .text(raw)]
        ) == 1
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
        let expiresAt: Binding = ttl.map { .real(now + $0) } ?? .null
        return try run(
            """
            UPDATE fastmcpauth_entries SET value = ?, created_at = ?, expires_at = ?
            WHERE collection = ? AND key = ? AND value = ? AND (expires_at IS NULL OR expires_at > ?)
            """,
            [.text(valueJSON), .real(now), expiresAt, .text(collection), .text(key), .text(raw), .real(now)]
        ) == 1
    }

    func increment(_ collection: String, _ key: String, delta: Int64, ttl: Double?, now: Double) throws -> Int64 {
        try purgeOccasionally(now: now)
        let expiresAt: Binding = ttl.map { .real(now + $0) } ?? .null
        var result: String? = nil
        // One statement: a new (or expired) entry starts at delta with a new expiry; a live
        // counter adds delta and keeps its expiry; anything else is left alone (no row back).
        try run(
            """
            INSERT INTO fastmcpauth_entries AS e (collection, key, value, created_at, expires_at)
            VALUES (?1, ?2, json_object('count', ?3), ?4, ?5)
            ON CONFLICT (collection, key) DO UPDATE SET
                value = CASE WHEN e.expires_at IS NOT NULL AND e.expires_at <= ?4 THEN excluded.value
                    ELSE json_object('count', json_extract(e.value, '$.count') + ?3) END,
                created_at = CASE WHEN e.expires_at IS NOT NULL AND e.expires_at <= ?4 THEN ?4 ELSE e.created_at END,
                expires_at = CASE WHEN e.expires_at IS NOT NULL AND e.expires_at <= ?4 THEN ?5 ELSE e.expires_at END
            WHERE (e.expires_at IS NOT NULL AND e.expires_at <= ?4)
                OR (json_valid(e.value) AND json_type(e.value, '$.count') = 'integer'
                    AND (SELECT count(*) FROM json_each(e.value) AS member) = 1)
            RETURNING value
            """,
            [.text(collection), .text(key), .integer(delta), .real(now), expiresAt]
        ) { result = Self.text($0, 0) }
        guard let result, let count = counterValue(try parseStoredObject(result)) else {
            throw AuthError(.corruptedValue, "the entry is not a counter")
        }
        return count
    }

    func ttl(_ collection: String, _ key: String, now: Double) throws -> TimeToLive {
        guard let entry = try get(collection, key, now: now) else { return .missing }
        return entry.expiresAt.map { .seconds($0 - now) } ?? .never
    }

    func keys(_ collection: String, now: Double) throws -> [String] {
        var keys = [String]()
        try run(
            "SELECT key FROM fastmcpauth_entries WHERE collection = ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY key",
            [.text(collection), .real(now)]
        ) { statement in
            if let key = Self.text(statement, 0) { keys.append(key) }
        }
        return keys
    }

    func deleteCollection(_ collection: String) throws -> Int {
        try run("DELETE FROM fastmcpauth_entries WHERE collection = ?", [.text(collection)])
    }
}
