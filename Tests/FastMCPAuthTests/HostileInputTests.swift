import Foundation
import Synchronization
import Testing

@testable import FastMCPAuth

/// Input that used to trap or overflow the stack: huge claim times, huge TTLs and lifetimes,
/// deeply nested JSON everywhere the library parses it, control characters headed for headers.
/// Each is a specific status, never a crash; the nesting cases run on a 128 KiB thread stack
/// (musl's default), where a recursive parse of ~2000 levels would overflow.
@Suite struct HostileInputTests {
    static let now: Double = 1_800_000_000
    let clock = TestClock(HostileInputTests.now)
    let secret = "0123456789abcdef0123456789abcdef"

    func hsVerifier(_ extra: [String: JSONValue] = [:]) throws -> JWTVerifier {
        var config: [String: JSONValue] = ["public_key": .string(secret), "algorithm": "HS256", "cache_size": 0]
        config.merge(extra) { _, new in new }
        return try JWTVerifier(json: .object(config), clock: clock.function)
    }

    func hs(header: String = #"{"alg":"HS256"}"#, claims: String) throws -> String {
        let key = try JSONWebKey(sharedSecret: Array(secret.utf8))
        return try rawToken(header: header, claims: claims) { try key.sign(.HS256, input: $0) }
    }

    /// Runs `body` on a thread with a 128 KiB stack and waits for it.
    static func onSmallStack(_ body: @escaping @Sendable () -> Void) {
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            body()
            done.signal()
        }
        thread.stackSize = 128 * 1024
        thread.start()
        done.wait()
    }

    static func nested(_ depth: Int) -> String {
        String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
    }

    @Test(arguments: ["1e300", "9223372036854775808", "9.3e18", "-1e300", "9007199254740993"])
    func claimTimesOutOfRangeAreInvalidClaims(value: String) throws {
        let verifier = try hsVerifier(["require_exp": false])
        for name in ["exp", "nbf", "iat"] {
            let token = try hs(claims: #"{"sub":"a","\#(name)":\#(value)}"#)
            #expect(outcome { try verifier.verify(token) } == .invalidClaim, "\(name)=\(value)")
        }
        // 2^53 itself is still a time.
        let edge = try hs(claims: #"{"sub":"a","exp":9007199254740992}"#)
        #expect(outcome { try verifier.verify(edge) } == .ok)
    }

    @Test func deepNestingIsRefusedBeforeItRecurses() throws {
        let verifier = try hsVerifier(["require_exp": false, "max_token_bytes": 1_048_576])
        let deepHeader = try hs(header: #"{"alg":"HS256","x":\#(Self.nested(100_000))}"#, claims: #"{"sub":"a"}"#)
        let deepClaims = try hs(claims: #"{"sub":"a","x":\#(Self.nested(100_000))}"#)
        let atCap = try hs(claims: #"{"sub":"a","x":\#(Self.nested(31))}"#)
        let overCap = try hs(claims: #"{"sub":"a","x":\#(Self.nested(32))}"#)
        let results = Locked([ErrorCode]())
        Self.onSmallStack {
            let codes = [deepHeader, deepClaims, atCap, overCap].map { token in
                outcome { try verifier.verify(token) }
            }
            results.withLock { $0 = codes }
        }
        #expect(results.withLock { $0 } == [.malformedHeader, .malformedClaims, .ok, .malformedClaims])
        // The cap is configurable.
        let wider = try hsVerifier(["require_exp": false, "max_json_depth": 40, "max_token_bytes": 1_048_576])
        #expect(outcome { try wider.verify(overCap) } == .ok)
        #expect(outcome { try hsVerifier(["max_json_depth": 0]) } == .invalidConfig)
    }

    @Test func deepNestingInConfigurationsStoreValuesAndBodies() throws {
        let deep = #"{"a":\#(Self.nested(100_000))}"#
        let codes = Locked([ErrorCode]())
        let directory = NSTemporaryDirectory() + "fma-deep-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let url = "sqlite:///" + directory + "/s.db"
        let store = try Store(url: url)
        let raw = try SQLiteBackend(path: directory + "/s.db", busyTimeoutMilliseconds: 1000)
        _ = try raw.put("c", "deep", valueJSON: deep, value: [:], ttl: nil, onlyIfAbsent: false, now: Self.now)
        let facade = try AuthFacade(
            json: [
                "provider": "oauth_proxy", "base_url": "http://127.0.0.1:8000",
                "upstream_authorization_endpoint": "http://127.0.0.1:9/authorize",
                "upstream_token_endpoint": "http://127.0.0.1:9/token", "upstream_client_id": "c",
                "upstream_client_secret": "s",
            ]
        )
        Self.onSmallStack {
            var found = [ErrorCode]()
            // A configuration (as the C API and Python pass it): invalid_config.
            found.append(
                outcome {
                    guard let json = try? JSONValue.parse(#"{"provider":"jwt","public_key":\#(Self.nested(100_000))}"#)
                    else { throw AuthError(.invalidConfig, "nested too deep") }
                    return try AuthFacade(json: json)
                }
            )
            // A stored value: corrupted_value.
            found.append(outcome { try store.get("c", "deep") as Any })
            // A request body: 400.
            let body = #"{"redirect_uris":\#(Self.nested(10_000))}"#
            let response = facade.handle(AuthRequest(method: "POST", target: "/register", body: Array(body.utf8)))
            found.append(response?.status == 400 ? .ok : .internalError)
            codes.withLock { $0 = found }
        }
        #expect(codes.withLock { $0 } == [.invalidConfig, .corruptedValue, .ok])
        #expect(JSONValue.exceedsDepth(Array(#"["[[[[[[", {"a":"]]]"}]"#.utf8), 2) == nil, "brackets in strings")
        #expect(JSONValue.exceedsDepth(Array(#"[[["\"[[[["]]]"#.utf8), 3) == nil, "an escaped quote")
        #expect(JSONValue.exceedsDepth(Array("[[[[]]]]".utf8), 3) == 3)
    }

    @Test func ttlsLifetimesTimeoutsAndIterationsAreBounded() throws {
        let store = try Store(url: "memory://")
        for ttl in [1e16, 1e17, 1e300, .infinity, .nan, 0, -1, Store.maxTTL + 1] {
            #expect(outcome { try store.put("c", "k", ["a": 1], ttl: ttl) } == .invalidArgument, "\(ttl)")
        }
        let base: [String: JSONValue] = [
            "provider": "oidc_proxy", "base_url": "http://127.0.0.1:8000", "config_url": "http://127.0.0.1:9/x",
            "client_id": "c", "client_secret": "s",
        ]
        for (key, value) in [
            ("timeout_seconds", 1e300), ("timeout_seconds", 1e16), ("timeout_seconds", 0),
            ("transaction_lifetime", 1e300), ("access_token_lifetime", 1e300), ("refresh_token_lifetime", -1),
        ] as [(String, Double)] {
            // Refused before the discovery document is fetched (nothing listens on :9).
            #expect(
                outcome { try AuthFacade(json: .object(base.merging([key: .double(value)]) { $1 })) } == .invalidConfig,
                "\(key)=\(value)"
            )
        }
        #expect(
            outcome { try JWTVerifier(json: ["jwks_uri": "http://127.0.0.1:9/jwks", "jwks_timeout": 1e16]) }
                == .invalidConfig
        )
        #expect(
            outcome { try Store(url: "memory://", options: Store.Options(json: ["timeout": 1e300])) } == .invalidConfig
        )
        #expect(
            outcome {
                try AuthFacade(
                    json: .object(
                        base.merging(["provider": "oauth_proxy", "testing": true, "pbkdf2_iterations": 2_147_483_647]) {
                            $1
                        }
                    )
                )
            } == .invalidConfig
        )
    }

    @Test func controlCharactersNeverReachAHeader() throws {
        for (key, value) in [
            ("mcp_path", "/mcp\r\nSet-Cookie: x=1"), ("base_url", "https://h.example\r\nX: 1"),
            ("required_scopes", "read\r\nX: 1"), ("required_scopes", "re\"ad"),
        ] as [(String, String)] {
            var config: [String: JSONValue] = [
                "provider": "jwt", "public_key": .string(secret), "algorithm": "HS256", "base_url": "https://h.example",
            ]
            config[key] = key == "required_scopes" ? .array([.string(value)]) : .string(value)
            #expect(outcome { try AuthFacade(json: .object(config)) } == .invalidConfig, "\(key)")
        }
        #expect(outcome { try ScopeNames.parseArgument("read\nX: 1") } == .invalidArgument)
        #expect(try ScopeNames.parseArgument("read  write") == ["read", "write"])
        // And whatever is built, an emitted header never carries one.
        let response = AuthResponse(
            status: 200,
            headers: ["X-Test": "a\r\nSet-Cookie: evil", "Bad\nName": "v"],
            body: []
        )
        #expect(response.headers == ["X-Test": "aSet-Cookie: evil"])
    }
}
