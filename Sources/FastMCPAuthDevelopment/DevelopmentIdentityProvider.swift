import FastMCPAuth
import Synchronization

/// A tiny OAuth identity provider for development, so the complete proxy flow runs offline: a
/// login page that asks only for a user name, a token endpoint and a userinfo endpoint. It keeps
/// everything in memory and must only ever listen on loopback (the host refuses otherwise).
public final class DevelopmentIdentityProvider: Sendable {
    public let prefix: String
    public let clientID: String
    public let clientSecret: String
    let baseURL: String
    let callbackURL: String
    private let clock: @Sendable () -> Double
    private let codes = Locked<[String: Grant]>([:])
    private let tokens = Locked<[String: Grant]>([:])
    static let maxEntries = 10_000
    static let tokenLifetime: Double = 3600

    struct Grant {
        var user: String
        var scope: String
        var redirectURI: String
        var challenge: String?
        var expiresAt: Double
    }

    /// `baseURL` is the server's public base URL; the provider lives under `prefix` there and
    /// accepts exactly one client, the proxy, whose callback is `callbackURL`.
    public init(
        baseURL: String,
        prefix: String = "/dev-idp",
        callbackURL: String,
        clock: @escaping @Sendable () -> Double = JWTVerifier.systemClock
    ) throws {
        self.baseURL = baseURL.trimmingSuffix("/")
        self.prefix = prefix
        self.callbackURL = callbackURL
        self.clock = clock
        clientID = "fastmcpauth-dev-proxy"
        clientSecret = Base64URL.encode(try OpenSSL.randomBytes(32))
    }

    public var authorizationEndpoint: String { baseURL + prefix + "/authorize" }
    public var tokenEndpoint: String { baseURL + prefix + "/token" }
    public var userinfoEndpoint: String { baseURL + prefix + "/userinfo" }

    var basePath: String {
        guard let schemeEnd = baseURL.firstRange(of: "://") else { return "" }
        let afterScheme = baseURL[schemeEnd.upperBound...]
        guard let slash = afterScheme.firstIndex(of: "/") else { return "" }
        return String(afterScheme[slash...])
    }

    public func answers(path: String) -> Bool { path.hasPrefix(basePath + prefix + "/") }

    public func handle(_ request: AuthRequest) -> AuthResponse? {
        guard answers(path: request.path) else { return nil }
        // Password-less sign-in must never be reachable through a tunnel or a proxy: a request
        // naming any host but a loopback one is refused.
        guard let host = request.header("Host"), Self.isLoopbackAuthority(host) else {
            return Responses.errorPage(
                403,
                "The development identity provider answers only requests to a loopback host."
            )
        }
        switch (request.method, String(request.path.dropFirst(basePath.count))) {
        case ("GET", prefix + "/authorize"): return loginPage(request)
        case ("POST", prefix + "/authorize"): return login(request)
        case ("POST", prefix + "/token"): return token(request)
        case ("GET", prefix + "/userinfo"): return userinfo(request)
        default: return Responses.errorPage(404, "Not found.")
        }
    }

    /// A Host header naming localhost, 127.0.0.0/8 or [::1], with or without a port.
    static func isLoopbackAuthority(_ authority: String) -> Bool {
        var host = Substring(authority.lowercased())
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return false }
            let after = host[host.index(after: close)...]
            guard after.isEmpty || (after.hasPrefix(":") && after.dropFirst().allSatisfy(\.isASCIIDigit)) else {
                return false
            }
            return host[...close] == "[::1]"
        }
        if let colon = host.lastIndex(of: ":") {
            guard host[host.index(after: colon)...].allSatisfy(\.isASCIIDigit) else { return false }
            host = host[..<colon]
        }
        if host == "localhost" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "127" else { return false }
        return parts.allSatisfy { part in
            !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isASCIIDigit) && (Int(part) ?? 256) <= 255
        }
    }

    private func loginPage(_ request: AuthRequest) -> AuthResponse {
        let query = Parameters(Form.decode(request.queryString ?? "") ?? [])
        guard query["client_id"] == clientID, query["redirect_uri"] == callbackURL, query["response_type"] == "code"
        else {
            return Responses.errorPage(400, "This development identity provider serves only its own proxy.")
        }
        let e = Responses.escape
        let hidden = ["redirect_uri", "state", "scope", "code_challenge"].compactMap { name in
            query[name].map { "<input type=\"hidden\" name=\"\(name)\" value=\"\(e($0))\">" }
        }.joined()
        let page = """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><title>Development sign-in</title></head>
            <body style="font-family: sans-serif; max-width: 40em; margin: 4em auto">
            <h1>Development sign-in</h1>
            <p><strong>fastmcpauth's embedded development identity provider.</strong> There are no passwords:
            any user name signs in. Never expose this server beyond this machine.</p>
            <form method="post" action="\(e(authorizationEndpoint))">\(hidden)
            <label>User name <input name="username" required maxlength="64" autofocus></label>
            <button type="submit">Sign in</button></form></body></html>
            """
        return Responses.html(200, page, formTargets: [authorizationEndpoint, callbackURL])
    }

    private func login(_ request: AuthRequest) -> AuthResponse {
        let form = Parameters(Form.decode(String(decoding: request.body, as: UTF8.self)) ?? [])
        guard form["redirect_uri"] == callbackURL else { return Responses.errorPage(400, "Unknown redirect URI.") }
        guard let user = form["username"]?.trimmingCharacters(), (1...64).contains(user.count),
            user.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F })
        else {
            return Responses.errorPage(400, "Enter a user name of 1 to 64 characters.")
        }
        guard let code = try? Base64URL.encode(OpenSSL.randomBytes(24)) else {
            return Responses.errorPage(500, "No randomness.")
        }
        let now = clock()
        codes.withLock { table in
            table = table.filter { $0.value.expiresAt > now }
            if table.count < Self.maxEntries {
                table[code] = Grant(
                    user: user,
                    scope: form["scope"] ?? "",
                    redirectURI: callbackURL,
                    challenge: form["code_challenge"],
                    expiresAt: now + 120
                )
            }
        }
        var pairs = [("code", code)]
        if let state = form["state"] { pairs.append(("state", state)) }
        return Responses.redirect(Form.url(callbackURL, adding: pairs))
    }

    private func token(_ request: AuthRequest) -> AuthResponse {
        let expected =
            "Basic "
            + Base64.encode(Array((Form.encode(clientID) + ":" + Form.encode(clientSecret)).utf8), alphabet: .standard)
        guard let presented = request.header("Authorization"),
            OpenSSL.constantTimeEqual(Array(presented.utf8), Array(expected.utf8))
        else {
            return Responses.oauthError(401, "invalid_client", "Client authentication failed.")
        }
        let form = Parameters(Form.decode(String(decoding: request.body, as: UTF8.self)) ?? [])
        let now = clock()
        let grant: Grant
        switch form["grant_type"] {
        case "authorization_code":
            guard let code = form["code"], let found = codes.withLock({ $0.removeValue(forKey: code) }),
                found.expiresAt > now,
                form["redirect_uri"] == found.redirectURI
            else {
                return Responses.oauthError(400, "invalid_grant", "The code is invalid or expired.")
            }
            if let challenge = found.challenge {
                guard let verifier = form["code_verifier"],
                    (try? Base64URL.encode(OpenSSL.sha256(Array(verifier.utf8)))) == challenge
                else {
                    return Responses.oauthError(400, "invalid_grant", "PKCE verification failed.")
                }
            }
            grant = found
        case "refresh_token":
            guard let refresh = form["refresh_token"],
                let found = tokens.withLock({ $0.removeValue(forKey: "r:" + refresh) })
            else {
                return Responses.oauthError(400, "invalid_grant", "The refresh token is invalid.")
            }
            grant = found
        default:
            return Responses.oauthError(400, "unsupported_grant_type", "authorization_code or refresh_token.")
        }
        guard let access = try? Base64URL.encode(OpenSSL.randomBytes(24)),
            let refresh = try? Base64URL.encode(OpenSSL.randomBytes(24))
        else {
            return Responses.oauthError(500, "server_error", "No randomness.")
        }
        tokens.withLock { table in
            table = table.filter { $0.value.expiresAt > now }
            guard table.count < Self.maxEntries - 1 else { return }
            var issued = grant
            issued.expiresAt = now + Self.tokenLifetime
            table["a:" + access] = issued
            issued.expiresAt = now + 30 * 86400
            table["r:" + refresh] = issued
        }
        return Responses.json(
            200,
            [
                "access_token": .string(access), "token_type": "Bearer", "expires_in": .int(Int64(Self.tokenLifetime)),
                "refresh_token": .string(refresh), "scope": .string(grant.scope),
            ]
        )
    }

    private func userinfo(_ request: AuthRequest) -> AuthResponse {
        guard let header = request.header("Authorization"), header.hasPrefix("Bearer "),
            let grant = tokens.withLock({ $0["a:" + String(header.dropFirst(7))] }), grant.expiresAt > clock()
        else {
            return Responses.json(
                401,
                ["error": "invalid_token"],
                headers: ["WWW-Authenticate": "Bearer error=\"invalid_token\""]
            )
        }
        return Responses.json(
            200,
            ["sub": .string(grant.user), "name": .string(grant.user), "preferred_username": .string(grant.user)]
        )
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
