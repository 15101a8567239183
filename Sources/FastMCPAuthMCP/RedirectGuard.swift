import FastMCPAuth
import Foundation
import Synchronization

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

extension OAuthClient {
    /// The URLSession configuration to give `HTTPClientTransport` with this client as its authorizer:
    ///
    ///     HTTPClientTransport(endpoint: url, configuration: OAuthClient.transportConfiguration(), authorizer: client)
    ///
    /// Foundation's URLSession follows a redirect with every header of the request, the bearer token
    /// included, to whatever origin the `Location` names (an open redirect on the server, or a
    /// downgrade to plain http, would hand the token out). Through this configuration a request that
    /// carries `Authorization` follows redirects within its origin only; a redirect to another scheme,
    /// host or port fails the request with ``CrossOriginRedirectRefused`` and nothing is sent there.
    /// Requests without `Authorization` follow redirects as usual and are untouched.
    ///
    /// The requests that carry a token are sent by a session of the guard's own (ephemeral, the
    /// default timeouts, 16 connections per host): this configuration's other settings do not apply
    /// to them. Give such a request its headers and timeout through HTTPClientTransport's
    /// `requestModifier` (`$0.timeoutInterval = 300`), which the guard keeps.
    public static func transportConfiguration() -> URLSessionConfiguration {
        let configuration = URLSessionConfiguration.default
        configuration.protocolClasses = [AuthorizationRedirectGuard.self] + (configuration.protocolClasses ?? [])
        return configuration
    }
}

/// An authorized request was redirected to another origin; it was not followed.
public struct CrossOriginRedirectRefused: LocalizedError, Sendable {
    /// The origin the server redirected to (scheme, host and port; no path or query).
    public let origin: String

    public var errorDescription: String? {
        "the server redirected a request that carries its access token to another origin (\(origin)); "
            + "the redirect was not followed, so the token was not sent there"
    }
}

/// Scheme, lowercased host and port (the scheme's default when absent) of an http(s) URL.
struct Origin: Equatable {
    let scheme: String
    let host: String
    let port: Int

    init?(_ url: URL?) {
        guard let url, let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = url.host?.lowercased(), !host.isEmpty
        else { return nil }
        self.scheme = scheme
        self.host = host
        self.port = url.port ?? (scheme == "https" ? 443 : 80)
    }

    var description: String { "\(scheme)://\(host):\(port)" }
}

/// Loads each request through a session of its own whose delegate can see redirects (the session
/// HTTPClientTransport creates has no delegate, so it cannot).
final class AuthorizationRedirectGuard: URLProtocol {
    private struct State {
        var task: URLSessionDataTask?
        var stopped = false
    }
    private let state = Mutex(State())

    override class func canInit(with request: URLRequest) -> Bool {
        Origin(request.url) != nil && request.value(forHTTPHeaderField: "Authorization") != nil
    }
    override class func canonicalRequest(for request: URLRequest) -> URLRequest { request }

    override func startLoading() {
        let request = self.request
        // Starting another session's task from inside this session's callback deadlocks
        // swift-corelibs-foundation (a dispatch_sync onto a queue it holds): start it from elsewhere.
        let box = GuardBox(guardian: self)
        DispatchQueue.global().async {
            let guardian = box.guardian
            guard !guardian.state.withLock({ $0.stopped }) else { return }
            let task = RedirectForwarder.session.dataTask(with: request)
            // Registered before it can be cancelled, so its completion always finds (and removes) it.
            RedirectForwarder.shared.register(task, for: box)
            let started = guardian.state.withLock { state -> Bool in
                guard !state.stopped else { return false }
                state.task = task
                return true
            }
            if started {
                task.resume()
            } else {
                _ = RedirectForwarder.shared.remove(task)
                task.cancel()
            }
        }
    }

    override func stopLoading() {
        let task = state.withLock { state -> URLSessionDataTask? in
            state.stopped = true
            defer { state.task = nil }
            return state.task
        }
        // Not from this session's queue either (cancel() waits on a queue the sessions share).
        if let task { DispatchQueue.global().async { task.cancel() } }
    }

    /// Runs `deliver` unless loading was stopped (the client must hear nothing after that).
    fileprivate func forward(_ deliver: (any URLProtocolClient) -> Void) {
        guard let client, !state.withLock({ $0.stopped }) else { return }
        deliver(client)
    }
}

// @unchecked: URLProtocol is not Sendable, yet Foundation calls it from its own queues; the guard's
// mutable state is in a Mutex, and its client is Foundation's to call from any thread.
private struct GuardBox: @unchecked Sendable {
    let guardian: AuthorizationRedirectGuard
}

/// The delegate of the inner session: passes each task's events to the guard that started it, and
/// decides its redirects.
// @unchecked: the task table is in a Mutex; Foundation calls the delegate from its own queue.
final class RedirectForwarder: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    static let shared = RedirectForwarder()
    // Ephemeral: no response cache or cookie jar on disk for requests that carry tokens. One session
    // serves every transport of the process, hence more connections per host than the default 6.
    static let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = 16
        return URLSession(configuration: configuration, delegate: shared, delegateQueue: nil)
    }()

    private let guards = Mutex<[Int: GuardBox]>([:])

    fileprivate func register(_ task: URLSessionTask, for guardian: GuardBox) {
        guards.withLock { $0[task.taskIdentifier] = guardian }
    }

    private func guardian(of task: URLSessionTask) -> AuthorizationRedirectGuard? {
        guards.withLock { $0[task.taskIdentifier] }?.guardian
    }

    /// Requests in flight (for tests: every request's entry is removed when it ends).
    var inFlight: Int { guards.withLock { $0.count } }

    fileprivate func remove(_ task: URLSessionTask) -> AuthorizationRedirectGuard? {
        guards.withLock { $0.removeValue(forKey: task.taskIdentifier) }?.guardian
    }

    /// Same origin as the first request, or no Authorization: follow. Otherwise fail the request.
    static func decide(original: URLRequest?, redirect: URLRequest) -> CrossOriginRedirectRefused? {
        guard original?.value(forHTTPHeaderField: "Authorization") != nil else { return nil }
        let to = Origin(redirect.url)
        guard let from = Origin(original?.url), let to, from == to else {
            return CrossOriginRedirectRefused(origin: to?.description ?? "a URL that is not http(s)")
        }
        return nil
    }

    func urlSession(
        _ session: URLSession,
        task: URLSessionTask,
        willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest,
        completionHandler: @escaping (URLRequest?) -> Void
    ) {
        guard let refusal = Self.decide(original: task.originalRequest, redirect: request) else {
            completionHandler(request)
            return
        }
        // Fail the outer request first, then end this one without following (it completes with
        // the 3xx, which nobody hears).
        if let guardian = remove(task) {
            guardian.forward { $0.urlProtocol(guardian, didFailWithError: refusal) }
        }
        completionHandler(nil)
    }

    func urlSession(
        _ session: URLSession,
        dataTask: URLSessionDataTask,
        didReceive response: URLResponse,
        completionHandler: @escaping (URLSession.ResponseDisposition) -> Void
    ) {
        if let guardian = guardian(of: dataTask) {
            guardian.forward { $0.urlProtocol(guardian, didReceive: response, cacheStoragePolicy: .notAllowed) }
        }
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        if let guardian = guardian(of: dataTask) {
            guardian.forward { $0.urlProtocol(guardian, didLoad: data) }
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        guard let guardian = remove(task) else { return }
        guardian.forward { client in
            if let error {
                client.urlProtocol(guardian, didFailWithError: error)
            } else {
                client.urlProtocolDidFinishLoading(guardian)
            }
        }
    }
}
