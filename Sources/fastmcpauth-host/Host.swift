// fastmcpauth-host: a real MCP endpoint (swift-sdk, stateless JSON transport) on Hummingbird 2,
// guarded by the auth facade. The facade answers discovery routes and challenges; a fresh MCP
// server per request keeps the transport stateless, so any number of hosts can serve a client.
import ArgumentParser
import FastMCPAuth
import FastMCPAuthDevelopment
import Foundation
import HTTPTypes
import Hummingbird
import MCP
import NIOCore
import NIOPosix

/// One log line on standard output, written at once (one write per line: it reaches a pipe
/// immediately and lines from concurrent requests never interleave).
func logLine(_ text: String) {
    var bytes = Array(text.utf8)
    bytes.append(UInt8(ascii: "\n"))
    var offset = 0
    while offset < bytes.count {
        let written = bytes[offset...].withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        if written <= 0 { return }
        offset += written
    }
}

@main
struct Host: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fastmcpauth-host",
        abstract: "Serve an MCP endpoint protected by libfastmcpauth."
    )

    @Option(help: "Address to bind (default: $FASTMCP_HOST or 127.0.0.1).")
    var host: String?
    @Option(help: "Port (default: $FASTMCP_PORT or 8000).")
    var port: Int?
    @Option(help: "Path of the MCP endpoint.")
    var mcpPath = "/mcp"
    @Option(help: "Public base URL (default: http://{host}:{port}).")
    var baseUrl: String?
    @Flag(
        help: "Test mode (loopback binds only): the OAuth proxy also fetches client metadata documents from loopback."
    )
    var testing = false
    @Option(help: "Seconds from a request's first byte to its complete head before the connection is closed.")
    var headerTimeout: Double = 10
    @Option(help: "Seconds from a request's head to the end of its body before the connection is closed.")
    var bodyTimeout: Double = 30
    @Option(help: "Seconds a connection may sit idle between requests.")
    var idleTimeout: Double = 60
    @Option(help: "Open connections at most; more are closed at once.")
    var maxConnections = 1024
    @Option(help: "Threads for token checks (JWKS, introspection, the store).")
    var authThreads = 8
    @Option(help: "Threads for the OAuth proxy's routes (upstream calls, client metadata documents).")
    var proxyThreads = 8

    func validate() throws {
        for (name, value) in [
            ("--header-timeout", headerTimeout), ("--body-timeout", bodyTimeout), ("--idle-timeout", idleTimeout),
        ] {
            guard value.isFinite, value > 0, value <= 3600 else {
                throw ValidationError("\(name) must be more than 0 and at most 3600 seconds")
            }
        }
        guard (1...100_000).contains(maxConnections) else {
            throw ValidationError("--max-connections must be from 1 to 100000")
        }
        guard (1...256).contains(authThreads), (1...256).contains(proxyThreads) else {
            throw ValidationError("--auth-threads and --proxy-threads must be from 1 to 256")
        }
    }

    static func amount(_ seconds: Double) -> TimeAmount { .milliseconds(Int64((seconds * 1000).rounded())) }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let host = self.host ?? environment["FASTMCP_HOST"] ?? "127.0.0.1"
        var port = self.port ?? 8000
        if self.port == nil, let text = environment["FASTMCP_PORT"] {
            guard let value = Int(text), (1...65535).contains(value) else {
                throw ValidationError("FASTMCP_PORT must be a port number")
            }
            port = value
        }
        let baseURL = baseUrl ?? "http://\(host):\(port)"
        if testing, !["127.0.0.1", "localhost", "::1"].contains(host) || !Self.isLoopback(baseURL) {
            throw ValidationError("--testing serves loopback only: bind 127.0.0.1 and use a loopback base URL")
        }
        let (auth, idp) = try Self.makeAuth(
            environment: environment,
            host: host,
            baseURL: baseURL,
            mcpPath: mcpPath,
            testing: testing
        )
        // Bounded pools for blocking work: token checks never wait behind the proxy's upstream
        // calls or a stranger's slow metadata document.
        let authPool = NIOThreadPool(numberOfThreads: authThreads)
        let proxyPool = NIOThreadPool(numberOfThreads: proxyThreads)
        authPool.start()
        proxyPool.start()
        let responder = HostResponder(auth: auth, idp: idp, mcpPath: mcpPath, authPool: authPool, proxyPool: proxyPool)
        let limits = ConnectionLimits(
            headerTimeout: Self.amount(headerTimeout),
            bodyTimeout: Self.amount(bodyTimeout),
            idleTimeout: Self.amount(idleTimeout),
            maxConnections: maxConnections
        )
        let app = Application(
            responder: responder,
            server: .guardedHTTP1(limits),
            configuration: .init(address: .hostname(host, port: port), serverName: "fastmcpauth-host")
        )
        logLine(
            "fastmcpauth-host \(FastMCPAuthVersion.string): MCP endpoint \(baseURL)\(mcpPath) (\(auth.provider.rawValue) auth)"
        )
        try await app.runService()
    }

    /// FastMCP's environment, else the embedded default: the OAuth proxy in front of an embedded
    /// development identity provider (loopback only), so the whole OAuth flow runs offline.
    static func makeAuth(
        environment: [String: String],
        host: String,
        baseURL: String,
        mcpPath: String,
        testing: Bool = false
    ) throws
        -> (AuthFacade, DevelopmentIdentityProvider?)
    {
        let defaults: [String: JSONValue] = ["base_url": .string(baseURL), "mcp_path": .string(mcpPath)]
        if var config = try AuthFacade.configuration(environment: environment, defaults: defaults) {
            // Test-only settings come from the flag, never from the environment.
            if testing, let provider = config["provider"]?.stringValue,
                ["oauth_proxy", "oidc_proxy", "workos"].contains(provider)
            {
                config =
                    try AuthFacade.configuration(
                        environment: environment,
                        overrides: ["testing": true, "cimd_test_allow_loopback": true],
                        defaults: defaults
                    ) ?? config
            }
            return (try AuthFacade(json: config, log: { logLine($0) }), nil)
        }
        guard ["127.0.0.1", "localhost", "::1"].contains(host), isLoopback(baseURL) else {
            throw ValidationError(
                "No FASTMCP_SERVER_AUTH is configured and the embedded development identity provider serves loopback only: configure a provider to listen on \(host)"
            )
        }
        let base = baseURL.trimmingSuffix("/")
        let idp = try DevelopmentIdentityProvider(baseURL: base, callbackURL: base + "/auth/callback")
        var config: [String: JSONValue] = [
            "provider": "oauth_proxy", "base_url": .string(base), "mcp_path": .string(mcpPath),
            "upstream_authorization_endpoint": .string(idp.authorizationEndpoint),
            "upstream_token_endpoint": .string(idp.tokenEndpoint),
            "userinfo_endpoint": .string(idp.userinfoEndpoint), "upstream_client_id": .string(idp.clientID),
            "upstream_client_secret": .string(idp.clientSecret), "required_scopes": ["mcp"],
        ]
        if testing {
            config["testing"] = true
            config["cimd_test_allow_loopback"] = true
        }
        let auth = try AuthFacade(
            json: .object(config),
            log: { logLine($0) }
        )
        logLine(
            """
            ################################################################################
            ##  DEVELOPMENT MODE: no FASTMCP_SERVER_AUTH configured.
            ##  The OAuth proxy runs in front of an EMBEDDED DEVELOPMENT IDENTITY PROVIDER
            ##  (\(base)/dev-idp): any user name signs in, no password. Loopback only.
            ##  Connect an MCP client to \(base)\(mcpPath); it registers, your browser shows
            ##  the consent page and the sign-in page, and the client gets its tokens.
            ##  For production set FASTMCP_SERVER_AUTH (see the README).
            ################################################################################
            """
        )
        return (auth, idp)
    }

    static func isLoopback(_ url: String) -> Bool {
        guard url.hasPrefix("http://") else { return false }
        let authority = url.dropFirst(7).prefix { $0 != "/" }
        return ["127.0.0.1", "localhost", "[::1]"].contains { authority == $0 || authority.hasPrefix($0 + ":") }
    }
}

/// The request context: Hummingbird's basics plus the peer's address (registration rate limits).
struct HostContext: Hummingbird.RequestContext {
    var coreContext: CoreRequestContextStorage
    let clientAddress: String?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        clientAddress = source.channel.remoteAddress?.ipAddress
    }
}

/// Routes every request: the facade's routes (discovery, the OAuth proxy) to the facade, the MCP
/// path through authentication to a fresh stateless MCP server, anything else 404. One log line
/// per request, without secrets.
struct HostResponder: HTTPResponder {
    typealias Context = HostContext
    let auth: AuthFacade
    let idp: DevelopmentIdentityProvider?
    let mcpPath: String
    /// Blocking work never runs on the event loops: token checks on one bounded pool, the proxy's
    /// routes (which may call the upstream or fetch metadata documents) on another.
    let authPool: NIOThreadPool
    let proxyPool: NIOThreadPool
    static let maxBodyBytes = 1 << 20

    func respond(to request: Request, context: HostContext) async throws -> Response {
        let started = Date()
        let response: Response
        do {
            response = try await route(request, clientAddress: context.clientAddress)
        } catch let error as NIOTooManyBytesError {
            _ = error
            response = Self.response(
                AuthResponse(
                    status: 413,
                    headers: ["Content-Type": "application/json", "Connection": "close"],
                    body: Array(
                        #"{"error":"invalid_request","error_description":"The request body is too large."}"#.utf8
                    )
                )
            )
        }
        let path = request.uri.path
        logLine(
            "\(request.method.rawValue) \(path) \(response.status.code) \(Int(Date().timeIntervalSince(started) * 1000))ms"
        )
        return response
    }

    private func route(_ request: Request, clientAddress: String?) async throws -> Response {
        let target = request.uri.string
        var headers = [(name: String, value: String)]()
        // HTTP/1.1's Host header is HTTPTypes' :authority pseudo-header: hand it on as Host.
        if let authority = request.head.authority { headers.append((name: "Host", value: authority)) }
        for field in request.headers { headers.append((name: field.name.canonicalName, value: field.value)) }
        let body = try await request.body.collect(upTo: Self.maxBodyBytes)
        let bytes = Array(body.readableBytesView)
        let facadeRequest = AuthRequest(
            method: request.method.rawValue,
            target: target,
            headers: headers,
            body: bytes,
            clientAddress: clientAddress
        )
        // Discovery and proxy routes may touch the network or the store: off the event loop.
        if auth.answers(path: facadeRequest.path),
            let answer = try await proxyPool.runIfActive({ auth.handle(facadeRequest) })
        {
            return Self.response(answer)
        }
        if let idp, idp.answers(path: facadeRequest.path), let answer = idp.handle(facadeRequest) {
            return Self.response(answer)
        }
        guard request.uri.path == mcpPath else {
            return Self.response(
                AuthResponse(
                    status: 404,
                    headers: ["Content-Type": "application/json"],
                    body: Array(#"{"error":"not_found"}"#.utf8)
                )
            )
        }
        let outcome = try await authPool.runIfActive {
            auth.authenticate(authorization: facadeRequest.header("Authorization"), query: facadeRequest.queryString)
        }
        switch outcome {
        case .challenge(let challenge):
            return Self.response(challenge)
        case .authenticated(let token):
            return try await mcp(request: facadeRequest, body: bytes, token: token)
        }
    }

    private func mcp(request: AuthRequest, body: [UInt8], token: AccessToken) async throws -> Response {
        let server = Server(
            name: "fastmcpauth-host",
            version: FastMCPAuthVersion.string,
            capabilities: .init(tools: .init(listChanged: false))
        )
        await server.withMethodHandler(ListTools.self) { _ in
            .init(tools: [
                Tool(
                    name: "whoami",
                    description: "The caller's identity from the access token.",
                    inputSchema: ["type": "object", "properties": [:]]
                ),
                Tool(
                    name: "echo",
                    description: "Echo the given text.",
                    inputSchema: ["type": "object", "properties": ["text": ["type": "string"]], "required": ["text"]]
                ),
            ])
        }
        await server.withMethodHandler(CallTool.self) { call in
            switch call.name {
            case "whoami":
                let identity: [String: JSONValue] = [
                    "client_id": .string(token.clientID), "subject": token.subject.map { .string($0) } ?? .null,
                    "scopes": .array(token.scopes.map { .string($0) }),
                    "expires_at": token.expiresAt.map { .int($0) } ?? .null,
                ]
                return .init(content: [.text(JSONValue.object(identity).serialized())], isError: false)
            case "echo":
                return .init(content: [.text(call.arguments?["text"]?.stringValue ?? "")], isError: false)
            default:
                return .init(content: [.text("unknown tool")], isError: true)
            }
        }
        let transport = StatelessHTTPServerTransport(
            validationPipeline: StandardValidationPipeline(validators: [
                AcceptHeaderValidator(mode: .jsonOnly), ContentTypeValidator(), ProtocolVersionValidator(),
            ])
        )
        try await server.start(transport: transport)
        var headers = [String: String]()
        for header in request.headers { headers[header.name] = header.value }
        let answer = await transport.handleRequest(
            MCP.HTTPRequest(method: request.method, headers: headers, body: Data(body), path: request.path)
        )
        await server.stop()
        return Self.response(
            AuthResponse(status: answer.statusCode, headers: answer.headers, body: Array(answer.bodyData ?? Data()))
        )
    }

    static func response(_ answer: AuthResponse) -> Response {
        var fields = HTTPFields()
        for (name, value) in answer.headers {
            if let field = HTTPField.Name(name) { fields[field] = value }
        }
        return Response(
            status: .init(code: answer.status),
            headers: fields,
            body: .init(byteBuffer: ByteBuffer(bytes: answer.body))
        )
    }
}
