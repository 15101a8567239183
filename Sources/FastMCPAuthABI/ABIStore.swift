// C ABI of Fernet and the token store: @_cdecl thunks only.
import FastMCPAuth

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Fernet

private final class FernetHandle {
    let fernet: Fernet
    init(_ fernet: Fernet) { self.fernet = fernet }
}

private let timeNow = Int64.min

private func jsonObject(_ pointer: UnsafePointer<CChar>?, _ name: String) throws -> [String: JSONValue] {
    let text = try argument(pointer, name)
    guard let value = try? JSONValue.parse(text), let object = value.objectValue else {
        throw AuthError(.invalidArgument, "\(name) must be a JSON object")
    }
    return object
}

@_cdecl("fma_fernet_new")
public func abiFernetNew(
    _ keys: UnsafePointer<UnsafePointer<CChar>?>?,
    _ count: UInt,
    _ out: UnsafeMutablePointer<OpaquePointer?>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    out?.pointee = nil
    return call(err) {
        guard let out else { throw AuthError(.invalidArgument, "out is NULL") }
        guard let keys, count > 0, count <= 64 else { throw AuthError(.invalidArgument, "give 1 to 64 keys") }
        let texts = try (0..<Int(count)).map { try argument(keys[$0], "keys[\($0)]") }
        out.pointee = OpaquePointer(Unmanaged.passRetained(FernetHandle(try Fernet(keys: texts))).toOpaque())
    }
}

@_cdecl("fma_fernet_free")
public func abiFernetFree(_ fernet: OpaquePointer?) {
    guard let fernet else { return }
    Unmanaged<FernetHandle>.fromOpaque(UnsafeRawPointer(fernet)).release()
}

@_cdecl("fma_fernet_generate_key")
public func abiFernetGenerateKey(
    _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    out?.pointee = nil
    return call(err) {
        guard let out else { throw AuthError(.invalidArgument, "out_key is NULL") }
        out.pointee = try cString(try Fernet.generateKey())
    }
}

@_cdecl("fma_fernet_encrypt")
public func abiFernetEncrypt(
    _ fernet: OpaquePointer?,
    _ data: UnsafePointer<UInt8>?,
    _ length: UInt,
    _ atTime: Int64,
    _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    out?.pointee = nil
    return call(err) {
        guard let out else { throw AuthError(.invalidArgument, "out_token is NULL") }
        guard let handle = handle(fernet, as: FernetHandle.self) else {
            throw AuthError(.invalidArgument, "fernet is NULL")
        }
        guard length <= 64 << 20 else { throw AuthError(.tooLarge, "Fernet plaintexts are limited to 64 MiB") }
        guard data != nil || length == 0 else { throw AuthError(.invalidArgument, "data is NULL") }
        let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: Int(length))) } ?? []
        out.pointee = try cString(try handle.fernet.encrypt(bytes, at: atTime == timeNow ? Fernet.currentTime : atTime))
    }
}

@_cdecl("fma_fernet_decrypt")
public func abiFernetDecrypt(
    _ fernet: OpaquePointer?,
    _ token: UnsafePointer<CChar>?,
    _ ttl: Int64,
    _ now: Int64,
    _ outData: UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>?,
    _ outLength: UnsafeMutablePointer<UInt>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    outData?.pointee = nil
    outLength?.pointee = 0
    return call(err) {
        guard let outData, let outLength else { throw AuthError(.invalidArgument, "out_data or out_length is NULL") }
        guard let handle = handle(fernet, as: FernetHandle.self) else {
            throw AuthError(.invalidArgument, "fernet is NULL")
        }
        guard ttl >= 0 || ttl == -1 else { throw AuthError(.invalidArgument, "ttl_seconds must be >= 0 or FMA_NO_TTL") }
        var plaintext = try handle.fernet.decrypt(
            try argument(token, "token"),
            ttl: ttl < 0 ? nil : ttl,
            now: now == timeNow ? Fernet.currentTime : now
        )
        defer { plaintext.withUnsafeMutableBytes { if let base = $0.baseAddress { memset(base, 0, $0.count) } } }
        guard let buffer = malloc(max(plaintext.count, 1))?.assumingMemoryBound(to: UInt8.self) else {
            throw AuthError(.internalError, "out of memory")
        }
        plaintext.withUnsafeBytes { if let base = $0.baseAddress { memcpy(buffer, base, $0.count) } }
        outData.pointee = buffer
        outLength.pointee = UInt(plaintext.count)
    }
}

@_cdecl("fma_fernet_rotate")
public func abiFernetRotate(
    _ fernet: OpaquePointer?,
    _ token: UnsafePointer<CChar>?,
    _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    out?.pointee = nil
    return call(err) {
        guard let out else { throw AuthError(.invalidArgument, "out_token is NULL") }
        guard let handle = handle(fernet, as: FernetHandle.self) else {
            throw AuthError(.invalidArgument, "fernet is NULL")
        }
        out.pointee = try cString(try handle.fernet.rotate(try argument(token, "token")))
    }
}

@_cdecl("fma_fernet_extract_timestamp")
public func abiFernetExtractTimestamp(
    _ fernet: OpaquePointer?,
    _ token: UnsafePointer<CChar>?,
    _ out: UnsafeMutablePointer<Int64>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    call(err) {
        guard let out else { throw AuthError(.invalidArgument, "out_timestamp is NULL") }
        guard let handle = handle(fernet, as: FernetHandle.self) else {
            throw AuthError(.invalidArgument, "fernet is NULL")
        }
        out.pointee = try handle.fernet.extractTimestamp(try argument(token, "token"))
    }
}

@_cdecl("fma_bytes_free")
public func abiBytesFree(_ data: UnsafeMutablePointer<UInt8>?, _ length: UInt) {
    guard let data else { return }
    memset(data, 0, Int(length))
    free(data)
}

// MARK: - Store

private final class StoreHandle {
    let store: Store
    init(_ store: Store) { self.store = store }
}

private func storeHandle(_ pointer: OpaquePointer?) throws -> Store {
    guard let handle = handle(pointer, as: StoreHandle.self) else { throw AuthError(.invalidArgument, "store is NULL") }
    return handle.store
}

private func ttlArgument(_ pointer: UnsafePointer<Double>?) -> Double? { pointer?.pointee }

@_cdecl("fma_store_new")
public func abiStoreNew(
    _ url: UnsafePointer<CChar>?,
    _ optionsJSON: UnsafePointer<CChar>?,
    _ out: UnsafeMutablePointer<OpaquePointer?>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    out?.pointee = nil
    return call(err) {
        guard let out else { throw AuthError(.invalidArgument, "out is NULL") }
        var options = Store.Options()
        if let optionsJSON {
            guard let json = try? JSONValue.parse(String(cString: optionsJSON)) else {
                throw AuthError(.invalidConfig, "options_json is not valid JSON")
            }
            options = try Store.Options(json: json)
        }
        let store = try Store(url: try argument(url, "url"), options: options)
        out.pointee = OpaquePointer(Unmanaged.passRetained(StoreHandle(store)).toOpaque())
    }
}

@_cdecl("fma_store_free")
public func abiStoreFree(_ store: OpaquePointer?) {
    guard let store else { return }
    Unmanaged<StoreHandle>.fromOpaque(UnsafeRawPointer(store)).release()
}

@_cdecl("fma_store_put")
public func abiStorePut(
    _ store: OpaquePointer?,
    _ collection: UnsafePointer<CChar>?,
    _ key: UnsafePointer<CChar>?,
    _ valueJSON: UnsafePointer<CChar>?,
    _ ttl: UnsafePointer<Double>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    call(err) {
        try storeHandle(store).put(
            try argument(collection, "collection"),
            try argument(key, "key"),
            try jsonObject(valueJSON, "value_json"),
            ttl: ttlArgument(ttl)
        )
    }
}

@_cdecl("fma_store_put_if_absent")
public func abiStorePutIfAbsent(
    _ store: OpaquePointer?,
    _ collection: UnsafePointer<CChar>?,
    _ key: UnsafePointer<CChar>?,
    _ valueJSON: UnsafePointer<CChar>?,
    _ ttl: UnsafePointer<Double>?,
    _ outStored: UnsafeMutablePointer<Int32>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    outStored?.pointee = 0
    return call(err) {
        let stored = try storeHandle(store).putIfAbsent(
            try argument(collection, "collection"),
            try argument(key, "key"),
            try jsonObject(valueJSON, "value_json"),
            ttl: ttlArgument(ttl)
        )
        outStored?.pointee = stored ? 1 : 0
    }
}

private func valueOut(_ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ value: [String: JSONValue]?) throws
{
    guard let out else { throw AuthError(.invalidArgument, "out_value_json is NULL") }
    out.pointee = try value.map { try cString(JSONValue.object($0).serialized()) }
}

@_cdecl("fma_store_get")
public func abiStoreGet(
    _ store: OpaquePointer?,
    _ collection: UnsafePointer<CChar>?,
    _ key: UnsafePointer<CChar>?,
    _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    out?.pointee = nil
    return call(err) {
        guard out != nil else { throw AuthError(.invalidArgument, "out_value_json is NULL") }
        try valueOut(out, try storeHandle(store).get(try argument(collection, "collection"), try argument(key, "key")))
    }
}

@_cdecl("fma_store_take")
public func abiStoreTake(
    _ store: OpaquePointer?,
    _ collection: UnsafePointer<CChar>?,
    _ key: UnsafePointer<CChar>?,
    _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    out?.pointee = nil
    return call(err) {
        guard out != nil else { throw AuthError(.invalidArgument, "out_value_json is NULL") }
        try valueOut(out, try storeHandle(store).take(try argument(collection, "collection"), try argument(key, "key")))
    }
}

@_cdecl("fma_store_delete")
public func abiStoreDelete(
    _ store: OpaquePointer?,
    _ collection: UnsafePointer<CChar>?,
    _ key: UnsafePointer<CChar>?,
    _ outDeleted: UnsafeMutablePointer<Int32>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    outDeleted?.pointee = 0
    return call(err) {
        let deleted = try storeHandle(store).delete(try argument(collection, "collection"), try argument(key, "key"))
        outDeleted?.pointee = deleted ? 1 : 0
    }
}

@_cdecl("fma_store_compare_and_delete")
public func abiStoreCompareAndDelete(
    _ store: OpaquePointer?,
    _ collection: UnsafePointer<CChar>?,
    _ key: UnsafePointer<CChar>?,
    _ expectedJSON: UnsafePointer<CChar>?,
    _ outDeleted: UnsafeMutablePointer<Int32>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    outDeleted?.pointee = 0
    return call(err) {
        let deleted = try storeHandle(store).compareAndDelete(
            try argument(collection, "collection"),
            try argument(key, "key"),
            expected: try jsonObject(expectedJSON, "expected_json")
        )
        outDeleted?.pointee = deleted ? 1 : 0
    }
}

@_cdecl("fma_store_compare_and_swap")
public func abiStoreCompareAndSwap(
    _ store: OpaquePointer?,
    _ collection: UnsafePointer<CChar>?,
    _ key: UnsafePointer<CChar>?,
    _ expectedJSON: UnsafePointer<CChar>?,
    _ newJSON: UnsafePointer<CChar>?,
    _ ttl: UnsafePointer<Double>?,
    _ outSwapped: UnsafeMutablePointer<Int32>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    outSwapped?.pointee = 0
    return call(err) {
        let swapped = try storeHandle(store).compareAndSwap(
            try argument(collection, "collection"),
            try argument(key, "key"),
            expected: try expectedJSON.map { try jsonObject($0, "expected_json") },
            new: try jsonObject(newJSON, "new_json"),
            ttl: ttlArgument(ttl)
        )
        outSwapped?.pointee = swapped ? 1 : 0
    }
}

@_cdecl("fma_store_increment")
public func abiStoreIncrement(
    _ store: OpaquePointer?,
    _ collection: UnsafePointer<CChar>?,
    _ key: UnsafePointer<CChar>?,
    _ delta: Int64,
    _ ttl: UnsafePointer<Double>?,
    _ outValue: UnsafeMutablePointer<Int64>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    outValue?.pointee = 0
    return call(err) {
        let value = try storeHandle(store).increment(
            try argument(collection, "collection"),
            try argument(key, "key"),
            by: delta,
            ttl: ttlArgument(ttl)
        )
        outValue?.pointee = value
    }
}

@_cdecl("fma_store_ttl")
public func abiStoreTTL(
    _ store: OpaquePointer?,
    _ collection: UnsafePointer<CChar>?,
    _ key: UnsafePointer<CChar>?,
    _ outFound: UnsafeMutablePointer<Int32>?,
    _ outSeconds: UnsafeMutablePointer<Double>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    outFound?.pointee = 0
    outSeconds?.pointee = -1
    return call(err) {
        guard let outFound, let outSeconds else {
            throw AuthError(.invalidArgument, "out_found or out_seconds is NULL")
        }
        switch try storeHandle(store).ttl(try argument(collection, "collection"), try argument(key, "key")) {
        case .missing: outFound.pointee = 0
        case .never:
            outFound.pointee = 1
            outSeconds.pointee = -1
        case .seconds(let left):
            outFound.pointee = 1
            outSeconds.pointee = left
        }
    }
}

@_cdecl("fma_store_keys")
public func abiStoreKeys(
    _ store: OpaquePointer?,
    _ collection: UnsafePointer<CChar>?,
    _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    out?.pointee = nil
    return call(err) {
        guard let out else { throw AuthError(.invalidArgument, "out_keys_json is NULL") }
        let keys = try storeHandle(store).keys(try argument(collection, "collection"))
        out.pointee = try cString(JSONValue.array(keys.map { .string($0) }).serialized())
    }
}

@_cdecl("fma_store_delete_collection")
public func abiStoreDeleteCollection(
    _ store: OpaquePointer?,
    _ collection: UnsafePointer<CChar>?,
    _ outCount: UnsafeMutablePointer<UInt>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    outCount?.pointee = 0
    return call(err) {
        let count = try storeHandle(store).deleteCollection(try argument(collection, "collection"))
        outCount?.pointee = UInt(count)
    }
}

@_cdecl("fma_store_acquire_lease")
public func abiStoreAcquireLease(
    _ store: OpaquePointer?,
    _ name: UnsafePointer<CChar>?,
    _ ttl: Double,
    _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    out?.pointee = nil
    return call(err) {
        guard let out else { throw AuthError(.invalidArgument, "out_holder is NULL") }
        out.pointee = try storeHandle(store).acquireLease(try argument(name, "name"), ttl: ttl).map { try cString($0) }
    }
}

@_cdecl("fma_store_release_lease")
public func abiStoreReleaseLease(
    _ store: OpaquePointer?,
    _ name: UnsafePointer<CChar>?,
    _ holder: UnsafePointer<CChar>?,
    _ outReleased: UnsafeMutablePointer<Int32>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    outReleased?.pointee = 0
    return call(err) {
        let released = try storeHandle(store).releaseLease(
            try argument(name, "name"),
            holder: try argument(holder, "holder")
        )
        outReleased?.pointee = released ? 1 : 0
    }
}
