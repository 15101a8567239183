import FastMCPAuth
import Foundation
import MCP

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// swift-sdk's `HTTPClientTransport(endpoint:…, authorizer: client)` takes its bearer tokens from an
/// OAuthClient and hands the server's 401 and 403 challenges back to it:
///
///     let client = try OAuthClient(json: ["server_url": "https://mcp.example.com/mcp"], environment: …)
///     let transport = HTTPClientTransport(
///         endpoint: url, configuration: OAuthClient.transportConfiguration(), authorizer: client)
///
/// (`transportConfiguration()` keeps URLSession from following a redirect to another origin with
/// the token.)
/// The client's blocking calls (a refresh, a browser sign-in) run on a thread of their own, never on
/// Swift's cooperative pool; cancelling the task cancels a pending sign-in.
extension OAuthClient: HTTPClientAuthorizer {
    /// One refresh or sign-in after a 401, then at most two step-ups after insufficient_scope 403s
    /// (the client itself refuses a third with `insufficient_scope`).
    public var maxAuthorizationAttempts: Int { 3 }

    /// The transport may only send this client's tokens to the server they were obtained for.
    public func validateEndpointSecurity(for endpoint: URL) throws {
        let url = endpoint.absoluteString
        guard let canonical = try? ClientDiscovery.canonicalResource(url) else {
            throw OAuthAuthorizationError.insecureOAuthEndpoint(
                context: "MCP endpoint (https, or http on a loopback host)",
                url: url
            )
        }
        guard ClientDiscovery.isSameResource(resource, canonical) else {
            throw AuthError(.invalidConfig, "the transport's endpoint is not the server this OAuth client signs in to")
        }
    }

    public func authorizationHeader(for endpoint: URL) -> String? {
        cachedAccessToken().map { "Bearer " + $0 }
    }

    /// Before each request: a cached, refreshed or newly signed-in token. swift-sdk ignores an error
    /// thrown here and sends the request without a token; a sign-in the person refused, that timed
    /// out, was cancelled or had no browser is kept and thrown by the 401 that follows, so one
    /// refusal is one prompt, not two.
    public func prepareAuthorization(for endpoint: URL, session: URLSession) async throws {
        // swift-sdk prepares and then handles the request's challenges in one task: key by it, so
        // one request's refusal never fails another's 401.
        let task = withUnsafeCurrentTask { $0?.hashValue }
        do {
            _ = try await offThread { try self.token(unlessCancelledSince: $0) }
            if let task { failedPreparations.withLock { $0[task] = nil } }
        } catch {
            if let task {
                failedPreparations.withLock { kept in
                    guard let refusal = error as? AuthError, Self.endsTheRequest(refusal) else {
                        kept[task] = nil
                        return
                    }
                    // Entries whose 401 never came (a server that let the request through) stay
                    // bounded.
                    if kept.count >= 64 { kept.removeAll() }
                    kept[task] = refusal
                }
            }
            throw error
        }
    }

    /// The person's answer (or its absence) stands for the rest of the request: a refused,
    /// timed-out or cancelled sign-in, or none possible.
    public static func endsTheRequest(_ error: AuthError) -> Bool {
        [.authorizationDenied, .authorizationTimeout, .cancelled, .browserUnavailable].contains(error.code)
    }

    public func handleChallenge(
        statusCode: Int,
        headers: [String: String],
        endpoint: URL,
        operationKey: String?,
        session: URLSession
    ) async throws -> Bool {
        guard statusCode == 401 || statusCode == 403 else { return false }
        let header = headers.first { $0.key.lowercased() == "www-authenticate" }?.value
        let challenge = BearerChallenge(status: statusCode, header: header)
        // A 403 about something other than scope is the request's problem: no new token helps.
        if statusCode == 403 && !challenge.isInsufficientScope { return false }
        if let task = withUnsafeCurrentTask(body: { $0?.hashValue }),
            let refused = failedPreparations.withLock({ $0.removeValue(forKey: task) })
        {
            throw refused
        }
        self.challenge(status: statusCode, wwwAuthenticate: header)
        _ = try await offThread { try self.token(unlessCancelledSince: $0) }
        return true
    }

    /// `work(point)` on a thread of its own, with the cancellation point read before the task's
    /// cancellation handler can run: a task cancelled before the thread starts still cancels.
    private func offThread<T: Sendable>(_ work: @escaping @Sendable (Int) throws -> T) async throws -> T {
        let point = cancellationPoint
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let thread = Thread { continuation.resume(with: Result { try work(point) }) }
                thread.name = "fastmcpauth-oauth-client"
                thread.start()
            }
        } onCancel: {
            self.cancel()
        }
    }
}

/// swift-sdk reports an authorizer's failure by its localizedDescription: say which error it was.
extension AuthError: LocalizedError {
    public var errorDescription: String? { description }
}
