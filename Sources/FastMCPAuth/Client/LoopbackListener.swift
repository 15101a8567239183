#if canImport(Glibc)
import Glibc
#endif

/// The redirect endpoint of a native client (RFC 8252 §7.3): an HTTP listener on 127.0.0.1, an
/// ephemeral port unless one is asked for, that serves one sign-in and closes. Requests are read
/// with a size cap and a per-connection time limit; anything but `GET <path>?…` gets a 404.
// @unchecked: the listening socket is a C descriptor used from the one thread that waits.
final class LoopbackListener: @unchecked Sendable {
    static let maxRequestBytes = 16 * 1024

    let port: Int
    let path: String
    private let socketDescriptor: Int32

    var redirectURI: String { "http://127.0.0.1:\(port)\(path)" }

    init(port requested: Int = 0, path: String = "/callback") throws {
        guard (0...65535).contains(requested) else {
            throw AuthError(.invalidConfig, "redirect_port: must be 0 (any free port) to 65535")
        }
        self.path = path
        // Close-on-exec: the browser command must not inherit the listener (it would keep the port).
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw AuthError(.internalError, "cannot open a socket for the sign-in callback") }
        // A port reused from an earlier sign-in may still have connections in TIME_WAIT; Linux still
        // refuses a second listener on it.
        var yes: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(requested).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        guard bound == 0, listen(descriptor, 16) == 0, fcntl(descriptor, F_SETFL, O_NONBLOCK) == 0 else {
            close(descriptor)
            throw AuthError(.invalidConfig, "redirect_port: 127.0.0.1:\(requested) cannot be listened on (in use?)")
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        socketDescriptor = descriptor
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(socketDescriptor) }

    enum Verdict {
        /// Answer with this page and keep waiting.
        case keepWaiting(page: String)
        /// Answer with this page and stop.
        case finished(page: String)
    }

    /// Serves requests until `handle` finishes, `deadline` (monotonic seconds) passes, or `interrupt`
    /// returns an error (cancellation, a browser that failed), checked every 100 ms.
    func serve(
        until deadline: Double,
        interrupt: () -> AuthError?,
        handle: (_ query: String) -> Verdict
    ) throws {
        while true {
            if let error = interrupt() { throw error }
            let remaining = deadline - Self.monotonicNow()
            guard remaining > 0 else {
                throw AuthError(.authorizationTimeout, "the sign-in did not complete in time")
            }
            var poller = pollfd(fd: socketDescriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(min(remaining, 0.1) * 1000) + 1)
            guard ready > 0 else { continue }
            let connection = accept(socketDescriptor, nil, nil)
            guard connection >= 0 else { continue }
            // Close-on-exec at once (accept4 with SOCK_CLOEXEC is not visible from Swift here).
            _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
            defer { close(connection) }
            // One request may take 2 s at most, and never past the sign-in's own deadline.
            let readDeadline = min(Self.monotonicNow() + 2, deadline)
            guard let target = Self.readRequestTarget(connection, until: readDeadline, interrupt: interrupt) else {
                Self.respond(connection, status: "400 Bad Request", page: Self.page("This request could not be read."))
                continue
            }
            let question = target.firstIndex(of: "?")
            let requestPath = question.map { String(target[..<$0]) } ?? target
            guard requestPath == path else {
                Self.respond(connection, status: "404 Not Found", page: Self.page("Not found."))
                continue
            }
            let query = question.map { String(target[target.index(after: $0)...]) } ?? ""
            switch handle(query) {
            case .keepWaiting(let page):
                Self.respond(connection, status: "400 Bad Request", page: page)
            case .finished(let page):
                Self.respond(connection, status: "200 OK", page: page)
                return
            }
        }
    }

    /// The target of a `GET` request line, read before `deadline` within the size cap; nil otherwise
    /// (a silent local connection delays the sign-in by 2 s at most). `interrupt` is honoured meanwhile.
    static func readRequestTarget(_ connection: Int32, until deadline: Double, interrupt: () -> AuthError?) -> String? {
        var received = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 2048)
        while received.count < maxRequestBytes {
            if interrupt() != nil { return nil }
            let remaining = deadline - monotonicNow()
            guard remaining > 0 else { return nil }
            var poller = pollfd(fd: connection, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32(min(remaining, 0.1) * 1000) + 1) > 0 else { continue }
            let count = read(connection, &chunk, chunk.count)
            guard count > 0 else { return nil }
            received += chunk[0..<count]
            if let end = firstLineEnd(received) {
                let line = String(decoding: received[0..<end], as: UTF8.self)
                let parts = line.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 3, parts[0] == "GET", parts[2].hasPrefix("HTTP/1."), parts[1].hasPrefix("/") else {
                    return nil
                }
                return String(parts[1])
            }
        }
        return nil
    }

    private static func firstLineEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 2 else { return nil }
        for index in 0..<(bytes.count - 1) where bytes[index] == 0x0D && bytes[index + 1] == 0x0A { return index }
        return nil
    }

    static func respond(_ connection: Int32, status: String, page: String) {
        let body = Array(page.utf8)
        let head =
            "HTTP/1.1 \(status)\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: \(body.count)\r\n"
            + "Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n"
        let bytes = Array(head.utf8) + body
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes {
                send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard count > 0 else { return }
            sent += count
        }
    }

    static func page(_ message: String) -> String {
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign-in</title></head><body><p>"
            + Responses.escape(message) + "</p></body></html>"
    }

    static func monotonicNow() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
