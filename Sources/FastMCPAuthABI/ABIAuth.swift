// C ABI of the resource-server facade: @_cdecl thunks only.
import FastMCPAuth

#if canImport(Glibc)
import Glibc
#endif

private final class AuthHandle {
    let auth: AuthFacade
    init(_ auth: AuthFacade) { self.auth = auth }
}

/// A response with C copies of its headers and body, freed with the handle.
final class ResponseHandle {
    let status: Int32
    let names: [UnsafeMutablePointer<CChar>]
    let values: [UnsafeMutablePointer<CChar>]
    let body: UnsafeMutablePointer<UInt8>
    let bodyLength: Int

    init(_ response: AuthResponse) throws {
        status = Int32(response.status)
        let sorted = response.headers.sorted { $0.key < $1.key }
        names = try sorted.map { try cString($0.key) }
        values = try sorted.map { try cString($0.value) }
        guard let buffer = malloc(response.body.count + 1)?.assumingMemoryBound(to: UInt8.self) else {
            throw AuthError(.internalError, "out of memory")
        }
        response.body.withUnsafeBytes { if let base = $0.baseAddress { memcpy(buffer, base, $0.count) } }
        buffer[response.body.count] = 0
        body = buffer
        bodyLength = response.body.count
    }

    deinit {
        for name in names { free(name) }
        for value in values { free(value) }
        free(body)
    }
}

private func jsonArgument(_ pointer: UnsafePointer<CChar>?, _ name: String) throws -> [String: JSONValue] {
    guard let pointer else { return [:] }
    guard let value = try? JSONValue.parse(String(cString: pointer)), let object = value.objectValue else {
        throw AuthError(.invalidConfig, "\(name) must be a JSON object")
    }
    return object
}

/// The process environment (read per call: the caller may change it between calls).
func environment() -> [String: String] {
    var values = [String: String]()
    var cursor = environ
    while let entry = cursor.pointee {
        let text = String(cString: entry)
        if let equals = text.firstIndex(of: "=") {
            values[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        cursor += 1
    }
    return values
}

func retained(_ object: AnyObject) -> OpaquePointer { OpaquePointer(Unmanaged.passRetained(object).toOpaque()) }

@_cdecl("fma_auth_new")
public func abiAuthNew(
    _ configJSON: UnsafePointer<CChar>?,
    _ out: UnsafeMutablePointer<OpaquePointer?>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    out?.pointee = nil
    return call(err) {
        guard let out else { throw AuthError(.invalidArgument, "out is NULL") }
        guard let json = try? JSONValue.parse(try argument(configJSON, "config_json")) else {
            throw AuthError(.invalidConfig, "config_json is not valid JSON")
        }
        out.pointee = retained(AuthHandle(try AuthFacade(json: json)))
    }
}

@_cdecl("fma_auth_new_from_env")
public func abiAuthNewFromEnv(
    _ overridesJSON: UnsafePointer<CChar>?,
    _ defaultsJSON: UnsafePointer<CChar>?,
    _ out: UnsafeMutablePointer<OpaquePointer?>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    out?.pointee = nil
    return call(err) {
        guard let out else { throw AuthError(.invalidArgument, "out is NULL") }
        let config = try AuthFacade.configuration(
            environment: environment(),
            overrides: try jsonArgument(overridesJSON, "overrides_json"),
            defaults: try jsonArgument(defaultsJSON, "defaults_json")
        )
        if let config { out.pointee = retained(AuthHandle(try AuthFacade(json: config))) }
    }
}

@_cdecl("fma_auth_free")
public func abiAuthFree(_ auth: OpaquePointer?) {
    guard let auth else { return }
    Unmanaged<AuthHandle>.fromOpaque(UnsafeRawPointer(auth)).release()
}

@_cdecl("fma_auth_describe")
public func abiAuthDescribe(
    _ auth: OpaquePointer?,
    _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    out?.pointee = nil
    return call(err) {
        guard let out else { throw AuthError(.invalidArgument, "out_json is NULL") }
        guard let handle = handle(auth, as: AuthHandle.self) else { throw AuthError(.invalidArgument, "auth is NULL") }
        out.pointee = try cString(handle.auth.description.serialized())
    }
}

@_cdecl("fma_auth_handle")
public func abiAuthHandle(
    _ auth: OpaquePointer?,
    _ method: UnsafePointer<CChar>?,
    _ target: UnsafePointer<CChar>?,
    _ headersJSON: UnsafePointer<CChar>?,
    _ body: UnsafePointer<UInt8>?,
    _ bodyLength: UInt,
    _ clientAddress: UnsafePointer<CChar>?,
    _ out: UnsafeMutablePointer<OpaquePointer?>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    out?.pointee = nil
    return call(err) {
        guard let out else { throw AuthError(.invalidArgument, "out is NULL") }
        guard let handle = handle(auth, as: AuthHandle.self) else { throw AuthError(.invalidArgument, "auth is NULL") }
        guard bodyLength <= 1 << 20 else { throw AuthError(.tooLarge, "request bodies are limited to 1 MiB") }
        guard body != nil || bodyLength == 0 else { throw AuthError(.invalidArgument, "body is NULL") }
        let headers = try jsonArgument(headersJSON, "headers_json").compactMap { name, value in
            value.stringValue.map { (name: name, value: $0) }
        }
        let request = AuthRequest(
            method: try argument(method, "method"),
            target: try argument(target, "target"),
            headers: headers,
            body: body.map { Array(UnsafeBufferPointer(start: $0, count: Int(bodyLength))) } ?? [],
            clientAddress: clientAddress.map { String(cString: $0) }
        )
        if let response = handle.auth.handle(request) { out.pointee = retained(try ResponseHandle(response)) }
    }
}

@_cdecl("fma_auth_authenticate")
public func abiAuthAuthenticate(
    _ auth: OpaquePointer?,
    _ authorization: UnsafePointer<CChar>?,
    _ requiredScopes: UnsafePointer<CChar>?,
    _ target: UnsafePointer<CChar>?,
    _ outToken: UnsafeMutablePointer<OpaquePointer?>?,
    _ outChallenge: UnsafeMutablePointer<OpaquePointer?>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    outToken?.pointee = nil
    outChallenge?.pointee = nil
    return call(err) {
        guard let outToken, let outChallenge else {
            throw AuthError(.invalidArgument, "out_token or out_challenge is NULL")
        }
        guard let handle = handle(auth, as: AuthHandle.self) else { throw AuthError(.invalidArgument, "auth is NULL") }
        let scopes = try requiredScopes.map { try ScopeNames.parseArgument(String(cString: $0)) } ?? []
        let request = target.map { AuthRequest(method: "GET", target: String(cString: $0)) }
        switch handle.auth.authenticate(
            authorization: authorization.map { String(cString: $0) },
            requiredScopes: scopes,
            query: request?.queryString
        ) {
        case .authenticated(let token): outToken.pointee = retained(try AccessTokenHandle(token))
        case .challenge(let response): outChallenge.pointee = retained(try ResponseHandle(response))
        }
    }
}

@_cdecl("fma_response_status")
public func abiResponseStatus(_ response: OpaquePointer?) -> Int32 {
    handle(response, as: ResponseHandle.self)?.status ?? 0
}

@_cdecl("fma_response_header_count")
public func abiResponseHeaderCount(_ response: OpaquePointer?) -> UInt {
    UInt(handle(response, as: ResponseHandle.self)?.names.count ?? 0)
}

@_cdecl("fma_response_header_name")
public func abiResponseHeaderName(_ response: OpaquePointer?, _ index: UInt) -> UnsafePointer<CChar>? {
    guard let names = handle(response, as: ResponseHandle.self)?.names, index < UInt(names.count) else { return nil }
    return UnsafePointer(names[Int(index)])
}

@_cdecl("fma_response_header_value")
public func abiResponseHeaderValue(_ response: OpaquePointer?, _ index: UInt) -> UnsafePointer<CChar>? {
    guard let values = handle(response, as: ResponseHandle.self)?.values, index < UInt(values.count) else { return nil }
    return UnsafePointer(values[Int(index)])
}

@_cdecl("fma_response_header")
public func abiResponseHeader(_ response: OpaquePointer?, _ name: UnsafePointer<CChar>?) -> UnsafePointer<CChar>? {
    guard let handle = handle(response, as: ResponseHandle.self), let name else { return nil }
    guard let index = handle.names.firstIndex(where: { strcasecmp($0, name) == 0 }) else { return nil }
    return UnsafePointer(handle.values[index])
}

@_cdecl("fma_response_body")
public func abiResponseBody(
    _ response: OpaquePointer?,
    _ outLength: UnsafeMutablePointer<UInt>?
) -> UnsafePointer<UInt8>? {
    guard let handle = handle(response, as: ResponseHandle.self) else {
        outLength?.pointee = 0
        return nil
    }
    outLength?.pointee = UInt(handle.bodyLength)
    return UnsafePointer(handle.body)
}

@_cdecl("fma_response_free")
public func abiResponseFree(_ response: OpaquePointer?) {
    guard let response else { return }
    Unmanaged<ResponseHandle>.fromOpaque(UnsafeRawPointer(response)).release()
}
