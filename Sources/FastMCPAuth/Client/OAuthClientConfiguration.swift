#if canImport(Glibc)
import Glibc
#endif

extension OAuthClient.Configuration {
    static let knownKeys: Set<String> = [
        "server_url", "client_name", "client_metadata_url", "client_id", "client_secret", "client_issuer",
        "redirect_port", "scopes", "no_browser", "sign_in_timeout", "timeout", "refresh_margin", "grant",
        "token_endpoint_auth_method", "private_key",
    ]

    /// The JSON configuration of the C API and the bindings (the store is configured beside it).
    public init(json: JSONValue) throws {
        let reader = try ConfigReader(json: json, known: Self.knownKeys, what: "the OAuth client configuration")
        guard let serverURL = try reader.string("server_url") else {
            throw AuthError(.invalidConfig, "server_url: the MCP server's URL is required")
        }
        self.init(serverURL: serverURL)
        if let name = try reader.string("client_name") {
            guard !name.isEmpty, name.utf8.count <= 200, HeaderValues.isSafe(name) else {
                throw AuthError(.invalidConfig, "client_name: 1 to 200 characters without control characters")
            }
            clientName = name
        }
        if let url = try reader.string("client_metadata_url") {
            // http only on a loopback host (a development server that accepts loopback documents).
            guard let parts = RedirectURIs.parts(url), let host = parts.host, parts.path.count > 1,
                parts.scheme == "https" || (parts.scheme == "http" && isLoopbackHost(host))
            else {
                throw AuthError(
                    .invalidConfig,
                    "client_metadata_url: an https URL with a path is required (http only on a loopback host)"
                )
            }
            clientMetadataURL = url
        }
        let secret = try reader.string("client_secret")
        let issuer = try reader.string("client_issuer")
        if let issuer {
            // Compared byte for byte with the server's metadata `issuer`: refuse what can never match.
            guard let parts = RedirectURIs.parts(issuer), let host = parts.host, !issuer.contains("?"),
                !issuer.contains("#"), parts.scheme == "https" || (parts.scheme == "http" && isLoopbackHost(host))
            else {
                throw AuthError(
                    .invalidConfig,
                    "client_issuer: the authorization server's issuer, an https URL without query or fragment "
                        + "(http only on a loopback host)"
                )
            }
        }
        let privateKey = try reader.values["private_key"].map(ClientAssertionKey.init(jwk:))
        var method: TokenEndpointAuthMethod? = nil
        if let name = try reader.string("token_endpoint_auth_method") {
            guard let known = TokenEndpointAuthMethod(rawValue: name) else {
                throw AuthError(
                    .invalidConfig,
                    "token_endpoint_auth_method: one of "
                        + TokenEndpointAuthMethod.allCases.map(\.rawValue).joined(separator: ", ")
                )
            }
            method = known
        }
        if let name = try reader.string("grant") {
            guard let known = ClientGrant(rawValue: name) else {
                throw AuthError(.invalidConfig, "grant: authorization_code or client_credentials")
            }
            grant = known
        }
        if let clientID = try reader.string("client_id") {
            guard !clientID.isEmpty, clientID.utf8.count <= 1024 else {
                throw AuthError(.invalidConfig, "client_id: 1 to 1024 bytes")
            }
            if secret != nil && privateKey != nil {
                throw AuthError(.invalidConfig, "client_secret and private_key: give one of them, not both")
            }
            if secret != nil && issuer == nil {
                throw AuthError(.invalidConfig, "client_secret: needs client_issuer, the issuer that gave it")
            }
            if privateKey != nil && issuer == nil {
                throw AuthError(.invalidConfig, "private_key: needs client_issuer, the issuer that registered it")
            }
            let credentials = ClientCredentials(
                clientID: clientID,
                clientSecret: secret,
                privateKey: privateKey,
                authMethod: method
            )
            try credentials.check()
            preRegistered[issuer ?? "*"] = credentials
        } else if secret != nil || issuer != nil || privateKey != nil || method != nil {
            throw AuthError(
                .invalidConfig,
                "client_secret, private_key, client_issuer and token_endpoint_auth_method need client_id"
            )
        }
        if grant == .clientCredentials {
            guard secret != nil || privateKey != nil, preRegistered.keys.contains(where: { $0 != "*" }) else {
                throw AuthError(
                    .invalidConfig,
                    "grant client_credentials: needs client_id, client_issuer and a client_secret or private_key"
                )
            }
            guard clientMetadataURL == nil else {
                throw AuthError(.invalidConfig, "client_metadata_url: not used with grant client_credentials")
            }
        }
        redirectPort = try reader.count("redirect_port", minimum: 0, maximum: 65535) ?? 0
        if let scopes = try reader.stringList("scopes") {
            try ScopeNames.checkConfig(scopes, key: "scopes")
            self.scopes = scopes
        }
        noBrowser = try reader.bool("no_browser") ?? false
        signInTimeout = try reader.timeout("sign_in_timeout") ?? 300
        httpTimeout = try reader.timeout("timeout") ?? 10
        refreshMargin = min(try reader.seconds("refresh_margin") ?? 60, 86_400)
    }
}

extension OAuthClient {
    /// The default token cache: an encrypted SQLite file under `$XDG_CACHE_HOME/fastmcpauth` (else
    /// `~/.cache/fastmcpauth`), the directory 0700, the database and its Fernet key beside it 0600;
    /// the key is generated on first use and kept.
    public static func defaultStore(environment: [String: String]) throws -> Store {
        let base: String
        if let cache = environment["XDG_CACHE_HOME"], cache.hasPrefix("/") {
            base = cache
        } else if let home = environment["HOME"], home.hasPrefix("/") {
            base = home + "/.cache"
        } else {
            throw AuthError(.invalidConfig, "no cache directory: set XDG_CACHE_HOME or HOME, or give a store")
        }
        let directory = base + "/fastmcpauth"
        _ = mkdir(base, 0o700)
        guard mkdir(directory, 0o700) == 0 || errno == EEXIST else {
            throw AuthError(.storeUnavailable, "cannot create the cache directory \(directory)")
        }
        let key = try readOrCreateKey(directory + "/key")
        let database = directory + "/tokens.db"
        // Created 0600 before SQLite opens it (SQLite gives its journal files the same mode).
        let descriptor = open(database, O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw AuthError(.storeUnavailable, "cannot create \(database)") }
        close(descriptor)
        var options = Store.Options()
        options.encryptionKeys = [key]
        return try Store(url: "sqlite:///" + database, options: options)
    }

    static func readOrCreateKey(_ path: String) throws -> String {
        let created = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        if created >= 0 {
            let key = try Fernet.generateKey()
            let bytes = Array((key + "\n").utf8)
            let written = bytes.withUnsafeBytes { write(created, $0.baseAddress, $0.count) }
            close(created)
            guard written == bytes.count else {
                unlink(path)
                throw AuthError(.storeUnavailable, "cannot write the cache key \(path)")
            }
            return key
        }
        guard errno == EEXIST else { throw AuthError(.storeUnavailable, "cannot create the cache key \(path)") }
        // Another process may be writing it this instant: a few short retries.
        for _ in 0..<20 {
            if let text = readSmallFile(path), (try? Fernet(key: text)) != nil { return text }
            usleep(25_000)
        }
        throw AuthError(.invalidKey, "the cache key \(path) is not a Fernet key")
    }

    /// The first 128 bytes of a file, trailing newline removed; nil when it cannot be read.
    static func readSmallFile(_ path: String) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 128)
        let count = read(descriptor, &buffer, buffer.count)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self).trimmingSuffix("\n")
    }
}

extension OAuthClient {
    /// The C API's and the bindings' constructor: the configuration above plus `storage` (a store
    /// URL; default the private SQLite cache) and `encryption_keys` (Fernet keys for that store;
    /// required with `storage`, since tokens are never kept in plaintext).
    public convenience init(json: JSONValue, environment: [String: String]) throws {
        guard case .object(var object) = json else {
            throw AuthError(.invalidConfig, "the OAuth client configuration must be a JSON object")
        }
        let storage = object.removeValue(forKey: "storage")
        let keys = object.removeValue(forKey: "encryption_keys")
        let configuration = try Configuration(json: .object(object))
        let store: Store
        if let storage, storage != .null {
            guard let url = storage.stringValue else { throw AuthError(.invalidConfig, "storage: must be a store URL") }
            let reader = ConfigReader(values: keys.map { ["encryption_keys": $0] } ?? [:])
            guard let encryptionKeys = try reader.stringList("encryption_keys"), !encryptionKeys.isEmpty else {
                throw AuthError(.invalidConfig, "encryption_keys: required with storage (tokens are kept encrypted)")
            }
            var options = Store.Options()
            options.encryptionKeys = encryptionKeys
            store = try Store(url: url, options: options)
        } else {
            guard keys == nil || keys == .null else {
                throw AuthError(
                    .invalidConfig,
                    "encryption_keys: only with storage (the default cache keeps its own key)"
                )
            }
            store = try Self.defaultStore(environment: environment)
        }
        try self.init(configuration: configuration, store: store)
    }
}
