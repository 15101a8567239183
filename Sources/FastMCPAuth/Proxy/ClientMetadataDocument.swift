import Dispatch
import Synchronization

/// OAuth Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, MCP
/// 2025-11-25): a client_id that is an https URL names a JSON document describing the client.
/// Fetched defensively: public addresses only (checked on the connected address, so DNS
/// rebinding cannot slip past), never through a proxy, no redirects, 5 KiB, 5 s (name
/// resolution included). At most `maxInFlight` fetches at once (`maxInFlightPerHost` per
/// host); concurrent fetches of one URL share one; a failure is remembered for a minute. These
/// fetches run on the proxy's routes only, never on the path that checks bearer tokens.
final class ClientMetadataDocuments: Sendable {
    static let maxBytes = 5 * 1024
    static let timeout: Double = 5
    static let minLifetime: Double = 60
    static let maxLifetime: Double = 86400
    static let maxInFlight = 16
    static let maxInFlightPerHost = 4
    static let failureLifetime: Double = 60
    static let maxRememberedFailures = 10_000

    let http: HTTPClient
    /// Tests only: accept http and loopback addresses (for a document served by the test).
    let allowLoopback: Bool
    let clock: @Sendable () -> Double

    /// One fetch in flight, which concurrent callers for the same URL wait on.
    private final class Flight: @unchecked Sendable {  // `outcome` is written once, before `done` is left.
        let done = DispatchGroup()
        var outcome: Result<(document: [String: JSONValue], lifetime: Double), Failure>?
        init() { done.enter() }
    }

    private struct State {
        var flights: [String: Flight] = [:]
        var perHost: [String: Int] = [:]
        var failures: [String: (failure: Failure, until: Double)] = [:]
    }

    private let state = Locked(State())

    init(http: HTTPClient, allowLoopback: Bool, clock: @escaping @Sendable () -> Double = JWTVerifier.systemClock) {
        self.http = http
        self.allowLoopback = allowLoopback
        self.clock = clock
    }

    /// Whether the text is a client_id URL: https, a host, a path, no fragment, no credentials,
    /// no dot segments.
    func isClientIDURL(_ text: String) -> Bool {
        guard text.utf8.count <= 2048, let scheme = urlScheme(text), let host = urlHost(text) else { return false }
        guard
            scheme == "https"
                || (allowLoopback && scheme == "http"
                    && AddressPolicy.isLoopback(host == "localhost" ? "127.0.0.1" : host))
        else {
            return false
        }
        guard !text.contains("#"), let parts = RedirectURIs.parts(text), parts.host != nil else { return false }
        let path = parts.pathAndQuery.prefix { $0 != "?" }
        guard path.count > 1 else { return false }
        return !path.split(separator: "/", omittingEmptySubsequences: false).contains { $0 == "." || $0 == ".." }
    }

    /// The validated document and how long it may be reused: remembered failures first, then
    /// the fetch already in flight for this URL, else a new one within the caps.
    func fetch(_ url: String) throws -> (document: [String: JSONValue], lifetime: Double) {
        let host = urlHost(url) ?? ""
        let now = clock()
        enum Plan {
            case fail(Failure)
            case wait(Flight)
            case lead(Flight)
        }
        let plan = state.withLock { state -> Plan in
            if let remembered = state.failures[url] {
                if remembered.until > now { return .fail(remembered.failure) }
                state.failures[url] = nil
            }
            if let flight = state.flights[url] { return .wait(flight) }
            guard state.flights.count < Self.maxInFlight, state.perHost[host, default: 0] < Self.maxInFlightPerHost
            else {
                return .fail(.unreachable("too many metadata documents are being fetched; try again"))
            }
            let flight = Flight()
            state.flights[url] = flight
            state.perHost[host, default: 0] += 1
            return .lead(flight)
        }
        switch plan {
        case .fail(let failure):
            throw failure
        case .wait(let flight):
            guard flight.done.wait(timeout: .now() + Self.timeout + 1) == .success, let outcome = flight.outcome else {
                throw Failure.unreachable("the document could not be fetched in time")
            }
            return try outcome.get()
        case .lead(let flight):
            let outcome: Result<(document: [String: JSONValue], lifetime: Double), Failure>
            do {
                outcome = .success(try download(url))
            } catch let failure as Failure {
                outcome = .failure(failure)
            } catch {
                outcome = .failure(.unreachable("the document could not be fetched"))
            }
            flight.outcome = outcome
            state.withLock { state in
                state.flights[url] = nil
                state.perHost[host, default: 1] -= 1
                if state.perHost[host] == 0 { state.perHost[host] = nil }
                if case .failure(let failure) = outcome {
                    if state.failures.count >= Self.maxRememberedFailures {
                        state.failures = state.failures.filter { $0.value.until > now }
                    }
                    if state.failures.count < Self.maxRememberedFailures {
                        state.failures[url] = (failure, now + Self.failureLifetime)
                    }
                }
            }
            flight.done.leave()
            return try outcome.get()
        }
    }

    enum Failure: Error {
        /// The document is not acceptable (or its host is not allowed): the client is unknown.
        case refused(String)
        /// The host could not be reached or failed (5xx): try again later.
        case unreachable(String)
    }

    /// One fetch: connect-time address checks, no proxy, no redirects, bounded size and time.
    private func download(_ url: String) throws -> (document: [String: JSONValue], lifetime: Double) {
        guard let host = urlHost(url) else { throw Failure.refused("no host") }
        // An address literal is judged at once; names are judged on the address connected to.
        let literal = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        if AddressPolicy.ipv4Bytes(literal) != nil || AddressPolicy.ipv6Bytes(literal) != nil,
            !AddressPolicy.isPublic(literal), !(allowLoopback && AddressPolicy.isLoopback(literal))
        {
            throw Failure.refused("the host is not a public address")
        }
        var request = HTTPRequest(
            url: url,
            headers: [("Accept", "application/json")],
            timeout: Self.timeout,
            maxResponseBytes: Self.maxBytes
        )
        request.connectPolicy = allowLoopback ? .publicOrLoopback : .publicOnly
        let response: HTTPResponse
        do {
            response = try http.send(request)
        } catch HTTPClientError.tooLarge {
            throw Failure.refused("the document is larger than \(Self.maxBytes) bytes")
        } catch HTTPClientError.invalidURL {
            throw Failure.refused("the document URL is not usable")
        } catch HTTPClientError.addressRefused {
            throw Failure.refused("the host resolves to a non-public address")
        } catch {
            throw Failure.unreachable("the document could not be fetched")
        }
        if response.status >= 500 || response.status == 429 {
            throw Failure.unreachable("the document URL answered HTTP \(response.status)")
        }
        guard response.status == 200 else { throw Failure.refused("the document URL answered HTTP \(response.status)") }
        guard let document = (try? JSONValue.parse(response.body))?.objectValue else {
            throw Failure.refused("the document is not a JSON object")
        }
        guard document["client_id"]?.stringValue == url else {
            throw Failure.refused("the document's client_id is not its URL")
        }
        if document["client_secret"] != nil || document["client_secret_expires_at"] != nil {
            throw Failure.refused("a metadata document must not carry a client secret")
        }
        if let method = document["token_endpoint_auth_method"]?.stringValue, method != "none" {
            throw Failure.refused("only public clients (token_endpoint_auth_method none) are supported")
        }
        return (document, Self.lifetime(response.header("Cache-Control")))
    }

    /// Cache-Control max-age, clamped; no-store or no-cache: not reused.
    static func lifetime(_ header: String?) -> Double {
        guard let header = header?.lowercased() else { return minLifetime }
        if header.contains("no-store") || header.contains("no-cache") { return 0 }
        for part in header.split(separator: ",") {
            let directive = part.trimmingCharacters()
            if directive.hasPrefix("max-age="), let seconds = Double(directive.dropFirst(8)) {
                return min(max(seconds, minLifetime), maxLifetime)
            }
        }
        return minLifetime
    }
}
