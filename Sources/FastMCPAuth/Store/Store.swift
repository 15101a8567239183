import Synchronization

/// A collection-scoped key-value store of JSON objects, encrypted at rest with Fernet the way
/// py-key-value's FernetEncryptionWrapper does it (so a Python FastMCP server and ours can share
/// one Redis). Backends by URL: `memory://`, `sqlite:///path.db`, `redis://host:port/db`.
/// Thread-safe; operations are atomic per entry, across processes for SQLite and Redis.
public final class Store: Sendable {
    public enum Mode: String, Sendable { case error, miss }

    public struct Options: Sendable {
        /// Fernet keys (first encrypts, any decrypts). Empty: values are stored as they are.
        public var encryptionKeys: [String] = []
        /// What reading an unencrypted entry does when encryption is configured.
        public var onPlaintext: Mode = .error
        /// What reading an entry that no key decrypts does.
        public var onUndecryptable: Mode = .error
        /// Largest stored value (its JSON, after encryption), in bytes.
        public var maxValueBytes = 1 << 20
        /// memory:// only: entries per collection before the oldest are evicted.
        public var maxEntriesPerCollection = 100_000
        /// Seconds for connecting and for each Redis command; SQLite's busy timeout.
        public var timeout: Double = 5
        public init() {}

        static let knownKeys: Set<String> = [
            "encryption_keys", "on_plaintext", "on_undecryptable", "max_value_bytes",
            "max_entries_per_collection", "timeout",
        ]

        /// The JSON options of the C API and bindings (keys as the Python keyword names).
        public init(json: JSONValue) throws {
            let reader = try ConfigReader(json: json, known: Self.knownKeys, what: "store options")
            encryptionKeys = try reader.stringList("encryption_keys") ?? []
            for (key, keyPath) in [
                ("on_plaintext", \Options.onPlaintext), ("on_undecryptable", \Options.onUndecryptable),
            ] {
                if let text = try reader.string(key) {
                    guard let mode = Mode(rawValue: text) else {
                        throw AuthError(.invalidConfig, "\(key): must be \"error\" or \"miss\"")
                    }
                    self[keyPath: keyPath] = mode
                }
            }
            maxValueBytes = try reader.count("max_value_bytes", minimum: 64) ?? maxValueBytes
            maxEntriesPerCollection =
                try reader.count("max_entries_per_collection", minimum: 1) ?? maxEntriesPerCollection
            timeout = try reader.timeout("timeout") ?? timeout
        }
    }

    public let url: String
    private let backend: StoreBackend
    private let fernet: Fernet?
    public let options: Options
    private let clock: @Sendable () -> Double

    /// Collection holding leases; values are {"holder": token}.
    static let leaseCollection = "__fastmcpauth_leases__"

    public init(
        url: String,
        options: Options = Options(),
        clock: @escaping @Sendable () -> Double = JWTVerifier.systemClock
    ) throws {
        self.url = url
        self.options = options
        self.clock = clock
        do {
            fernet = options.encryptionKeys.isEmpty ? nil : try Fernet(keys: options.encryptionKeys)
        } catch let error as AuthError {
            throw AuthError(.invalidConfig, "encryption_keys: \(error.message)")
        }
        if url == "memory://" || url == "memory:" {
            backend = MemoryBackend(maxEntriesPerCollection: options.maxEntriesPerCollection)
        } else if url.hasPrefix("sqlite:///") {
            let path = String(url.dropFirst("sqlite:///".count))
            guard !path.isEmpty, !path.contains("\0"), !path.contains("?") else {
                throw AuthError(.invalidConfig, "store url: sqlite:///relative/path.db or sqlite:////absolute/path.db")
            }
            backend = try SQLiteBackend(
                path: path,
                busyTimeoutMilliseconds: Int32(min(options.timeout * 1000, 600_000))
            )
        } else if url.hasPrefix("redis://") {
            backend = RedisBackend(endpoint: try RedisBackend.endpoint(from: url), timeout: options.timeout)
        } else {
            throw AuthError(.invalidConfig, "store url: use memory://, sqlite:///path.db or redis://host:port/db")
        }
    }

    private static func checkName(_ text: String, _ what: String) throws {
        guard !text.isEmpty, text.utf8.count <= 1024, !text.utf8.contains(0) else {
            throw AuthError(.invalidArgument, "\(what) must be 1 to 1024 bytes without NUL")
        }
    }

    /// The longest expiry a store entry may have.
    public static let maxTTL: Double = 10 * 365 * 86400

    private static func checkTTL(_ ttl: Double?) throws {
        if let ttl, !(ttl > 0 && ttl <= maxTTL) {
            throw AuthError(.invalidArgument, "ttl must be a number of seconds above 0 and at most 10 years")
        }
    }

    // MARK: - Encryption wrapper

    /// The stored form of `value`: the encryption envelope when keys are configured.
    /// The stored form of a value (encrypted when keys are configured): its JSON text and object.
    private func stored(_ value: [String: JSONValue]) throws -> (text: String, object: [String: JSONValue]) {
        var text = JSONValue.object(value).serialized(.pythonCompact)
        var object = value
        if let fernet {
            let token = Base64.encode(Array(try fernet.encrypt(Array(text.utf8)).utf8), alphabet: .standard)
            object = ["__encrypted_data__": .string(token), "__encryption_version__": 1]
            text = JSONValue.object(object).serialized(.pythonCompact)
            remember(token, value)
        }
        guard text.utf8.count <= options.maxValueBytes else {
            throw AuthError(.tooLarge, "the value is larger than max_value_bytes (\(options.maxValueBytes))")
        }
        return (text, object)
    }

    /// Decrypted values by their ciphertext: a ciphertext has exactly one plaintext, so this is
    /// only a cost saving (hot entries such as token mappings are read on every request); what is
    /// deleted or expired in the backend is never found, so nothing stale is served.
    private let decrypted = Locked<[String: [String: JSONValue]]>([:])
    static let decryptedCacheSize = 4096

    private func remember(_ ciphertext: String, _ value: [String: JSONValue]) {
        decrypted.withLock { cache in
            if cache.count >= Self.decryptedCacheSize { cache.removeAll(keepingCapacity: true) }
            cache[ciphertext] = value
        }
    }

    /// The value of a stored entry, decrypted; nil when a mode says "miss".
    private func value(of entry: StoredEntry) throws -> [String: JSONValue]? {
        let stored = entry.value
        if fernet != nil, let data = stored["__encrypted_data__"]?.stringValue,
            let hit = decrypted.withLock({ $0[data] })
        {
            return hit
        }
        guard let encrypted = stored["__encrypted_data__"] else {
            if fernet == nil { return stored }
            if options.onPlaintext == .miss { return nil }
            throw AuthError(.plaintextValue, "the entry is not encrypted")
        }
        guard case .int(let version)? = stored["__encryption_version__"], let data = encrypted.stringValue else {
            throw AuthError(.corruptedValue, "the encryption envelope is malformed")
        }
        guard let fernet, version <= 1 else { return try undecryptable("no key for this entry's encryption") }
        guard let tokenBytes = Base64.decode(data, alphabet: .standard) else {
            throw AuthError(.corruptedValue, "the encrypted data is not base64")
        }
        let plaintext: [UInt8]
        do {
            plaintext = try fernet.decrypt(String(decoding: tokenBytes, as: UTF8.self))
        } catch let error as AuthError where error.code == .badSignature {
            return try undecryptable("no configured key decrypts the entry")
        } catch {
            throw AuthError(.corruptedValue, "the encrypted data is not a valid Fernet token")
        }
        guard let object = try? JSONValue.parse(plaintext).objectValue else {
            throw AuthError(.corruptedValue, "the decrypted value is not a JSON object")
        }
        remember(data, object)
        return object
    }

    private func undecryptable(_ message: String) throws -> [String: JSONValue]? {
        if options.onUndecryptable == .miss { return nil }
        throw AuthError(.undecryptableValue, message)
    }

    /// A stored value's text as a backend would hand it over (plain, or the encryption
    /// envelope), decoded and decrypted: what every read does after the backend (fuzzed).
    package func decodeStored(_ text: String) throws -> [String: JSONValue]? {
        try value(of: StoredEntry(value: try parseStoredObject(text), expiresAt: nil, raw: text))
    }

    /// A Redis entry's text (py-key-value's envelope) decoded as the Redis backend reads it.
    package static func decodeRedisEnvelope(_ text: String, now: Double) throws -> [String: JSONValue]? {
        try RedisBackend.entry(raw: text, now: now)?.value
    }

    // MARK: - Operations

    public func put(_ collection: String, _ key: String, _ value: [String: JSONValue], ttl: Double? = nil) throws {
        try Self.checkName(collection, "collection")
        try Self.checkName(key, "key")
        try Self.checkTTL(ttl)
        let entry = try stored(value)
        _ = try backend.put(
            collection,
            key,
            valueJSON: entry.text,
            value: entry.object,
            ttl: ttl,
            onlyIfAbsent: false,
            now: clock()
        )
    }

    /// Stores only when no live entry exists; returns whether it stored.
    public func putIfAbsent(
        _ collection: String,
        _ key: String,
        _ value: [String: JSONValue],
        ttl: Double? = nil
    ) throws -> Bool {
        try Self.checkName(collection, "collection")
        try Self.checkName(key, "key")
        try Self.checkTTL(ttl)
        let entry = try stored(value)
        return try backend.put(
            collection,
            key,
            valueJSON: entry.text,
            value: entry.object,
            ttl: ttl,
            onlyIfAbsent: true,
            now: clock()
        )
    }

    public func get(_ collection: String, _ key: String) throws -> [String: JSONValue]? {
        try Self.checkName(collection, "collection")
        try Self.checkName(key, "key")
        return try backend.get(collection, key, now: clock()).flatMap(value(of:))
    }

    /// Get and delete in one atomic step (one-time codes): of concurrent callers, one gets it.
    public func take(_ collection: String, _ key: String) throws -> [String: JSONValue]? {
        try Self.checkName(collection, "collection")
        try Self.checkName(key, "key")
        return try backend.take(collection, key, now: clock()).flatMap(value(of:))
    }

    @discardableResult
    public func delete(_ collection: String, _ key: String) throws -> Bool {
        try Self.checkName(collection, "collection")
        try Self.checkName(key, "key")
        return try backend.delete(collection, key)
    }

    /// Deletes only if the entry still holds `expected` (as read before); returns whether it did.
    public func compareAndDelete(_ collection: String, _ key: String, expected: [String: JSONValue]) throws -> Bool {
        try Self.checkName(collection, "collection")
        try Self.checkName(key, "key")
        guard let entry = try backend.get(collection, key, now: clock()), try value(of: entry) == expected else {
            return false
        }
        return try backend.compareAndDelete(collection, key, raw: entry.raw)
    }

    /// Replaces the entry with `new` only while it still holds `expected` (as read before;
    /// nil: only while no live entry exists), in one atomic step; returns whether it did.
    public func compareAndSwap(
        _ collection: String,
        _ key: String,
        expected: [String: JSONValue]?,
        new: [String: JSONValue],
        ttl: Double? = nil
    ) throws -> Bool {
        guard let expected else { return try putIfAbsent(collection, key, new, ttl: ttl) }
        try Self.checkName(collection, "collection")
        try Self.checkName(key, "key")
        try Self.checkTTL(ttl)
        let now = clock()
        guard let entry = try backend.get(collection, key, now: now), try value(of: entry) == expected else {
            return false
        }
        let replacement = try stored(new)
        return try backend.compareAndSwap(
            collection,
            key,
            raw: entry.raw,
            valueJSON: replacement.text,
            value: replacement.object,
            ttl: ttl,
            now: now
        )
    }

    /// Adds `delta` to the counter `key` in one atomic step and returns the new count. A missing
    /// or expired counter starts at `delta` and expires `ttl` seconds later; increments keep
    /// that expiry, so a counter counts one fixed window. Counters hold only a number and are
    /// stored as plain `{"count": n}`, never encrypted: read one with a delta of 0.
    public func increment(
        _ collection: String,
        _ key: String,
        by delta: Int64 = 1,
        ttl: Double? = nil
    ) throws
        -> Int64
    {
        try Self.checkName(collection, "collection")
        try Self.checkName(key, "key")
        try Self.checkTTL(ttl)
        return try backend.increment(collection, key, delta: delta, ttl: ttl, now: clock())
    }

    public func ttl(_ collection: String, _ key: String) throws -> TimeToLive {
        try Self.checkName(collection, "collection")
        try Self.checkName(key, "key")
        return try backend.ttl(collection, key, now: clock())
    }

    public func keys(_ collection: String) throws -> [String] {
        try Self.checkName(collection, "collection")
        return try backend.keys(collection, now: clock())
    }

    @discardableResult
    public func deleteCollection(_ collection: String) throws -> Int {
        try Self.checkName(collection, "collection")
        return try backend.deleteCollection(collection)
    }

    // MARK: - Leases

    /// Acquires the lease `name` for `ttl` seconds: returns its holder token, or nil while
    /// someone else holds it. Leases expire by themselves (a crashed holder frees it).
    public func acquireLease(_ name: String, ttl: Double) throws -> String? {
        try Self.checkTTL(ttl)
        let holder = Base64URL.encode(try OpenSSL.randomBytes(16))
        return try putIfAbsent(Self.leaseCollection, name, ["holder": .string(holder)], ttl: ttl) ? holder : nil
    }

    /// Releases the lease if `holder` still holds it; returns whether it did.
    public func releaseLease(_ name: String, holder: String) throws -> Bool {
        try compareAndDelete(Self.leaseCollection, name, expected: ["holder": .string(holder)])
    }
}
