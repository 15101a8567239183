/// Redirect URI rules for registration and authorization (RFC 6749 §3.1.2, RFC 8252, OAuth 2.1).
enum RedirectURIs {
    static let maxLength = 2048
    /// Schemes that run code or read local data in a browser: never a redirect target.
    static let unsafeSchemes: Set<String> = [
        "javascript", "data", "file", "vbscript", "blob", "about", "filesystem", "view-source", "ws", "wss",
    ]

    struct Parts: Equatable {
        var scheme: String
        var host: String?
        var port: String?
        var pathAndQuery: String
    }

    /// Splits an absolute URI without a fragment; nil when it is not one.
    static func parts(_ uri: String) -> Parts? {
        guard !uri.isEmpty, uri.utf8.count <= maxLength, !uri.contains("#"),
            !uri.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F }),
            let colon = uri.firstIndex(of: ":")
        else { return nil }
        let scheme = uri[..<colon].lowercased()
        guard let first = scheme.unicodeScalars.first, ("a"..."z").contains(first),
            scheme.unicodeScalars.allSatisfy({
                ("a"..."z").contains($0) || ("0"..."9").contains($0) || "+-.".unicodeScalars.contains($0)
            })
        else { return nil }
        let rest = uri[uri.index(after: colon)...]
        guard rest.hasPrefix("//") else {
            return Parts(scheme: scheme, host: nil, port: nil, pathAndQuery: String(rest))
        }
        let authorityAndPath = rest.dropFirst(2)
        let end = authorityAndPath.firstIndex { $0 == "/" || $0 == "?" } ?? authorityAndPath.endIndex
        var authority = authorityAndPath[..<end]
        if authority.contains("@") { return nil }  // userinfo in a redirect URI only serves to deceive
        var port: String? = nil
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { port = String(after.dropFirst()) } else if !after.isEmpty { return nil }
            authority = authority[...close]
        } else if let portColon = authority.lastIndex(of: ":") {
            port = String(authority[authority.index(after: portColon)...])
            authority = authority[..<portColon]
        }
        if let port, !port.isEmpty, !port.allSatisfy(\.isNumber) { return nil }
        guard !authority.isEmpty else { return nil }
        return Parts(
            scheme: scheme,
            host: authority.lowercased(),
            port: port,
            pathAndQuery: String(authorityAndPath[end...])
        )
    }

    static func isLoopback(_ parts: Parts) -> Bool {
        guard parts.scheme == "http", let host = parts.host else { return false }
        return host == "localhost" || host == "[::1]" || host.hasPrefix("127.")
    }

    /// Why a redirect URI cannot be registered, or nil when it can.
    static func problem(_ uri: String, applicationType: String, allowedPatterns: [String]?) -> String? {
        guard let parts = parts(uri) else { return "redirect_uris: each must be an absolute URI without a fragment" }
        if unsafeSchemes.contains(parts.scheme) { return "redirect_uris: the \(parts.scheme): scheme is not allowed" }
        switch parts.scheme {
        case "https": if parts.host == nil { return "redirect_uris: an https URI needs a host" }
        case "http": if !isLoopback(parts) { return "redirect_uris: http is allowed only for loopback hosts" }
        default:
            if applicationType != "native" { return "redirect_uris: a custom scheme needs application_type \"native\"" }
        }
        if let allowedPatterns, !allowedPatterns.contains(where: { glob($0, matches: uri) }) {
            return "redirect_uris: not among the allowed redirect URIs"
        }
        return nil
    }

    /// Exact match, except that a loopback redirect URI may use any port (RFC 8252 §7.3).
    static func matches(requested: String, registered: String) -> Bool {
        if requested == registered { return true }
        guard var asked = parts(requested), var known = parts(registered), isLoopback(asked), isLoopback(known) else {
            return false
        }
        asked.port = nil
        known.port = nil
        return asked == known
    }

    /// Shell-style pattern where `*` matches any run of characters (as FastMCP's allowed patterns).
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
