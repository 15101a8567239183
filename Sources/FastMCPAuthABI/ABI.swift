// The C ABI: @_cdecl thunks only. Each checks its arguments, converts, calls the core and maps
// the result to an fma_status. No Swift error or trap may cross this boundary.
import FastMCPAuth

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Errors

/// Offsets of `fma_error` { fma_status status; char message[256]; }.
private let errorMessageSize = 256

func report(_ err: UnsafeMutableRawPointer?, _ code: ErrorCode, _ message: String) -> Int32 {
    if let err {
        err.storeBytes(of: code.rawValue, as: Int32.self)
        let buffer = (err + MemoryLayout<Int32>.size).assumingMemoryBound(to: UInt8.self)
        // Truncate at a character boundary so the message stays valid UTF-8.
        var bytes = [UInt8]()
        for scalar in message.unicodeScalars {
            let encoded = Array(String(scalar).utf8)
            if bytes.count + encoded.count > errorMessageSize - 1 { break }
            bytes += encoded
        }
        for (index, byte) in bytes.enumerated() { buffer[index] = byte }
        buffer[bytes.count] = 0
    }
    return code.rawValue
}

/// Runs `body`, mapping success and every thrown error to a status.
func call(_ err: UnsafeMutableRawPointer?, _ body: () throws -> Void) -> Int32 {
    do {
        try body()
        return report(err, .ok, "")
    } catch let error as AuthError {
        return report(err, error.code, error.message)
    } catch {
        return report(err, .internalError, "unexpected internal error")
    }
}

func argument(_ pointer: UnsafePointer<CChar>?, _ name: String) throws -> String {
    guard let pointer else { throw AuthError(.invalidArgument, "\(name) is NULL") }
    return String(cString: pointer)
}

/// A malloc'd C copy of `text` (released with fma_string_free or by its handle).
func cString(_ text: String) throws -> UnsafeMutablePointer<CChar> {
    guard let copy = strdup(text) else { throw AuthError(.internalError, "out of memory") }
    return copy
}

// MARK: - Static strings

/// C strings that live for the whole process.
private struct StaticCStrings: @unchecked Sendable {  // Made once on first use, then only read, never freed.
    let names: [Int32: UnsafePointer<CChar>]
    let sentences: [Int32: UnsafePointer<CChar>]
    let version: UnsafePointer<CChar>

    /// A literal's bytes in static storage (its StaticString is NUL-terminated).
    static func literal(_ text: StaticString) -> UnsafePointer<CChar> {
        UnsafeRawPointer(text.utf8Start).assumingMemoryBound(to: CChar.self)
    }

    init() {
        var names = [Int32: UnsafePointer<CChar>]()
        var sentences = [Int32: UnsafePointer<CChar>]()
        for code in ErrorCode.allCases {
            names[code.rawValue] = strdup(code.name).map { UnsafePointer($0) }
            sentences[code.rawValue] = strdup(code.sentence).map { UnsafePointer($0) }
        }
        self.names = names
        self.sentences = sentences
        version = strdup(FastMCPAuthVersion.string).map { UnsafePointer($0) } ?? Self.literal("unknown")
    }
}

private let staticStrings = StaticCStrings()

@_cdecl("fma_version_string")
public func abiVersionString() -> UnsafePointer<CChar> { staticStrings.version }

@_cdecl("fma_version_number")
public func abiVersionNumber() -> UInt32 { FastMCPAuthVersion.number }

@_cdecl("fma_status_name")
public func abiStatusName(_ status: Int32) -> UnsafePointer<CChar> {
    staticStrings.names[status] ?? StaticCStrings.literal("unknown_status")
}

@_cdecl("fma_status_string")
public func abiStatusString(_ status: Int32) -> UnsafePointer<CChar> {
    staticStrings.sentences[status] ?? StaticCStrings.literal("Unknown status.")
}

@_cdecl("fma_string_free")
public func abiStringFree(_ string: UnsafeMutablePointer<CChar>?) {
    guard let string else { return }
    memset(string, 0, strlen(string))
    free(string)
}

// MARK: - Verifier

private final class VerifierHandle {
    let verifier: JWTVerifier
    init(_ verifier: JWTVerifier) { self.verifier = verifier }
}

/// An access token with C copies of its strings, freed with the handle.
final class AccessTokenHandle {
    let token: UnsafeMutablePointer<CChar>
    let clientID: UnsafeMutablePointer<CChar>
    let subject: UnsafeMutablePointer<CChar>?
    let claimsJSON: UnsafeMutablePointer<CChar>
    let scopes: [UnsafeMutablePointer<CChar>]
    let expiresAt: Int64?

    init(_ accessToken: AccessToken) throws {
        var copies = [UnsafeMutablePointer<CChar>]()
        func copy(_ text: String) throws -> UnsafeMutablePointer<CChar> {
            do {
                let c = try cString(text)
                copies.append(c)
                return c
            } catch {
                for copy in copies { free(copy) }
                throw error
            }
        }
        token = try copy(accessToken.token)
        clientID = try copy(accessToken.clientID)
        subject = try accessToken.subject.map { try copy($0) }
        claimsJSON = try copy(accessToken.claimsJSON)
        scopes = try accessToken.scopes.map { try copy($0) }
        expiresAt = accessToken.expiresAt
    }

    deinit {
        abiStringFree(token)  // wiped: it is a bearer credential
        free(clientID)
        free(subject)
        free(claimsJSON)
        for scope in scopes { free(scope) }
    }
}

func handle<T: AnyObject>(_ pointer: OpaquePointer?, as: T.Type) -> T? {
    pointer.map { Unmanaged<T>.fromOpaque(UnsafeRawPointer($0)).takeUnretainedValue() }
}

@_cdecl("fma_verifier_new")
public func abiVerifierNew(
    _ configJSON: UnsafePointer<CChar>?,
    _ out: UnsafeMutablePointer<OpaquePointer?>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    out?.pointee = nil
    return call(err) {
        guard let out else { throw AuthError(.invalidArgument, "out is NULL") }
        let text = try argument(configJSON, "config_json")
        guard let json = try? JSONValue.parse(text) else {
            throw AuthError(.invalidConfig, "the configuration is not valid JSON")
        }
        let verifier = try JWTVerifier(json: json)
        out.pointee = OpaquePointer(Unmanaged.passRetained(VerifierHandle(verifier)).toOpaque())
    }
}

@_cdecl("fma_verifier_free")
public func abiVerifierFree(_ verifier: OpaquePointer?) {
    guard let verifier else { return }
    Unmanaged<VerifierHandle>.fromOpaque(UnsafeRawPointer(verifier)).release()
}

@_cdecl("fma_verifier_verify")
public func abiVerifierVerify(
    _ verifier: OpaquePointer?,
    _ token: UnsafePointer<CChar>?,
    _ tokenLength: UInt,
    _ out: UnsafeMutablePointer<OpaquePointer?>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    out?.pointee = nil
    return call(err) {
        guard let out else { throw AuthError(.invalidArgument, "out is NULL") }
        guard let handle = handle(verifier, as: VerifierHandle.self) else {
            throw AuthError(.invalidArgument, "verifier is NULL")
        }
        guard let token else { throw AuthError(.invalidArgument, "token is NULL") }
        // Checked before the bytes are read: the length is the caller's word for the buffer.
        guard tokenLength <= UInt(handle.verifier.config.maxTokenBytes) else {
            throw AuthError(.tooLarge, "the token exceeds \(handle.verifier.config.maxTokenBytes) bytes")
        }
        let length = Int(tokenLength)
        let text = token.withMemoryRebound(to: UInt8.self, capacity: length) {
            String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
        }
        let accessToken = try handle.verifier.verify(text)
        out.pointee = OpaquePointer(Unmanaged.passRetained(try AccessTokenHandle(accessToken)).toOpaque())
    }
}

@_cdecl("fma_access_token_token")
public func abiAccessTokenToken(_ token: OpaquePointer?) -> UnsafePointer<CChar>? {
    handle(token, as: AccessTokenHandle.self).map { UnsafePointer($0.token) }
}

@_cdecl("fma_access_token_client_id")
public func abiAccessTokenClientID(_ token: OpaquePointer?) -> UnsafePointer<CChar>? {
    handle(token, as: AccessTokenHandle.self).map { UnsafePointer($0.clientID) }
}

@_cdecl("fma_access_token_subject")
public func abiAccessTokenSubject(_ token: OpaquePointer?) -> UnsafePointer<CChar>? {
    handle(token, as: AccessTokenHandle.self)?.subject.map { UnsafePointer($0) }
}

@_cdecl("fma_access_token_expires_at")
public func abiAccessTokenExpiresAt(_ token: OpaquePointer?, _ out: UnsafeMutablePointer<Int64>?) -> Int32 {
    guard let expiresAt = handle(token, as: AccessTokenHandle.self)?.expiresAt else { return 0 }
    out?.pointee = expiresAt
    return 1
}

@_cdecl("fma_access_token_scope_count")
public func abiAccessTokenScopeCount(_ token: OpaquePointer?) -> UInt {
    UInt(handle(token, as: AccessTokenHandle.self)?.scopes.count ?? 0)
}

@_cdecl("fma_access_token_scope")
public func abiAccessTokenScope(_ token: OpaquePointer?, _ index: UInt) -> UnsafePointer<CChar>? {
    guard let scopes = handle(token, as: AccessTokenHandle.self)?.scopes, index < UInt(scopes.count) else { return nil }
    return UnsafePointer(scopes[Int(index)])
}

@_cdecl("fma_access_token_claims_json")
public func abiAccessTokenClaimsJSON(_ token: OpaquePointer?) -> UnsafePointer<CChar>? {
    handle(token, as: AccessTokenHandle.self).map { UnsafePointer($0.claimsJSON) }
}

@_cdecl("fma_access_token_free")
public func abiAccessTokenFree(_ token: OpaquePointer?) {
    guard let token else { return }
    Unmanaged<AccessTokenHandle>.fromOpaque(UnsafeRawPointer(token)).release()
}

// MARK: - Signing and keys

@_cdecl("fma_jwt_sign")
public func abiJWTSign(
    _ claimsJSON: UnsafePointer<CChar>?,
    _ jwkJSON: UnsafePointer<CChar>?,
    _ alg: UnsafePointer<CChar>?,
    _ headersJSON: UnsafePointer<CChar>?,
    _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    out?.pointee = nil
    return call(err) {
        guard let out else { throw AuthError(.invalidArgument, "out_token is NULL") }
        let token = try KeyTools.sign(
            claimsJSON: try argument(claimsJSON, "claims_json"),
            jwkJSON: try argument(jwkJSON, "jwk_json"),
            algorithm: try argument(alg, "alg"),
            headersJSON: headersJSON.map { String(cString: $0) }
        )
        out.pointee = try cString(token)
    }
}

@_cdecl("fma_jwk_generate")
public func abiJWKGenerate(
    _ alg: UnsafePointer<CChar>?,
    _ optionsJSON: UnsafePointer<CChar>?,
    _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    out?.pointee = nil
    return call(err) {
        guard let out else { throw AuthError(.invalidArgument, "out_jwk_json is NULL") }
        let jwk = try KeyTools.generate(
            algorithm: try argument(alg, "alg"),
            optionsJSON: optionsJSON.map { String(cString: $0) }
        )
        out.pointee = try cString(jwk)
    }
}

@_cdecl("fma_jwk_public")
public func abiJWKPublic(
    _ jwkJSON: UnsafePointer<CChar>?,
    _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    out?.pointee = nil
    return call(err) {
        guard let out else { throw AuthError(.invalidArgument, "out_jwk_json is NULL") }
        out.pointee = try cString(try KeyTools.publicJWK(try argument(jwkJSON, "jwk_json")))
    }
}
