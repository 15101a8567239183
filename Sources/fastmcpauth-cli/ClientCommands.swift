import ArgumentParser
import FastMCPAuth
import FastMCPAuthMCP
import Foundation
import MCP

#if canImport(Glibc)
import Glibc
#endif

/// What `login`, `token`, `logout` and `call` share: the server and how this client signs in to it.
/// Secrets never come from the command line by default (other users can read the process list):
/// `--client-secret-file` or `$FASTMCPAUTH_CLIENT_SECRET`; `--client-secret` exists for scripts that
/// accept that risk.
struct ClientOptions: ParsableArguments {
    @Argument(help: "The MCP server's URL (https, or http on a loopback host).")
    var url: String

    @Option(help: "A Client ID Metadata Document URL (https) to sign in with, where the server accepts it.")
    var clientMetadataURL: String?

    @Option(help: "A pre-registered client id (else the metadata document, else dynamic registration).")
    var clientID: String?

    @Option(help: "The issuer that registered --client-id with a secret or key (required with them).")
    var clientIssuer: String?

    @Option(help: "File holding the client secret. Default: $FASTMCPAUTH_CLIENT_SECRET.")
    var clientSecretFile: String?

    @Option(help: "The client secret itself (visible to other users in the process list; prefer the file).")
    var clientSecret: String?

    @Option(help: "File holding the private JWK for private_key_jwt client authentication.")
    var privateKey: String?

    @Option(help: "Grant: authorization_code (the browser sign-in, default) or client_credentials.")
    var grant: String?

    @Option(help: "Token endpoint authentication: client_secret_basic, client_secret_post, private_key_jwt, none.")
    var authMethod: String?

    @Option(help: "The port of the 127.0.0.1 redirect listener (default: an ephemeral port).")
    var port: Int?

    @Option(name: .customLong("scope"), help: "A scope to ask for (repeatable).")
    var scopes: [String] = []

    @Flag(help: "Never start a browser: print the sign-in URL on a terminal, else fail with browser_unavailable.")
    var noBrowser = false

    @Option(help: "Seconds to wait for the browser sign-in (default 300).")
    var signInTimeout: Double?

    @Option(help: "Token cache store URL (sqlite:///path.db, redis://…). Default: $XDG_CACHE_HOME/fastmcpauth.")
    var store: String?

    @OptionGroup var keys: KeyOptions

    func configuration() throws -> JSONValue {
        var object: [String: JSONValue] = ["server_url": .string(url), "client_name": "fastmcpauth"]
        set(&object, "client_metadata_url", clientMetadataURL.map { .string($0) })
        set(&object, "client_id", clientID.map { .string($0) })
        set(&object, "client_issuer", clientIssuer.map { .string($0) })
        if let secret = try clientSecretValue() { object["client_secret"] = .string(secret) }
        if let privateKey {
            guard let key = try? JSONValue.parse(Array(try readSecretFile(privateKey).utf8), maxDepth: 8) else {
                throw AuthError(.invalidKey, "\(privateKey) does not hold a JSON Web Key")
            }
            object["private_key"] = key
        }
        set(&object, "grant", grant.map { .string($0) })
        set(&object, "token_endpoint_auth_method", authMethod.map { .string($0) })
        if let port {
            guard (0...65535).contains(port) else { throw AuthError(.invalidArgument, "--port: 0 to 65535") }
            object["redirect_port"] = .int(Int64(port))
        }
        if !scopes.isEmpty {
            object["scopes"] = .array(scopes.flatMap { $0.split(separator: " ") }.map { .string(String($0)) })
        }
        if noBrowser { object["no_browser"] = true }
        if let signInTimeout { object["sign_in_timeout"] = .double(signInTimeout) }
        if let store {
            object["storage"] = .string(store)
            object["encryption_keys"] = .array(try keys.keys(required: true).map { .string($0) })
        }
        return .object(object)
    }

    private func set(_ object: inout [String: JSONValue], _ key: String, _ value: JSONValue?) {
        if let value { object[key] = value }
    }

    private func clientSecretValue() throws -> String? {
        if let clientSecretFile {
            return try readSecretFile(clientSecretFile).trimmingSuffix("\n").trimmingSuffix("\r")
        }
        if let clientSecret { return clientSecret }
        if let value = getenv("FASTMCPAUTH_CLIENT_SECRET") { return String(cString: value) }
        return nil
    }

    func client() throws -> OAuthClient {
        try OAuthClient(json: try configuration(), environment: ProcessInfo.processInfo.environment)
    }
}

struct Login: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sign in to a protected MCP server (the browser opens unless a cached token still works)."
    )
    @OptionGroup var options: ClientOptions

    func run() {
        do {
            let client = try options.client()
            _ = try client.token()
            writeAll(2, Array("Signed in to \(client.resource).\n".utf8))
        } catch { fail(error) }
    }
}

struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Print a valid access token for the server: cached, refreshed, or after a sign-in.",
        discussion: "curl -H \"Authorization: Bearer $(fastmcpauth token URL)\" URL"
    )
    @OptionGroup var options: ClientOptions

    func run() {
        do {
            writeAll(1, Array((try options.client().token() + "\n").utf8))
        } catch { fail(error) }
    }
}

struct Logout: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Forget the cached tokens of the server.")
    @OptionGroup var options: ClientOptions

    func run() {
        do {
            let client = try options.client()
            try client.logout()
            writeAll(2, Array("Signed out of \(client.resource).\n".utf8))
        } catch { fail(error) }
    }
}

struct Call: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Call one tool of the MCP server (swift-sdk's client, signed in as needed); prints the result as JSON."
    )
    @OptionGroup var options: ClientOptions

    @Argument(help: "The tool's name.")
    var tool: String

    @Argument(help: "The tool's arguments as a JSON object (default {}).")
    var arguments: String = "{}"

    func run() async {
        do {
            guard let endpoint = URL(string: options.url) else {
                throw AuthError(.invalidArgument, "the server URL is not a URL")
            }
            let parsed: [String: Value]
            do {
                parsed = try JSONDecoder().decode([String: Value].self, from: Data(arguments.utf8))
            } catch {
                throw AuthError(.invalidArgument, "the tool's arguments must be a JSON object")
            }
            let oauth = try options.client()
            // Signed in (or refreshed) before connecting: a refusal, a timeout or a missing browser
            // ends the command with its own code, where swift-sdk would report it as its own error.
            // Anything else (a server that publishes its metadata only in its 401, or needs no
            // token) is left to the transport, which retries with the server's challenge.
            do {
                _ = try oauth.token()
            } catch let error as AuthError where OAuthClient.endsTheRequest(error) {
                throw error
            } catch {}
            let transport = HTTPClientTransport(
                endpoint: endpoint,
                configuration: OAuthClient.transportConfiguration(),
                streaming: false,
                authorizer: oauth
            )
            let client = Client(name: "fastmcpauth", version: FastMCPAuthVersion.string)
            _ = try await client.connect(transport: transport)
            let context = try await client.send(CallTool.request(.init(name: tool, arguments: parsed)))
            let result = try await context.value
            await client.disconnect()
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            writeAll(1, Array(try encoder.encode(result)) + Array("\n".utf8))
            if result.isError == true { Glibc.exit(1) }
        } catch let error as AuthError {
            fail(error)
        } catch {
            // The server's own text (a JSON-RPC error message): printable characters only, bounded.
            let text = Responses.printable(String(error.localizedDescription.prefix(300)))
            fail(AuthError(.upstreamUnavailable, "the MCP call failed: \(text)"))
        }
    }
}
