/// The proxy's HTTP answers: OAuth JSON errors, redirects, and HTML pages that frame nothing,
/// load nothing and escape everything.
package enum Responses {
    package static func json(_ status: Int, _ value: JSONValue, headers: [String: String] = [:]) -> AuthResponse {
        var all = ["Content-Type": "application/json", "Cache-Control": "no-store"]
        all.merge(headers) { _, new in new }
        return AuthResponse(status: status, headers: all, body: Array(value.serialized().utf8))
    }

    /// An OAuth error body (RFC 6749 §5.2). Descriptions are ours, never echoed input.
    package static func oauthError(
        _ status: Int,
        _ error: String,
        _ description: String,
        headers: [String: String] = [:]
    ) -> AuthResponse {
        var all = ["Access-Control-Allow-Origin": "*", "Pragma": "no-cache"]
        all.merge(headers) { _, new in new }
        return json(status, ["error": .string(error), "error_description": .string(description)], headers: all)
    }

    package static func redirect(_ location: String, headers: [String: String] = [:]) -> AuthResponse {
        var all = ["Location": location, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"]
        all.merge(headers) { _, new in new }
        return AuthResponse(status: 302, headers: all, body: [])
    }

    static func methodNotAllowed(_ allowed: String) -> AuthResponse {
        json(405, ["error": "method_not_allowed"], headers: ["Allow": allowed])
    }

    static func preflight() -> AuthResponse {
        AuthResponse(
            status: 204,
            headers: [
                "Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type, Authorization, MCP-Protocol-Version",
                "Access-Control-Max-Age": "86400",
            ],
            body: []
        )
    }

    /// An HTML page with the headers that keep it from being framed or scripted.
    package static func html(_ status: Int, _ page: String, formTargets: [String] = []) -> AuthResponse {
        let origins = formTargets.compactMap { AuthFacade.origin(of: $0) }
        let formAction = (["'self'"] + origins).joined(separator: " ")
        return AuthResponse(
            status: status,
            headers: [
                "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store", "X-Frame-Options": "DENY",
                "Content-Security-Policy":
                    "default-src 'none'; style-src 'unsafe-inline'; form-action \(formAction); frame-ancestors 'none'; base-uri 'none'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            ],
            body: Array(page.utf8)
        )
    }

    package static func errorPage(_ status: Int, _ message: String) -> AuthResponse {
        html(
            status,
            """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><title>Authorization error</title></head>
            <body style="font-family: sans-serif; max-width: 40em; margin: 4em auto"><h1>Authorization error</h1><p>\(escape(message))</p></body></html>
            """
        )
    }

    /// HTML text and attribute escaping.
    package static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Printable ASCII only, for log lines that mention a value from outside.
    package static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { (0x20..<0x7F).contains($0.value) ? $0 : "?" }))
    }

    /// The named cookie's value from a Cookie header.
    package static func cookie(_ name: String, in header: String?) -> String? {
        guard let header else { return nil }
        for part in header.split(separator: ";") {
            let trimmed = part.drop { $0 == " " }
            if trimmed.hasPrefix(name + "=") { return String(trimmed.dropFirst(name.count + 1)) }
        }
        return nil
    }
}

/// The consent page: who is asking (and whether anyone vouches for that), where the answer goes
/// (the whole redirect URI, its host emphasised), and for what.
struct ConsentPage {
    let clientName: String
    /// The host of the client's metadata document when it vouched for the client; nil for a
    /// self-registered (unverified) client.
    let verifiedHost: String?
    let redirectURI: String
    let scopes: [String]
    let action: String
    let transactionID: String
    let csrfToken: String

    /// A self-asserted name for display: control and format characters (bidi overrides,
    /// zero-width characters) removed, at most 100 characters.
    static func displayName(_ name: String) -> String {
        let kept = name.unicodeScalars.filter { scalar in
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator, .privateUse, .surrogate, .unassigned:
                return false
            default:
                return true
            }
        }
        let text = String(String.UnicodeScalarView(kept)).trimmingCharacters()
        return text.isEmpty ? "An unnamed client" : String(text.prefix(100))
    }

    /// The redirect URI, escaped, with its host in <strong>.
    static func redirectMarkup(_ uri: String) -> String {
        let e = Responses.escape
        guard let parts = RedirectURIs.parts(uri), let host = parts.host else {
            return "<strong>\(e(uri))</strong>"
        }
        let port = parts.port.map { ":" + $0 } ?? ""
        return "\(e(parts.scheme))://<strong>\(e(host))</strong>\(e(port))\(e(parts.pathAndQuery))"
    }

    func render() -> String {
        let e = Responses.escape
        let scopeList =
            scopes.isEmpty ? "<li>(no specific scope)</li>" : scopes.map { "<li><code>\(e($0))</code></li>" }.joined()
        let name = Self.displayName(clientName)
        let vouched =
            verifiedHost.map { "<p>Verified: its metadata document is published by <strong>\(e($0))</strong>.</p>" }
            ?? "<p><em>Unverified:</em> this client registered itself; its name is not checked by anyone.</p>"
        return """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><title>Authorize \(e(name))</title></head>
            <body style="font-family: sans-serif; max-width: 40em; margin: 4em auto">
            <h1>Authorize access</h1>
            <p><strong>\(e(name))</strong> wants to access this MCP server on your behalf.</p>
            \(vouched)
            <p>After you sign in, you will be sent back to <code>\(Self.redirectMarkup(redirectURI))</code>.</p>
            <p>Requested scopes:</p><ul>\(scopeList)</ul>
            <form method="post" action="\(e(action))">
            <input type="hidden" name="txn_id" value="\(e(transactionID))">
            <input type="hidden" name="csrf_token" value="\(e(csrfToken))">
            <button type="submit" name="action" value="approve">Allow</button>
            <button type="submit" name="action" value="deny">Deny</button>
            </form></body></html>
            """
    }
}
