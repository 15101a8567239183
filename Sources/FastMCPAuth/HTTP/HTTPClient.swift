/// An HTTP response as the core sees it: header names lowercased, body bounded by the caller.
public struct HTTPResponse: Sendable {
    public let status: Int
    public let headers: [(name: String, value: String)]
    public let body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)], body: [UInt8]) {
        self.status = status
        self.headers = headers.map { (name: $0.name.lowercased(), value: $0.value) }
        self.body = body
    }

    public func header(_ name: String) -> String? {
        let lowered = name.lowercased()
        return headers.first { $0.name == lowered }?.value
    }
}

public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Whole-request time limit in seconds.
    public var timeout: Double
    /// Largest response body accepted; a larger one fails with `.tooLarge`.
    public var maxResponseBytes: Int
    /// Which addresses the request may connect to, checked on the connected address itself
    /// (at connect time, after resolution: a name that resolves anew cannot slip past it).
    public var connectPolicy: ConnectPolicy = .any

    public enum ConnectPolicy: Sendable, Equatable {
        case any
        /// Public unicast addresses only (client-supplied URLs: SSRF); never through a proxy.
        case publicOnly
        /// Tests only: public or loopback.
        case publicOrLoopback
    }

    public init(
        method: String = "GET",
        url: String,
        headers: [(name: String, value: String)] = [],
        body: [UInt8] = [],
        timeout: Double = 10,
        maxResponseBytes: Int = 1 << 20
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.maxResponseBytes = maxResponseBytes
    }
}

public enum HTTPClientError: Error, Equatable, Sendable {
    case timeout
    case tooLarge
    case connectionFailed(String)
    case invalidURL
    /// The connect policy refused every address the host resolved to.
    case addressRefused
}

/// How the core makes outbound calls (JWKS, later the OAuth upstream). libcurl by default;
/// tests may substitute their own.
public protocol HTTPClient: Sendable {
    func send(_ request: HTTPRequest) throws -> HTTPResponse
}

/// True for http(s) URLs whose host is a loopback name or address, where plain http is allowed.
func isLoopbackURL(_ url: String) -> Bool {
    guard let host = urlHost(url) else { return false }
    return isLoopbackHost(host)
}

/// The one loopback test: the literal name `localhost`, an IPv4 literal in 127.0.0.0/8 written as
/// four canonical decimal parts, or `::1` (`[::1]` in a URL). A name such as
/// `127.attacker.example` or an octal `0177.0.0.1` is not loopback.
func isLoopbackHost(_ host: String) -> Bool {
    let lowered = host.lowercased()
    if lowered == "localhost" || lowered == "::1" || lowered == "[::1]" { return true }
    guard let octets = ipv4Octets(lowered) else { return false }
    return octets[0] == 127
}

/// The four octets of a dotted-quad IPv4 literal in canonical decimal (no leading zeros, no
/// signs, ASCII digits only), or nil.
func ipv4Octets(_ text: String) -> [UInt8]? {
    let parts = text.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 4 else { return nil }
    var octets = [UInt8]()
    for part in parts {
        guard !part.isEmpty, part.utf8.count <= 3, part.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            part.utf8.count == 1 || part.utf8.first != 0x30, let value = UInt8(part)
        else { return nil }
        octets.append(value)
    }
    return octets
}

/// The text before and after "://", if present.
private func splitScheme(_ url: String) -> (scheme: Substring, rest: Substring)? {
    let chars = Array(url.utf8)
    guard chars.count >= 3 else { return nil }
    for i in 0..<(chars.count - 2)
    where chars[i] == UInt8(ascii: ":") && chars[i + 1] == UInt8(ascii: "/") && chars[i + 2] == UInt8(ascii: "/") {
        let start = url.utf8.index(url.utf8.startIndex, offsetBy: i)
        let after = url.utf8.index(start, offsetBy: 3)
        return (url[..<start], url[after...])
    }
    return nil
}

func urlScheme(_ url: String) -> String? {
    splitScheme(url).map { $0.scheme.lowercased() }
}

/// The explicit port of an http(s) URL, if any.
func urlPort(_ url: String) -> Int? {
    guard var rest = splitScheme(url)?.rest else { return nil }
    if let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) { rest = rest[..<end] }
    if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
    if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") { rest = rest[rest.index(after: close)...] }
    guard let colon = rest.lastIndex(of: ":") else { return nil }
    return Int(rest[rest.index(after: colon)...])
}

func urlHost(_ url: String) -> String? {
    guard var rest = splitScheme(url)?.rest else { return nil }
    if let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) { rest = rest[..<end] }
    if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
    if rest.hasPrefix("[") {
        guard let close = rest.firstIndex(of: "]") else { return nil }
        return String(rest[rest.index(after: rest.startIndex)..<close]).lowercased()
    }
    if let colon = rest.firstIndex(of: ":") { rest = rest[..<colon] }
    return rest.isEmpty ? nil : rest.lowercased()
}
