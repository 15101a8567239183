// Fuzz targets for everything that parses input: built with `-sanitize=fuzzer` (and
// -DFUZZING) by `make fuzz`, this is a libFuzzer binary that runs the target named by
// FASTMCPAUTH_FUZZ_TARGET; built normally, it replays files through a target
// (`fastmcpauth-fuzz TARGET FILE...`), so every corpus entry is also a regression test.
// A target may reject its input with any error; it must never trap, hang or leak.
import FastMCPAuth

#if FUZZING
import CFuzzDriver
#endif

#if canImport(Glibc)
import Glibc
#endif

enum FuzzTargets {
    static let names = ["jwt", "jwk", "json", "form", "redirect", "fernet", "envelope", "facade", "client"]

    static let secret = "0123456789abcdef0123456789abcdef"
    static let verifier: JWTVerifier? = try? JWTVerifier(
        json: ["public_key": .string(secret), "algorithms": ["HS256"], "cache_size": 0, "require_exp": false]
    )
    static let fernetKey = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
    static let fernet: Fernet? = try? Fernet(key: fernetKey)
    static let store: Store? = {
        var options = Store.Options()
        options.encryptionKeys = [fernetKey]
        return try? Store(url: "memory://", options: options)
    }()
    static let patterns: [RedirectPattern] = [
        "https://*.corp.example/cb", "http://localhost:*", "https://app.example/auth/*",
    ].compactMap { try? RedirectPattern($0) }
    /// An OAuth proxy in front of an upstream that never answers (nothing listens on port 9),
    /// on a memory store: every route, with arbitrary requests.
    static let facade: AuthFacade? = try? AuthFacade(
        json: [
            "provider": "oauth_proxy", "base_url": "http://127.0.0.1:8000",
            "upstream_authorization_endpoint": "http://127.0.0.1:9/authorize",
            "upstream_token_endpoint": "http://127.0.0.1:9/token", "upstream_client_id": "c",
            "upstream_client_secret": "s", "valid_scopes": ["read", "write"], "client_id_metadata_documents": false,
            "registration_rate_limit": 1_000_000_000, "authorize_rate_limit": 1_000_000_000,
            "consent_rate_limit": 1_000_000_000,
        ]
    )

    /// The client's sign-in in progress, for the callback queries the loopback listener receives
    /// (its state is fixed, so the fuzzer can find the accepted branch too).
    static let pendingSignIn: PendingAuthorization? = {
        guard
            let server = try? AuthorizationServerMetadata(
                json: [
                    "issuer": "http://127.0.0.1:9", "authorization_endpoint": "http://127.0.0.1:9/authorize",
                    "token_endpoint": "http://127.0.0.1:9/token", "code_challenge_methods_supported": ["S256"],
                    "authorization_response_iss_parameter_supported": true,
                ],
                expectedIssuer: "http://127.0.0.1:9"
            ),
            var flow = try? PendingAuthorization.start(
                server: server,
                clientID: "c",
                redirectURI: "http://127.0.0.1:1/callback",
                resource: "http://127.0.0.1:9/mcp",
                scopes: ["read"]
            )
        else { return nil }
        flow.state = "fuzz-state"
        return flow
    }()

    static func run(_ target: String, _ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        switch target {
        case "jwt":
            _ = try? verifier?.verify(text)
            _ = try? JWT.decode(bytes)
        case "jwk":
            _ = try? JSONWebKey.parse(jwk: text)
            _ = try? JSONWebKey.parse(pem: text)
            if let json = try? JSONValue.parse(bytes) { _ = try? KeySet(jwks: json) }
        case "json":
            if let value = try? JSONValue.parse(bytes) {
                _ = value.serialized()
                _ = value.serialized(.pythonCompact)
            }
        case "form":
            _ = Form.decode(text)
            _ = Parameters(Form.decode(text) ?? [])
            _ = AuthRequest(method: "GET", target: text).queryString
        case "redirect":
            if let parts = RedirectURIs.parts(text) {
                for pattern in patterns { _ = pattern.matches(parts) }
            }
            _ = RedirectURIs.problem(text, applicationType: "native", allowedPatterns: patterns)
            _ = RedirectURIs.matches(requested: text, registered: "http://127.0.0.1:1/cb")
            _ = try? RedirectPattern(text)
        case "fernet":
            _ = try? fernet?.decrypt(text)
            _ = try? fernet?.decrypt(text, ttl: 60, now: 1_800_000_000)
        case "envelope":
            _ = try? store?.decodeStored(text)
            _ = try? Store.decodeRedisEnvelope(text, now: 1_800_000_000)
        case "facade":
            guard let facade else { return }
            // method \n target \n header lines … \n\n body
            let sections = bytes.split(separator: 10, maxSplits: 2, omittingEmptySubsequences: false)
            let method = sections.first.map { String(decoding: $0, as: UTF8.self) } ?? "GET"
            let target = sections.count > 1 ? String(decoding: sections[1], as: UTF8.self) : "/"
            var headers = [(name: String, value: String)]()
            var body = [UInt8]()
            if sections.count > 2 {
                let rest = Array(sections[2])
                let parts = rest.split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false)
                for line in String(decoding: parts.first ?? [], as: UTF8.self).split(separator: "\n") {
                    if let colon = line.firstIndex(of: ":") {
                        headers.append((String(line[..<colon]), String(line[line.index(after: colon)...])))
                    }
                }
                if parts.count > 1 { body = Array(parts[1]) }
            }
            let request = AuthRequest(
                method: method,
                target: target,
                headers: headers,
                body: body,
                clientAddress: "192.0.2.1"
            )
            _ = facade.handle(request)
            _ = facade.authenticate(authorization: headers.first?.value, query: request.queryString)
        case "client":
            // What a server or a browser can send an MCP client: challenges, callback queries,
            // metadata and token responses, and the $BROWSER value.
            _ = WWWAuthenticate.parse(text)
            for status in [401, 403] {
                let challenge = BearerChallenge(status: status, header: text)
                _ = ClientDiscovery.resourceMetadataURL(challenge, serverURL: "http://127.0.0.1:9/mcp")
            }
            _ = pendingSignIn?.callback(query: text)
            _ = try? ClientDiscovery.canonicalResource(text)
            _ = ClientDiscovery.isSameResource(text, "http://127.0.0.1:9/mcp")
            _ = ClientDiscovery.isAcceptableEndpoint(text, from: "https://mcp.example.com/mcp")
            _ = TokenErrorResponse(status: 400, body: bytes)
            if let json = try? JSONValue.parse(bytes, maxDepth: 16) {
                _ = try? ProtectedResourceMetadata(json: json, requestedResource: "http://127.0.0.1:9/mcp")
                if let server = try? AuthorizationServerMetadata(json: json, expectedIssuer: "http://127.0.0.1:9") {
                    // A registration answer against the server's own metadata.
                    _ = try? ClientCredentials.registered(
                        clientID: "fuzz",
                        clientSecret: json["client_secret"]?.stringValue,
                        method: json["token_endpoint_auth_method"]?.stringValue,
                        server: server
                    )
                }
                _ = try? TokenResponse(json: json)
                // The client's configuration (C, Python, CLI) and a private_key JWK.
                _ = try? OAuthClient.Configuration(json: json)
                _ = try? ClientAssertionKey(jwk: json)
                if case .object(let object) = json { _ = ClientTokenRecord(stored: object) }
            }
            for command in BrowserCommands.parse(text) { _ = BrowserCommands.arguments(command, url: "https://x/") }
        default:
            break
        }
    }
}

#if FUZZING
let fuzzTarget: String = {
    guard let pointer = getenv("FASTMCPAUTH_FUZZ_TARGET") else { return "json" }
    return String(cString: pointer)
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    FuzzTargets.run(fuzzTarget, bytes)
    return 0
}

/// SwiftPM links executables with their `main` renamed to this: hand over to libFuzzer.
@_cdecl("fastmcpauth_fuzz_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in fuzzOne(data, size) }
}
#else
@main
struct Replay {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard let target = arguments.first, FuzzTargets.names.contains(target) else {
            print("usage: fastmcpauth-fuzz TARGET FILE... (targets: \(FuzzTargets.names.joined(separator: " ")))")
            exit(2)
        }
        var count = 0
        for path in arguments.dropFirst() {
            guard let file = fopen(path, "rb") else { continue }
            var bytes = [UInt8]()
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let read = fread(&buffer, 1, buffer.count, file)
                if read <= 0 { break }
                bytes += buffer.prefix(read)
            }
            fclose(file)
            FuzzTargets.run(target, bytes)
            count += 1
        }
        print("\(target): \(count) inputs replayed")
    }
}
#endif
