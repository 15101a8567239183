import Foundation
import Synchronization

@testable import FastMCPAuth

#if canImport(Glibc)
import Glibc
#endif

/// A real HTTP/1.1 server on a free loopback port, one thread per connection, for JWKS tests.
/// The handler decides each response (status, headers, body, an optional delay).
// @unchecked: the listening socket is a C descriptor; shared state is in Mutexes.
final class LocalHTTPServer: @unchecked Sendable {
    struct Response {
        var status = 200
        var headers: [(String, String)] = [("Content-Type", "application/json")]
        var body: [UInt8] = []
        var delay: Double = 0
    }

    struct Request {
        var method: String
        var path: String
        var headers: [String: String]  // names lowercased
        var body: [UInt8]
    }

    private let listener: Int32
    let port: UInt16
    private let handler: @Sendable (Request) -> Response
    private let requestCount = Locked(0)
    private let running = Locked(true)

    var requests: Int { requestCount.withLock { $0 } }
    var baseURL: String { "http://127.0.0.1:\(port)" }

    convenience init(handler: @escaping @Sendable (_ path: String) -> Response) throws {
        try self.init(requestHandler: { handler($0.path) })
    }

    init(requestHandler handler: @escaping @Sendable (Request) -> Response) throws {
        self.handler = handler
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) }
        }
        guard bound == 0, listen(listener, 64) == 0 else { throw POSIXError(.EADDRINUSE) }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        let port = UInt16(bigEndian: address.sin_port)
        self.port = port
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    func stop() {
        running.withLock { $0 = false }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func acceptLoop() {
        while running.withLock({ $0 }) {
            let connection = accept(listener, nil, nil)
            if connection < 0 { return }
            Thread { [self] in serve(connection) }.start()
        }
    }

    private func serve(_ connection: Int32) {
        defer { close(connection) }
        var request = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !request.containsHeaderEnd {
            let count = read(connection, &buffer, buffer.count)
            if count <= 0 { return }
            request += buffer.prefix(count)
        }
        let headerEnd = request.headerEndIndex!
        let requestHead = String(decoding: request[..<headerEnd], as: UTF8.self)
        let lines = requestHead.components(separatedBy: "\r\n")
        let requestLine = lines[0].split(separator: " ")
        var headers = [String: String]()
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces
            )
        }
        var body = Array(request[(headerEnd + 4)...])
        let length = Int(headers["content-length"] ?? "0") ?? 0
        while body.count < length {
            let count = read(connection, &buffer, buffer.count)
            if count <= 0 { break }
            body += buffer.prefix(count)
        }
        requestCount.withLock { $0 += 1 }
        let response = handler(
            Request(
                method: String(requestLine.first ?? "GET"),
                path: requestLine.dropFirst().first.map(String.init) ?? "/",
                headers: headers,
                body: body
            )
        )
        if response.delay > 0 { Thread.sleep(forTimeInterval: response.delay) }
        var head = "HTTP/1.1 \(response.status) X\r\nContent-Length: \(response.body.count)\r\nConnection: close\r\n"
        for (name, value) in response.headers { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        let bytes = Array(head.utf8) + response.body
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(connection, $0.baseAddress, $0.count) }
            if written <= 0 { return }
            offset += written
        }
    }
}

extension Array where Element == UInt8 {
    fileprivate var headerEndIndex: Int? {
        guard count >= 4 else { return nil }
        for i in 0...(count - 4) where self[i] == 13 && self[i + 1] == 10 && self[i + 2] == 13 && self[i + 3] == 10 {
            return i
        }
        return nil
    }
    fileprivate var containsHeaderEnd: Bool { headerEndIndex != nil }
}
