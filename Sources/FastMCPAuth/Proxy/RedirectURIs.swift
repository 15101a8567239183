/// Redirect URI rules for registration and authorization (RFC 6749 §3.1.2, RFC 8252, OAuth 2.1):
/// URIs are parsed into their parts and compared part by part, never as strings with globs.
package enum RedirectURIs {
    static let maxLength = 2048
    /// Schemes that run code or read local data in a browser: never a redirect target.
    static let unsafeSchemes: Set<String> = [
        "javascript", "data", "file", "vbscript", "blob", "about", "filesystem", "view-source", "ws", "wss",
    ]

    /// An absolute URI without userinfo or fragment, split into its parts.
    package struct Parts: Equatable {
        var scheme: String
        /// Lower-cased; IPv6 literals keep their brackets. nil for URIs without an authority.
        var host: String?
        /// ASCII digits only (1 to 65535), or nil when absent.
        var port: String?
        var path: String
        /// After "?", or nil when there is none.
        var query: String?

        var pathAndQuery: String { path + (query.map { "?" + $0 } ?? "") }
    }

    /// Splits an absolute URI; nil when it is not one we accept as a redirect target: control
    /// characters, spaces, backslashes, a fragment, userinfo, a bad port or dot-segments.
    package static func parts(_ uri: String) -> Parts? {
        guard !uri.isEmpty, uri.utf8.count <= maxLength,
            !uri.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F || $0 == "\\" || $0 == "#" }),
            let colon = uri.firstIndex(of: ":")
        else { return nil }
        let scheme = uri[..<colon].lowercased()
        guard let first = scheme.unicodeScalars.first, ("a"..."z").contains(first),
            scheme.unicodeScalars.allSatisfy({
                ("a"..."z").contains($0) || ("0"..."9").contains($0) || "+-.".unicodeScalars.contains($0)
            })
        else { return nil }
        let rest = uri[uri.index(after: colon)...]
        var host: String? = nil
        var port: String? = nil
        var pathAndQuery = rest
        if rest.hasPrefix("//") {
            let authorityAndPath = rest.dropFirst(2)
            let end = authorityAndPath.firstIndex { $0 == "/" || $0 == "?" } ?? authorityAndPath.endIndex
            guard let authority = authority(authorityAndPath[..<end]) else { return nil }
            (host, port) = authority
            pathAndQuery = authorityAndPath[end...]
        }
        let question = pathAndQuery.firstIndex(of: "?")
        let path = String(question.map { pathAndQuery[..<$0] } ?? pathAndQuery)
        let query = question.map { String(pathAndQuery[pathAndQuery.index(after: $0)...]) }
        guard !hasDotSegments(path) else { return nil }
        return Parts(scheme: scheme, host: host, port: port, path: path, query: query)
    }

    /// host and port of an authority; nil with userinfo (it only serves to deceive), an empty
    /// host or a port that is not 1 to 65535 in ASCII digits.
    private static func authority(_ text: Substring) -> (String, String?)? {
        guard !text.contains("@") else { return nil }
        var hostPart = text
        var port: Substring? = nil
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let after = text[text.index(after: close)...]
            if after.hasPrefix(":") { port = after.dropFirst() } else if !after.isEmpty { return nil }
            hostPart = text[...close]
        } else if let colon = text.lastIndex(of: ":") {
            port = text[text.index(after: colon)...]
            hostPart = text[..<colon]
        }
        guard !hostPart.isEmpty, !hostPart.contains(":") || hostPart.hasPrefix("["), isHostName(hostPart) else {
            return nil
        }
        if let port {
            guard isPort(port) else { return nil }
        }
        return (hostPart.lowercased(), port.map(String.init))
    }

    /// 1 to 65535, ASCII digits only.
    static func isPort(_ text: Substring) -> Bool {
        guard (1...5).contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let value = Int(text)
        else { return false }
        return (1...65535).contains(value)
    }

    /// `.` or `..` segments, raw or percent-encoded (`%2e`, `.%2E`, …): a browser resolves them
    /// when it follows the redirect, so a URI that matched a pattern could land somewhere else. A
    /// malformed escape counts as one too: what cannot be decoded cannot be shown to be safe.
    static func hasDotSegments(_ path: String) -> Bool {
        for segment in path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            var decoded = [UInt8]()
            var iterator = segment.makeIterator()
            while let byte = iterator.next() {
                guard byte == UInt8(ascii: "%") else {
                    decoded.append(byte)
                    continue
                }
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    return true
                }
                decoded.append(high << 4 | low)
            }
            if decoded == [0x2E] || decoded == [0x2E, 0x2E] { return true }
        }
        return false
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// A host of letters, digits, hyphens and dots (IDNs in their xn-- form), or an IP literal
    /// in brackets.
    static func isHostName(_ host: Substring) -> Bool {
        if host.hasPrefix("[") {
            return host.hasSuffix("]")
                && host.dropFirst().dropLast().utf8.allSatisfy { byte in
                    (0x30...0x39).contains(byte) || (0x61...0x66).contains(byte) || (0x41...0x46).contains(byte)
                        || byte == UInt8(ascii: ":") || byte == UInt8(ascii: ".")
                }
        }
        return host.utf8.allSatisfy { byte in
            (0x30...0x39).contains(byte) || (0x61...0x7A).contains(byte) || (0x41...0x5A).contains(byte)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
        }
    }

    static func isLoopback(_ parts: Parts) -> Bool {
        guard parts.scheme == "http", let host = parts.host else { return false }
        return isLoopbackHost(host)
    }

    /// Why a redirect URI cannot be registered, or nil when it can.
    package static func problem(
        _ uri: String,
        applicationType: String,
        allowedPatterns: [RedirectPattern]?
    ) -> String? {
        guard let parts = parts(uri) else {
            return "redirect_uris: each must be an absolute URI without userinfo, fragment or dot-segments"
        }
        if unsafeSchemes.contains(parts.scheme) { return "redirect_uris: the \(parts.scheme): scheme is not allowed" }
        switch parts.scheme {
        case "https": if parts.host == nil { return "redirect_uris: an https URI needs a host" }
        case "http": if !isLoopback(parts) { return "redirect_uris: http is allowed only for loopback hosts" }
        default:
            if applicationType != "native" { return "redirect_uris: a custom scheme needs application_type \"native\"" }
        }
        if let allowedPatterns, !allowedPatterns.contains(where: { $0.matches(parts) }) {
            return "redirect_uris: not among the allowed redirect URIs"
        }
        return nil
    }

    /// Exact match, except that a loopback redirect URI may use any port (RFC 8252 §7.3).
    package static func matches(requested: String, registered: String) -> Bool {
        if requested == registered { return parts(requested) != nil }
        guard var asked = parts(requested), var known = parts(registered), isLoopback(asked), isLoopback(known) else {
            return false
        }
        asked.port = nil
        known.port = nil
        return asked == known
    }
}

/// One entry of `allowed_client_redirect_uris`, parsed once: the scheme exactly; the host
/// exactly, or `*.` + a domain meaning one or more labels under it (never the domain itself);
/// the port exactly or `*` (none written: the scheme's default, or any port for a loopback
/// host, RFC 8252); the path with `*` matching any run of path characters (an empty path or
/// "/" matches any path, as FastMCP's patterns do); a query only exactly. A `*` anywhere else
/// makes the pattern invalid.
package struct RedirectPattern: Sendable, Equatable {
    enum Host: Sendable, Equatable {
        case exact(String)
        /// One or more labels under this domain.
        case below(String)
    }

    enum Port: Sendable, Equatable {
        case any
        case exact(String?)
    }

    let scheme: String
    let host: Host?
    let port: Port
    let path: String
    let query: String?

    package init(_ text: String) throws {
        func invalid(_ why: String) -> AuthError {
            AuthError(.invalidConfig, "allowed_client_redirect_uris: a pattern \(why)")
        }
        guard text.utf8.count <= RedirectURIs.maxLength,
            !text.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F || $0 == "\\" || $0 == "#" })
        else { throw invalid("has spaces, control characters, a backslash or a fragment") }
        // Take the wildcards out of the places they may stand, then parse what is left as a URI.
        var working = text
        var hostPattern: Host? = nil
        var anyPort = false
        guard let schemeEnd = working.firstRange(of: "://") else {
            guard !working.contains("*"), let parts = RedirectURIs.parts(working) else {
                throw invalid("is not an absolute URI")
            }
            (scheme, host, port, path, query) = (parts.scheme, nil, .exact(nil), parts.path, parts.query)
            return
        }
        let afterScheme = working[schemeEnd.upperBound...]
        let authorityEnd = afterScheme.firstIndex { $0 == "/" || $0 == "?" } ?? afterScheme.endIndex
        var authority = String(afterScheme[..<authorityEnd])
        if authority.hasPrefix("*.") {
            authority.removeFirst(2)
            hostPattern = .below("")
        }
        if authority.hasSuffix(":*") {
            authority.removeLast(2)
            anyPort = true
        }
        guard !authority.contains("*") else { throw invalid("may use * only as a leading \"*.\" label or as the port") }
        let pathPart = String(afterScheme[authorityEnd...])
        let pathOnly = pathPart.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        if pathPart.contains("?"),
            pathPart.split(separator: "?", maxSplits: 1).dropFirst().contains(where: {
                $0.contains("*")
            })
        {
            throw invalid("may not use * in its query")
        }
        // Parse with the path's wildcards standing in as ordinary characters.
        working = String(working[..<schemeEnd.upperBound]) + authority + pathPart.replacing("*", with: "x")
        guard let parts = RedirectURIs.parts(working), let parsedHost = parts.host else {
            throw invalid("is not an absolute URI with a host, or has userinfo or dot-segments")
        }
        if case .below = hostPattern {
            guard parsedHost.contains("."), !parsedHost.hasPrefix("["), ipv4Octets(parsedHost) == nil else {
                throw invalid("with \"*.\" must name a domain under it")
            }
            hostPattern = .below(parsedHost)
        } else {
            hostPattern = .exact(parsedHost)
        }
        scheme = parts.scheme
        host = hostPattern
        port = anyPort ? .any : .exact(parts.port)
        path = String(pathOnly)
        query = parts.query
    }

    package func matches(_ uri: RedirectURIs.Parts) -> Bool {
        guard uri.scheme == scheme, uri.query == query else { return false }
        guard let host else { return uri.host == nil && uri.path == path }
        guard let uriHost = uri.host else { return false }
        switch host {
        case .exact(let name): guard uriHost == name else { return false }
        case .below(let domain):
            guard uriHost.hasSuffix("." + domain), uriHost.count > domain.count + 1 else { return false }
        }
        switch port {
        case .any: break
        case .exact(let expected):
            if case .exact(let name) = host, expected == nil, isLoopbackHost(name) { break }
            guard (uri.port ?? Self.defaultPort(scheme)) == (expected ?? Self.defaultPort(scheme)) else { return false }
        }
        if path.isEmpty || path == "/" { return true }
        return Self.glob(path, matches: uri.path)
    }

    static func defaultPort(_ scheme: String) -> String? {
        switch scheme {
        case "https": return "443"
        case "http": return "80"
        default: return nil
        }
    }

    /// `*` matches any run of characters of the path (the path holds no `?`, `#` or authority).
    static func glob(_ pattern: String, matches text: String) -> Bool {
        let p = Array(pattern.unicodeScalars)
        let t = Array(text.unicodeScalars)
        var pi = 0
        var ti = 0
        var star = -1
        var mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] != "*", p[pi] == t[ti] {
                pi += 1
                ti += 1
            } else if pi < p.count, p[pi] == "*" {
                star = pi
                mark = ti
                pi += 1
            } else if star >= 0 {
                pi = star + 1
                mark += 1
                ti = mark
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}
