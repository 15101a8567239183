// C ABI of the OAuth client (MCP client side): @_cdecl thunks only.
import FastMCPAuth

#if canImport(Glibc)
import Glibc
#endif

private final class OAuthClientHandle {
    let client: OAuthClient
    init(_ client: OAuthClient) { self.client = client }
}

/// The caller's browser callback and its context.
// @unchecked: the header documents that the callback and ctx must be usable from any thread.
private struct BrowserCallback: @unchecked Sendable {
    let function: @convention(c) (UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void
    let context: UnsafeMutableRawPointer?
}

@_cdecl("fma_oauth_client_new")
public func abiOAuthClientNew(
    _ configJSON: UnsafePointer<CChar>?,
    _ out: UnsafeMutablePointer<OpaquePointer?>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    out?.pointee = nil
    return call(err) {
        guard let out else { throw AuthError(.invalidArgument, "out is NULL") }
        let text = try argument(configJSON, "config_json")
        guard let json = try? JSONValue.parse(text) else {
            throw AuthError(.invalidConfig, "config_json is not valid JSON")
        }
        let client = try OAuthClient(json: json, environment: environment())
        out.pointee = retained(OAuthClientHandle(client))
    }
}

@_cdecl("fma_oauth_client_free")
public func abiOAuthClientFree(_ client: OpaquePointer?) {
    guard let client else { return }
    Unmanaged<OAuthClientHandle>.fromOpaque(UnsafeRawPointer(client)).release()
}

@_cdecl("fma_oauth_client_set_browser")
public func abiOAuthClientSetBrowser(
    _ client: OpaquePointer?,
    _ openURL: (@convention(c) (UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void)?,
    _ context: UnsafeMutableRawPointer?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    call(err) {
        guard let handle = handle(client, as: OAuthClientHandle.self) else {
            throw AuthError(.invalidArgument, "client is NULL")
        }
        guard let openURL else {
            handle.client.setBrowser(nil)
            return
        }
        let callback = BrowserCallback(function: openURL, context: context)
        handle.client.setBrowser { url in url.withCString { callback.function($0, callback.context) } }
    }
}

@_cdecl("fma_oauth_client_cancel")
public func abiOAuthClientCancel(_ client: OpaquePointer?) {
    handle(client, as: OAuthClientHandle.self)?.client.cancel()
}

@_cdecl("fma_oauth_client_token")
public func abiOAuthClientToken(
    _ client: OpaquePointer?,
    _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    out?.pointee = nil
    return call(err) {
        guard let out else { throw AuthError(.invalidArgument, "out_access_token is NULL") }
        guard let handle = handle(client, as: OAuthClientHandle.self) else {
            throw AuthError(.invalidArgument, "client is NULL")
        }
        out.pointee = try cString(try handle.client.token())
    }
}

@_cdecl("fma_oauth_client_challenge")
public func abiOAuthClientChallenge(
    _ client: OpaquePointer?,
    _ status: Int32,
    _ wwwAuthenticate: UnsafePointer<CChar>?,
    _ err: UnsafeMutableRawPointer?
) -> Int32 {
    call(err) {
        guard let handle = handle(client, as: OAuthClientHandle.self) else {
            throw AuthError(.invalidArgument, "client is NULL")
        }
        guard status == 401 || status == 403 else { throw AuthError(.invalidArgument, "status must be 401 or 403") }
        handle.client.challenge(
            status: Int(status),
            wwwAuthenticate: wwwAuthenticate.map { String(cString: $0) }
        )
    }
}

@_cdecl("fma_oauth_client_logout")
public func abiOAuthClientLogout(_ client: OpaquePointer?, _ err: UnsafeMutableRawPointer?) -> Int32 {
    call(err) {
        guard let handle = handle(client, as: OAuthClientHandle.self) else {
            throw AuthError(.invalidArgument, "client is NULL")
        }
        try handle.client.logout()
    }
}
