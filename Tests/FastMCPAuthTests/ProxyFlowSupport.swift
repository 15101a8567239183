import Foundation
import Synchronization
import Testing

@testable import FastMCPAuth

/// The upstream provider for proxy tests, a real local HTTP server: any code "up-*" yields tokens
/// (with `scope` when one is set); refresh hands out a new access token; revocations and
/// refreshes are counted; `mode` makes it fail.
final class ProxyUpstream: Sendable {
    enum Mode: Sendable {
        case normal
        /// Every token request answers 503.
        case down
        /// Refresh requests answer invalid_grant (the upstream session ended).
        case refusesRefresh
    }

    final class State: Sendable {
        let revocations = Locked(0)
        let refreshes = Locked(0)
        let exchanges = Locked(0)
        let mode = Locked(Mode.normal)
        /// The `scope` the token response names (nil: none).
        let grantedScope = Locked<String?>(nil)
        let expiresIn = Locked(3600)
        /// Seconds a refresh answer is held back (to race something against it).
        let refreshDelay = Locked(0.0)
    }

    let server: LocalHTTPServer
    let state = State()
    var revocationCount: Int { state.revocations.withLock { $0 } }
    var refreshCount: Int { state.refreshes.withLock { $0 } }
    var baseURL: String { server.baseURL }

    init() throws {
        let state = self.state
        server = try LocalHTTPServer(requestHandler: { request in
            let form = Parameters(Form.decode(String(decoding: request.body, as: UTF8.self)) ?? [])
            let basic = "Basic " + Base64.encode(Array("up-client:up-secret".utf8), alphabet: .standard)
            guard request.headers["authorization"] == basic else {
                return .init(status: 401, body: Array(#"{"error":"invalid_client"}"#.utf8))
            }
            let mode = state.mode.withLock { $0 }
            if mode == .down, request.path == "/token" { return .init(status: 503, body: Array("down".utf8)) }
            var tokens: [String: JSONValue] = [
                "token_type": "Bearer", "expires_in": .int(Int64(state.expiresIn.withLock { $0 })),
            ]
            if let scope = state.grantedScope.withLock({ $0 }) { tokens["scope"] = .string(scope) }
            switch (request.path, form["grant_type"]) {
            case ("/token", "authorization_code"):
                guard form["code"]?.hasPrefix("up-") == true, form["code_verifier"] != nil else {
                    return .init(
                        status: 400,
                        body: Array(#"{"error":"invalid_grant","error_description":"<script>x</script>"}"#.utf8)
                    )
                }
                let count = state.exchanges.withLock { value -> Int in
                    value += 1
                    return value
                }
                tokens["access_token"] = .string("upstream-access-\(count)")
                tokens["refresh_token"] = .string("upstream-refresh-\(count)")
                return .init(body: Array(JSONValue.object(tokens).serialized().utf8))
            case ("/token", "refresh_token"):
                if mode == .refusesRefresh {
                    return .init(status: 400, body: Array(#"{"error":"invalid_grant"}"#.utf8))
                }
                let count = state.refreshes.withLock { value -> Int in
                    value += 1
                    return value
                }
                tokens["access_token"] = .string("upstream-renewed-\(count)")
                return .init(
                    body: Array(JSONValue.object(tokens).serialized().utf8),
                    delay: state.refreshDelay.withLock { $0 }
                )
            case ("/revoke", _):
                state.revocations.withLock { $0 += 1 }
                return .init(body: [])
            default:
                return .init(status: 404)
            }
        })
    }

    /// The facade of an oauth_proxy in front of this upstream.
    func proxy(
        clock: TestClock,
        _ extra: [String: JSONValue] = [:],
        store: Store? = nil,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) throws -> AuthFacade {
        var config: [String: JSONValue] = [
            "provider": "oauth_proxy", "base_url": "http://127.0.0.1:8000",
            "upstream_authorization_endpoint": .string(baseURL + "/authorize"),
            "upstream_token_endpoint": .string(baseURL + "/token"),
            "upstream_revocation_endpoint": .string(baseURL + "/revoke"),
            "upstream_client_id": "up-client", "upstream_client_secret": "up-secret",
            "valid_scopes": ["read", "write"], "required_scopes": ["read"],
        ]
        config.merge(extra) { _, new in new }
        return try AuthFacade(json: .object(config), clock: clock.function, log: log)
    }
}

/// A client-side view of one authorization: what one browser and one MCP client do. The
/// browser keeps the binding cookie the consent page sets.
final class ProxyFlow: @unchecked Sendable {  // Used by one test thread at a time.
    let auth: AuthFacade
    var clientID = ""
    let redirectURI = "http://127.0.0.1:33418/callback"
    let verifier = Base64URL.encode([UInt8](repeating: 7, count: 32))
    var challenge: String { Base64URL.encode((try? OpenSSL.sha256(Array(verifier.utf8))) ?? []) }
    /// The browser's cookie header ("name=value"), once a consent page has set one.
    var cookie: String?
    static let base = "http://127.0.0.1:8000"

    init(auth: AuthFacade) { self.auth = auth }

    func send(
        _ method: String,
        _ target: String,
        body: String = "",
        headers: [(String, String)] = [],
        address: String = "192.0.2.1"
    ) -> AuthResponse {
        let request = AuthRequest(
            method: method,
            target: target.hasPrefix(Self.base) ? String(target.dropFirst(Self.base.count)) : target,
            headers: headers.map { (name: $0.0, value: $0.1) },
            body: Array(body.utf8),
            clientAddress: address
        )
        return auth.handle(request) ?? AuthResponse(status: 404, headers: [:], body: [])
    }

    /// A browser request: carries the cookie, keeps any cookie it is given.
    func browse(_ method: String, _ target: String, body: String = "", headers: [(String, String)] = []) -> AuthResponse
    {
        var all = headers
        if let cookie { all.append(("Cookie", cookie)) }
        if method == "POST" { all.append(("Content-Type", "application/x-www-form-urlencoded")) }
        let response = send(method, target, body: body, headers: all)
        if let set = response.headers["Set-Cookie"], let pair = set.split(separator: ";").first {
            cookie = String(pair)
        }
        return response
    }

    func form(_ target: String, _ pairs: [(String, String)], headers: [(String, String)] = []) -> AuthResponse {
        send(
            "POST",
            target,
            body: Form.encode(pairs),
            headers: [("Content-Type", "application/x-www-form-urlencoded")] + headers
        )
    }

    func register(_ metadata: JSONValue? = nil) throws {
        let body = metadata ?? ["redirect_uris": .array([.string(redirectURI)]), "client_name": "Test <Client>"]
        let response = send("POST", "/register", body: body.serialized())
        #expect(response.status == 201)
        clientID = try #require(try JSONValue.parse(response.body)["client_id"]?.stringValue)
    }

    func authorizeQuery(_ overrides: [(String, String?)] = []) -> String {
        var pairs: [(String, String?)] = [
            ("response_type", "code"), ("client_id", clientID), ("redirect_uri", redirectURI),
            ("code_challenge", challenge), ("code_challenge_method", "S256"), ("state", "st-1"),
            ("scope", "read write"), ("resource", "http://127.0.0.1:8000/mcp"),
        ]
        for (name, value) in overrides {
            pairs.removeAll { $0.0 == name }
            if let value { pairs.append((name, value)) }
        }
        return "/authorize?" + Form.encode(pairs.compactMap { pair in pair.1.map { (pair.0, $0) } })
    }

    /// authorize → the consent page: (transaction id, CSRF token, page).
    func consentPage(_ overrides: [(String, String?)] = []) throws -> (txn: String, csrf: String, page: AuthResponse) {
        let authorize = browse("GET", authorizeQuery(overrides))
        #expect(authorize.status == 302)
        let page = browse("GET", try #require(authorize.headers["Location"]))
        #expect(page.status == 200 && page.headers["X-Frame-Options"] == "DENY")
        let csrf = try #require(Self.field("csrf_token", in: page.bodyText))
        let txn = try #require(Self.field("txn_id", in: page.bodyText))
        return (txn, csrf, page)
    }

    func decide(txn: String, csrf: String, action: String = "approve", headers: [(String, String)] = []) -> AuthResponse
    {
        browse(
            "POST",
            "/consent",
            body: Form.encode([("txn_id", txn), ("csrf_token", csrf), ("action", action)]),
            headers: headers
        )
    }

    /// authorize → consent page → approve: (transaction id, upstream URL).
    func consent(_ overrides: [(String, String?)] = []) throws -> (txn: String, upstream: String) {
        let (txn, csrf, _) = try consentPage(overrides)
        let approved = decide(txn: txn, csrf: csrf)
        #expect(approved.status == 302)
        return (txn, approved.headers["Location"] ?? "")
    }

    /// The upstream redirects the browser back; returns the client's redirect parameters (or
    /// ["status": …] when the answer is not a redirect to the client).
    func callback(txn: String, code: String = "up-code") -> [String: String] {
        Self.clientParameters(
            browse("GET", "/auth/callback?" + Form.encode([("code", code), ("state", txn)])),
            redirectURI
        )
    }

    static func clientParameters(_ response: AuthResponse, _ redirectURI: String) -> [String: String] {
        guard response.status == 302, let location = response.headers["Location"], location.hasPrefix(redirectURI)
        else {
            return ["status": String(response.status)]
        }
        let query = location.split(separator: "?", maxSplits: 1).last.map(String.init) ?? ""
        return Dictionary(Form.decode(query) ?? [], uniquingKeysWith: { first, _ in first })
    }

    func exchange(
        _ code: String,
        verifier: String? = nil,
        client: String? = nil,
        redirect: String? = nil,
        extra: [(String, String)] = []
    ) -> (Int, [String: JSONValue]) {
        let response = form(
            "/token",
            [
                ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect ?? redirectURI),
                ("code_verifier", verifier ?? self.verifier), ("client_id", client ?? clientID),
            ] + extra
        )
        return (response.status, (try? JSONValue.parse(response.body).objectValue) ?? [:])
    }

    func refresh(_ token: String, client: String? = nil, scope: String? = nil) -> (Int, [String: JSONValue]) {
        var pairs = [("grant_type", "refresh_token"), ("refresh_token", token), ("client_id", client ?? clientID)]
        if let scope { pairs.append(("scope", scope)) }
        let response = form("/token", pairs)
        return (response.status, (try? JSONValue.parse(response.body).objectValue) ?? [:])
    }

    static func field(_ name: String, in html: String) -> String? {
        guard let range = html.range(of: "name=\"\(name)\" value=\"") else { return nil }
        let rest = html[range.upperBound...]
        return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
    }

    /// A code for this client, through a whole browser flow.
    func code(_ overrides: [(String, String?)] = []) throws -> String {
        if clientID.isEmpty { try register() }
        let (txn, _) = try consent(overrides)
        return try #require(callback(txn: txn)["code"])
    }

    /// The whole flow to a token response.
    func tokens(_ overrides: [(String, String?)] = []) throws -> [String: JSONValue] {
        let (status, body) = exchange(try code(overrides))
        #expect(status == 200)
        return body
    }

    /// The status the MCP endpoint answers for a bearer token.
    func bearer(_ token: String?, scopes: [String] = []) -> Int {
        switch auth.authenticate(authorization: token.map { "Bearer " + $0 }, requiredScopes: scopes) {
        case .authenticated: return 200
        case .challenge(let response): return response.status
        }
    }
}
