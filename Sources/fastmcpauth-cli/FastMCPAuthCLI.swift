import ArgumentParser
import FastMCPAuth

#if canImport(Glibc)
import Glibc
#endif

/// `fastmcpauth`: key generation, signing and verification from the shell, and an MCP client's
/// sign-in (login, token, logout, call).
@main
struct FastMCPAuthCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fastmcpauth",
        abstract:
            "Keys, JWT signing and verification for MCP servers; sign-in for MCP clients (libfastmcpauth \(FastMCPAuthVersion.string)).",
        version: FastMCPAuthVersion.string,
        subcommands: [
            Keygen.self, Sign.self, Verify.self, FernetCommand.self, StoreCommand.self, Login.self, TokenCommand.self,
            Logout.self, Call.self,
        ]
    )
}

/// Prints `error: <code>: <message>` on stderr and exits non-zero.
func fail(_ error: Error) -> Never {
    let text: String
    if let error = error as? AuthError {
        text = "\(error.code.name): \(error.message)"
    } else {
        text = "internal_error: \(error)"
    }
    writeAll(2, Array("error: \(text)\n".utf8))
    exit(1)
}

/// Writes every byte to a file descriptor (1: standard output, 2: standard error).
func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let written = bytes[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        if written <= 0 { return }
        offset += written
    }
}

func readFile(_ path: String) throws -> String {
    guard let file = fopen(path, "rb") else { throw AuthError(.invalidArgument, "cannot open \(path)") }
    defer { fclose(file) }
    var bytes = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = fread(&buffer, 1, buffer.count, file)
        if count <= 0 { break }
        bytes += buffer.prefix(count)
        if bytes.count > 4 << 20 { throw AuthError(.tooLarge, "\(path) is larger than 4 MiB") }
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// A file holding a secret (a client secret, a private key, Fernet keys): read like any other, with
/// a warning when other users may read it too. A warning, not a refusal: mounted secrets (Kubernetes'
/// default 0644) are often so, and the owner may have reasons.
func readSecretFile(_ path: String) throws -> String {
    var status = stat()
    if stat(path, &status) == 0, status.st_mode & S_IFMT == S_IFREG, status.st_mode & 0o077 != 0 {
        let mode = String(status.st_mode & 0o777, radix: 8)
        writeAll(
            2,
            Array("warning: \(path) holds a secret and is readable by others (mode \(mode)): chmod 600 it\n".utf8)
        )
    }
    return try readFile(path)
}

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate a private JWK (printed as JSON).")

    @Option(help: "Algorithm: HS256/384/512, RS256/384/512, PS256/384/512, ES256/384/512, ES256K, EdDSA.")
    var alg: String

    @Option(help: "Curve for EdDSA (Ed25519 or Ed448).")
    var crv: String?

    @Option(help: "RSA modulus size in bits (2048 to 16384).")
    var bits: Int?

    @Option(help: "Key ID (default: the RFC 7638 thumbprint).")
    var kid: String?

    func run() {
        do {
            var options: [String: JSONValue] = [:]
            if let crv { options["crv"] = .string(crv) }
            if let bits { options["bits"] = .int(Int64(bits)) }
            if let kid { options["kid"] = .string(kid) }
            print(
                try KeyTools.generate(
                    algorithm: alg,
                    optionsJSON: options.isEmpty ? nil : JSONValue.object(options).serialized()
                )
            )
        } catch { fail(error) }
    }
}

struct Sign: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Sign claims with a private JWK; prints the token.")

    @Option(help: "File holding the private JWK.")
    var key: String

    @Option(help: "Claims as a JSON object.")
    var claims: String

    @Option(help: "Algorithm (default: the key's alg).")
    var alg: String?

    @Option(help: "Seconds until exp, added when the claims have no exp.")
    var expiresIn: Int?

    func run() {
        do {
            let jwkText = try readSecretFile(key)
            let jwk = try JSONValue.parse(jwkText)
            guard let algorithm = alg ?? jwk["alg"]?.stringValue else {
                throw AuthError(.invalidArgument, "give --alg: the key has no alg")
            }
            var claimsValue = try JSONValue.parse(claims)
            if let expiresIn, case .object(var object) = claimsValue, object["exp"] == nil {
                let now = Int64(JWTVerifier.systemClock())
                object["iat"] = object["iat"] ?? .int(now)
                object["exp"] = .int(now + Int64(expiresIn))
                claimsValue = .object(object)
            }
            print(try KeyTools.sign(claimsJSON: claimsValue.serialized(), jwkJSON: jwkText, algorithm: algorithm))
        } catch is JSONValue.ParseError {
            fail(AuthError(.invalidArgument, "the key file or --claims is not valid JSON"))
        } catch { fail(error) }
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Verify a token; prints its claims as JSON.")

    @Argument(help: "The token.")
    var token: String

    @Option(help: "JWKS URL (https, or http on loopback).")
    var jwksUri: String?

    @Option(help: "File holding a JWKS document.")
    var jwks: String?

    @Option(help: "File holding a PEM public key, or for HS* the shared secret.")
    var publicKey: String?

    @Option(help: "Expected issuer.")
    var issuer: String?

    @Option(help: "Expected audience.")
    var audience: String?

    @Option(help: "Allowed algorithm (repeatable; default RS256).")
    var alg: [String] = []

    @Option(help: "Allowed clock skew in seconds.")
    var leeway: Double = 0

    @Option(help: "Required scope (repeatable).")
    var scope: [String] = []

    func run() {
        do {
            var config: [String: JSONValue] = ["leeway": .double(leeway), "cache_size": 0]
            if let jwksUri { config["jwks_uri"] = .string(jwksUri) }
            if let jwks { config["jwks"] = .string(try readFile(jwks)) }
            if let publicKey {
                var text = try readFile(publicKey)
                // A secret file usually ends with a newline that is not part of the secret.
                if !text.contains("-----BEGIN"), text.hasSuffix("\n") { text.removeLast() }
                config["public_key"] = .string(text)
            }
            if let issuer { config["issuer"] = .string(issuer) }
            if let audience { config["audience"] = .string(audience) }
            if !alg.isEmpty { config["algorithms"] = .array(alg.map { .string($0) }) }
            if !scope.isEmpty { config["required_scopes"] = .array(scope.map { .string($0) }) }
            let verifier = try JWTVerifier(json: .object(config))
            print(try verifier.verify(token).claimsJSON)
        } catch { fail(error) }
    }
}

/// Fernet keys come from a file (one per line) or FASTMCPAUTH_ENCRYPTION_KEYS (comma-separated),
/// never from the command line, where other users could read them in the process list.
struct KeyOptions: ParsableArguments {
    @Option(help: "File with Fernet keys, one per line (the first encrypts). Default: $FASTMCPAUTH_ENCRYPTION_KEYS.")
    var keyFile: String?

    func keys(required: Bool) throws -> [String] {
        var text = ""
        if let keyFile {
            text = try readSecretFile(keyFile)
        } else if let env = getenv("FASTMCPAUTH_ENCRYPTION_KEYS") {
            text = String(cString: env)
        }
        let keys = text.split(whereSeparator: { $0 == "\n" || $0 == "," || $0 == " " || $0 == "\r" }).map(String.init)
        if required, keys.isEmpty {
            throw AuthError(.invalidArgument, "give --key-file or set FASTMCPAUTH_ENCRYPTION_KEYS")
        }
        return keys
    }
}

func readStandardInput() -> [UInt8] {
    var bytes = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = read(0, &buffer, buffer.count)
        if count <= 0 { break }
        bytes += buffer.prefix(count)
    }
    return bytes
}

struct FernetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fernet",
        abstract: "Fernet keys, encryption and decryption.",
        subcommands: [GenKey.self, Encrypt.self, Decrypt.self]
    )

    struct GenKey: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "genkey", abstract: "Print a new Fernet key.")
        func run() {
            do { print(try Fernet.generateKey()) } catch { fail(error) }
        }
    }

    struct Encrypt: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Encrypt standard input; print the token.")
        @OptionGroup var keys: KeyOptions
        func run() {
            do { print(try Fernet(keys: keys.keys(required: true)).encrypt(readStandardInput())) } catch { fail(error) }
        }
    }

    struct Decrypt: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decrypt a token (argument or standard input) to standard output."
        )
        @OptionGroup var keys: KeyOptions
        @Option(help: "Refuse tokens older than this many seconds.")
        var ttl: Int64?
        @Argument(help: "The token (default: read from standard input).")
        var token: String?
        func run() {
            do {
                let text = token ?? String(decoding: readStandardInput(), as: UTF8.self)
                let plaintext = try Fernet(keys: keys.keys(required: true)).decrypt(text, ttl: ttl)
                writeAll(1, plaintext)
            } catch { fail(error) }
        }
    }
}

struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Read and write the token store.",
        subcommands: [Get.self, Put.self, Del.self, Keys.self]
    )

    struct Location: ParsableArguments {
        @Option(help: "memory://, sqlite:///path.db or redis://host:port/db")
        var url: String
        @OptionGroup var keys: KeyOptions

        func open() throws -> Store {
            var options = Store.Options()
            options.encryptionKeys = try keys.keys(required: false)
            return try Store(url: url, options: options)
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a value as JSON (exit 1 when absent).")
        @OptionGroup var location: Location
        @Argument var collection: String
        @Argument var key: String
        func run() {
            do {
                guard let value = try location.open().get(collection, key) else {
                    throw AuthError(.invalidArgument, "no such entry")
                }
                print(JSONValue.object(value).serialized())
            } catch { fail(error) }
        }
    }

    struct Put: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Store a JSON object.")
        @OptionGroup var location: Location
        @Option(help: "Seconds until the entry expires.")
        var ttl: Double?
        @Argument var collection: String
        @Argument var key: String
        @Argument(help: "The value, a JSON object.")
        var value: String
        func run() {
            do {
                guard let object = try? JSONValue.parse(value).objectValue else {
                    throw AuthError(.invalidArgument, "the value must be a JSON object")
                }
                try location.open().put(collection, key, object, ttl: ttl)
            } catch { fail(error) }
        }
    }

    struct Del: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete an entry (exit 1 when absent).")
        @OptionGroup var location: Location
        @Argument var collection: String
        @Argument var key: String
        func run() {
            do {
                guard try location.open().delete(collection, key) else {
                    throw AuthError(.invalidArgument, "no such entry")
                }
            } catch { fail(error) }
        }
    }

    struct Keys: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the keys of a collection, one per line.")
        @OptionGroup var location: Location
        @Argument var collection: String
        func run() {
            do { for key in try location.open().keys(collection) { print(key) } } catch { fail(error) }
        }
    }
}
