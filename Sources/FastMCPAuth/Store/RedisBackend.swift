import CHiredis
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `redis://[[user]:password@]host[:port][/db]`, laid out as py-key-value's RedisStore: key
/// `"{collection}::{key}"`, value the JSON envelope {collection, created_at, expires_at, key,
/// value, version} with sorted keys, server-side expiry. Connections are pooled and re-made
/// after the server restarts; atomic operations run as Lua scripts.
final class RedisBackend: StoreBackend, Sendable {
    struct Endpoint: Equatable {
        var host = "127.0.0.1"
        var port: Int32 = 6379
        var database = 0
        var username: String? = nil
        var password: String? = nil
    }

    private let endpoint: Endpoint
    private let timeout: Double
    /// An idle hiredis connection in the pool.
    private struct Connection: @unchecked Sendable {  // One thread at a time uses it: taken out, used, put back.
        let context: UnsafeMutablePointer<redisContext>
    }

    private let idle = Locked<[Connection]>([])

    init(endpoint: Endpoint, timeout: Double) {
        self.endpoint = endpoint
        self.timeout = timeout
    }

    deinit { idle.withLock { connections in for connection in connections { redisFree(connection.context) } } }

    /// Parses the URL's parts (the scheme is already checked by the caller).
    static func endpoint(from url: String) throws -> Endpoint {
        var rest = Substring(url.dropFirst("redis://".count))
        var endpoint = Endpoint()
        if let slash = rest.firstIndex(of: "/") {
            let db = rest[rest.index(after: slash)...]
            if !db.isEmpty {
                guard let number = Int(db), number >= 0 else {
                    throw AuthError(.invalidConfig, "store url: the Redis database must be a number")
                }
                endpoint.database = number
            }
            rest = rest[..<slash]
        }
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                let user = String(credentials[..<colon])
                endpoint.username = user.isEmpty ? nil : percentDecoded(user)
                endpoint.password = percentDecoded(String(credentials[credentials.index(after: colon)...]))
            } else if !credentials.isEmpty {
                endpoint.password = percentDecoded(String(credentials))
            }
        }
        if let colon = rest.lastIndex(of: ":"), !rest.hasSuffix("]") {
            guard let port = Int32(rest[rest.index(after: colon)...]), port > 0, port < 65536 else {
                throw AuthError(.invalidConfig, "store url: the Redis port is not a number from 1 to 65535")
            }
            endpoint.port = port
            rest = rest[..<colon]
        }
        if rest.hasPrefix("["), rest.hasSuffix("]") { rest = rest.dropFirst().dropLast() }
        if !rest.isEmpty { endpoint.host = String(rest) }
        return endpoint
    }

    private static func percentDecoded(_ text: String) -> String {
        var bytes = [UInt8]()
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
                let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: - Connections

    /// A timeval of `seconds` (at least a millisecond, at most an hour).
    private static func timeval(_ seconds: Double) -> timeval {
        let bounded = seconds.isFinite ? min(max(seconds, 0.001), 3600) : 5
        let whole = Int(bounded)
        return CHiredis.timeval(tv_sec: whole, tv_usec: Int((bounded - Double(whole)) * 1_000_000))
    }

    /// Seconds on a monotonic clock (deadlines must not move with the wall clock).
    private static func monotonicNow() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    private func connect(within seconds: Double) throws -> UnsafeMutablePointer<redisContext> {
        let timeval = Self.timeval(seconds)
        guard let context = redisConnectWithTimeout(endpoint.host, endpoint.port, timeval) else {
            throw AuthError(.storeUnavailable, "cannot allocate a Redis connection")
        }
        if context.pointee.err != 0 {
            redisFree(context)
            throw AuthError(.storeUnavailable, "cannot connect to Redis at \(endpoint.host):\(endpoint.port)")
        }
        _ = redisSetTimeout(context, timeval)
        do {
            if let password = endpoint.password {
                let auth = endpoint.username.map { ["AUTH", $0, password] } ?? ["AUTH", password]
                let reply = try command(context, auth)
                if case .error = reply { throw AuthError(.storeUnavailable, "Redis refused the credentials") }
            }
            if endpoint.database != 0, case .error = try command(context, ["SELECT", String(endpoint.database)]) {
                throw AuthError(.storeUnavailable, "Redis refused to select database \(endpoint.database)")
            }
        } catch {
            redisFree(context)
            throw error
        }
        return context
    }

    enum Reply {
        case string(String)
        case integer(Int64)
        case array([Reply])
        case status(String)
        case error(String)
        case null
    }

    private static func convert(_ reply: UnsafeMutablePointer<redisReply>) -> Reply {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            return .string(String(decoding: UnsafeRawBufferPointer(start: r.str, count: Int(r.len)), as: UTF8.self))
        case REDIS_REPLY_STATUS:
            return .status(String(decoding: UnsafeRawBufferPointer(start: r.str, count: Int(r.len)), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: UnsafeRawBufferPointer(start: r.str, count: Int(r.len)), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            return .integer(r.integer)
        case REDIS_REPLY_ARRAY:
            guard let elements = r.element else { return .array([]) }
            return .array((0..<Int(r.elements)).compactMap { elements[$0].map(convert) })
        default:
            return .null
        }
    }

    /// One command on one connection; a nil reply means the connection broke.
    private func command(_ context: UnsafeMutablePointer<redisContext>, _ arguments: [String]) throws -> Reply {
        let utf8 = arguments.map { Array($0.utf8) }
        let pointers = utf8.map { bytes -> UnsafeMutablePointer<CChar> in
            let copy = UnsafeMutablePointer<CChar>.allocate(capacity: max(bytes.count, 1))
            bytes.withUnsafeBytes {
                if let base = $0.baseAddress {
                    UnsafeMutableRawPointer(copy).copyMemory(from: base, byteCount: bytes.count)
                }
            }
            return copy
        }
        defer { for pointer in pointers { pointer.deallocate() } }
        var argv = pointers.map { UnsafePointer<CChar>?(UnsafePointer($0)) }
        var lengths = utf8.map { $0.count }
        guard let raw = redisCommandArgv(context, Int32(arguments.count), &argv, &lengths) else {
            throw AuthError(.storeUnavailable, "the Redis connection failed")
        }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(raw) }
        return Self.convert(reply)
    }

    /// Runs a command on a pooled connection, within the store's timeout in all (a frozen server
    /// costs one timeout, never two). A pooled connection the server has hung up on (it
    /// restarted, or closed an idle client) is dropped and the command is sent once more on a
    /// fresh one; that is the only retry, since a command whose reply timed out may have run and
    /// must not run twice (a second put-if-absent or increment would lie).
    private func run(_ arguments: [String]) throws -> Reply {
        let deadline = Self.monotonicNow() + timeout
        for attempt in 0..<2 {
            let pooled = idle.withLock { $0.popLast()?.context }
            let context: UnsafeMutablePointer<redisContext>
            if let pooled {
                context = pooled
                _ = redisSetTimeout(context, Self.timeval(deadline - Self.monotonicNow()))
            } else {
                context = try connect(within: deadline - Self.monotonicNow())
            }
            do {
                let reply = try command(context, arguments)
                let connection = Connection(context: context)
                idle.withLock { connections in
                    if connections.count < 16 { connections.append(connection) } else { redisFree(connection.context) }
                }
                if case .error(let message) = reply {
                    // The server's message names the command, never our data.
                    throw AuthError(.storeUnavailable, "Redis error: \(message.prefix(120))")
                }
                return reply
            } catch let error as AuthError where error.code == .storeUnavailable && context.pointee.err != 0 {
                let hungUp = Self.hungUp(context)
                redisFree(context)
                guard attempt == 0, pooled != nil, hungUp, deadline - Self.monotonicNow() > 0.01 else { throw error }
            }
        }
        throw AuthError(.storeUnavailable, "the Redis connection failed")
    }

    /// The server closed the connection (end of file, reset, broken pipe), as opposed to a
    /// timeout: nothing of the command was run.
    private static func hungUp(_ context: UnsafeMutablePointer<redisContext>) -> Bool {
        if context.pointee.err == REDIS_ERR_EOF { return true }
        guard context.pointee.err == REDIS_ERR_IO else { return false }
        let message = withUnsafeBytes(of: context.pointee.errstr) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return message.contains("reset") || message.contains("Broken pipe") || message.contains("Server closed")
    }

    // MARK: - Layout

    static func redisKey(_ collection: String, _ key: String) -> String { "\(collection)::\(key)" }

    /// The envelope py-key-value writes (json.dumps(..., sort_keys=True)).
    private static func envelope(
        _ collection: String,
        _ key: String,
        value: [String: JSONValue],
        createdAt: Double,
        expiresAt: Double?
    ) -> String {
        var document: [String: JSONValue] = [
            "collection": .string(collection), "key": .string(key), "version": 1,
            "created_at": .string(ISOTime.format(createdAt)), "value": .object(value),
        ]
        if let expiresAt { document["expires_at"] = .string(ISOTime.format(expiresAt)) }
        return JSONValue.object(document).serialized(.python)
    }

    /// Reads an envelope; the value may be an object or JSON text (both are py-key-value forms).
    static func entry(raw: String, now: Double) throws -> StoredEntry? {
        guard let document = try? JSONValue.parse(raw).objectValue else {
            throw AuthError(.corruptedValue, "a Redis entry is not a JSON envelope")
        }
        var expiresAt: Double? = nil
        if let text = document["expires_at"] {
            guard let string = text.stringValue, let parsed = ISOTime.parse(string) else {
                throw AuthError(.corruptedValue, "a Redis entry has an unreadable expires_at")
            }
            if parsed <= now { return nil }
            expiresAt = parsed
        }
        let value: [String: JSONValue]
        switch document["value"] {
        case .object(let object)?: value = object
        case .string(let text)?: value = try parseStoredObject(text)
        default: throw AuthError(.corruptedValue, "a Redis entry has no value object")
        }
        return StoredEntry(value: value, expiresAt: expiresAt, raw: raw)
    }

    // MARK: - Operations

    func put(
        _ collection: String,
        _ key: String,
        valueJSON: String,
        value: [String: JSONValue],
        ttl: Double?,
        onlyIfAbsent: Bool,
        now: Double
    ) throws -> Bool {
        let document = Self.envelope(collection, key, value: value, createdAt: now, expiresAt: ttl.map { now + $0 })
        var arguments = ["SET", Self.redisKey(collection, key), document]
        if ttl != nil { arguments += ["PX", Self.milliseconds(ttl)] }
        if onlyIfAbsent { arguments.append("NX") }
        if case .null = try run(arguments) { return false }
        return true
    }

    func get(_ collection: String, _ key: String, now: Double) throws -> StoredEntry? {
        guard case .string(let raw) = try run(["GET", Self.redisKey(collection, key)]) else { return nil }
        return try Self.entry(raw: raw, now: now)
    }

    private static let takeScript =
        "local v = redis.call('GET', KEYS[1]) if v then redis.call('DEL', KEYS[1]) end return v"
    private static let compareAndDeleteScript =
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end"

    func take(_ collection: String, _ key: String, now: Double) throws -> StoredEntry? {
        guard case .string(let raw) = try run(["EVAL", Self.takeScript, "1", Self.redisKey(collection, key)]) else {
            return nil
        }
        return try Self.entry(raw: raw, now: now)
    }

    func delete(_ collection: String, _ key: String) throws -> Bool {
        if case .integer(let count) = try run(["DEL", Self.redisKey(collection, key)]) { return count > 0 }
        return false
    }

    func compareAndDelete(_ collection: String, _ key: String, raw: String) throws -> Bool {
        if case .integer(let count) = try run([
            "EVAL", Self.compareAndDeleteScript, "1", Self.redisKey(collection, key), raw,
        ]) {
            return count > 0
        }
        return false
    }

    /// ARGV: expected envelope, new envelope, expiry in milliseconds ("" for none).
    private static let compareAndSwapScript = """
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
        if ARGV[3] == '' then redis.call('SET', KEYS[1], ARGV[2]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
        return 1
        """

    /// ARGV: the envelope of a new counter, its expiry in milliseconds ("" for none), delta.
    /// A live counter gets delta added inside its envelope and keeps its expiry; an entry that
    /// is not a counter is left alone and answered with nil.
    private static let incrementScript = """
        local raw = redis.call('GET', KEYS[1])
        local delta = tonumber(ARGV[3])
        if not raw then
          if ARGV[2] == '' then redis.call('SET', KEYS[1], ARGV[1]) else redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
          return delta
        end
        local ok, doc = pcall(cjson.decode, raw)
        if not ok or type(doc) ~= 'table' or type(doc.value) ~= 'table' or type(doc.value.count) ~= 'number' then
          return false
        end
        for name in pairs(doc.value) do if name ~= 'count' then return false end end
        local count = doc.value.count + delta
        if count ~= math.floor(count) or math.abs(count) >= 1e14 then return false end
        doc.value.count = count
        redis.call('SET', KEYS[1], cjson.encode(doc), 'KEEPTTL')
        return count
        """

    private static func milliseconds(_ ttl: Double?) -> String {
        ttl.map { String(max(1, Int64((min($0, 10 * 365 * 86400) * 1000).rounded(.up)))) } ?? ""
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
        let document = Self.envelope(collection, key, value: value, createdAt: now, expiresAt: ttl.map { now + $0 })
        let reply = try run([
            "EVAL", Self.compareAndSwapScript, "1", Self.redisKey(collection, key), raw, document,
            Self.milliseconds(ttl),
        ])
        if case .integer(let swapped) = reply { return swapped == 1 }
        return false
    }

    func increment(_ collection: String, _ key: String, delta: Int64, ttl: Double?, now: Double) throws -> Int64 {
        let document = Self.envelope(
            collection,
            key,
            value: ["count": .int(delta)],
            createdAt: now,
            expiresAt: ttl.map { now + $0 }
        )
        let reply = try run([
            "EVAL", Self.incrementScript, "1", Self.redisKey(collection, key), document, Self.milliseconds(ttl),
            String(delta),
        ])
        guard case .integer(let count) = reply else { throw AuthError(.corruptedValue, "the entry is not a counter") }
        return count
    }

    func ttl(_ collection: String, _ key: String, now: Double) throws -> TimeToLive {
        guard let entry = try get(collection, key, now: now) else { return .missing }
        return entry.expiresAt.map { .seconds($0 - now) } ?? .never
    }

    /// Redis glob characters in a collection name are escaped for SCAN MATCH.
    private static func globEscaped(_ text: String) -> String {
        var out = ""
        for char in text {
            if "*?[]\\".contains(char) { out.append("\\") }
            out.append(char)
        }
        return out
    }

    private func scan(_ collection: String) throws -> [String] {
        var cursor = "0"
        var found = [String]()
        repeat {
            guard
                case .array(let parts) = try run([
                    "SCAN", cursor, "MATCH", Self.globEscaped(collection) + "::*", "COUNT", "1000",
                ]),
                parts.count == 2, case .string(let next) = parts[0], case .array(let keys) = parts[1]
            else {
                throw AuthError(.storeUnavailable, "unexpected SCAN reply from Redis")
            }
            for case .string(let key) in keys { found.append(key) }
            cursor = next
        } while cursor != "0"
        return found
    }

    func keys(_ collection: String, now: Double) throws -> [String] {
        let prefix = collection + "::"
        var live = [String]()
        for redisKey in Set(try scan(collection)) {
            let key = String(redisKey.dropFirst(prefix.count))
            if (try? get(collection, key, now: now)) != nil { live.append(key) }
        }
        return live.sorted()
    }

    func deleteCollection(_ collection: String) throws -> Int {
        let keys = Array(Set(try scan(collection)))
        var deleted = 0
        for start in stride(from: 0, to: keys.count, by: 500) {
            if case .integer(let count) = try run(["DEL"] + keys[start..<min(start + 500, keys.count)]) {
                deleted += Int(count)
            }
        }
        return deleted
    }
}
