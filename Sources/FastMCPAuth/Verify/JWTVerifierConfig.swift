/// Configuration of a JWTVerifier. The JSON form uses the Python keyword names
/// (`public_key`, `jwks`, `jwks_uri`, `issuer`, `audience`, `algorithm`, `algorithms`,
/// `required_scopes`, `leeway`, `cache_size`, …); unknown keys are refused so typos surface.
public struct JWTVerifierConfig: Sendable {
    public enum KeySource: Sendable {
        /// A PEM key, or for HS* a shared secret (FastMCP passes both as `public_key`).
        case publicKey(String)
        case jwks(JSONValue)
        case jwksURI(String)
    }

    public var keySource: KeySource
    public var algorithms: [JWSAlgorithm]
    public var policy = ClaimsPolicy()
    public var maxTokenBytes = 16 * 1024
    /// How deep the JOSE header and the claims may nest (checked before either is parsed).
    public var maxJSONDepth = 32
    /// Verified-token cache entries (0 disables) and the longest an entry is trusted.
    public var cacheSize = 10_000
    public var cacheLifetime: Double = 60
    public var jwks = RemoteKeySet.Settings()

    public init(keySource: KeySource, algorithms: [JWSAlgorithm] = [.RS256]) {
        self.keySource = keySource
        self.algorithms = algorithms
    }

    static let knownKeys: Set<String> = [
        "public_key", "jwks", "jwks_uri", "issuer", "audience", "algorithm", "algorithms", "required_scopes",
        "leeway", "require_exp", "required_claims", "typ", "understood_crit", "max_token_bytes", "cache_size",
        "cache_ttl", "jwks_timeout", "jwks_max_bytes", "jwks_refetch_cooldown", "jwks_cache_ttl",
        "jwks_min_cache_ttl", "jwks_max_cache_ttl", "max_json_depth",
    ]

    /// Parses the JSON configuration; every problem is `invalid_config` naming the key.
    public init(json: JSONValue) throws {
        let reader = try ConfigReader(json: json, known: Self.knownKeys, what: "the verifier configuration")
        let present = reader.values

        let sources = ["public_key", "jwks", "jwks_uri"].filter { present[$0] != nil }
        guard sources.count == 1 else {
            throw AuthError(.invalidConfig, "give exactly one of public_key, jwks or jwks_uri")
        }
        if let publicKey = try reader.string("public_key") {
            keySource = .publicKey(publicKey)
        } else if let jwks = present["jwks"] {
            switch jwks {
            case .object: keySource = .jwks(jwks)
            case .string(let text):
                guard let parsed = try? JSONValue.parse(text) else {
                    throw AuthError(.invalidConfig, "jwks: not valid JSON")
                }
                keySource = .jwks(parsed)
            default: throw AuthError(.invalidConfig, "jwks: must be a JWKS object or its JSON text")
            }
        } else if let uri = try reader.string("jwks_uri") {
            keySource = .jwksURI(uri)
        } else {
            throw AuthError(.invalidConfig, "give exactly one of public_key, jwks or jwks_uri")
        }

        if present["algorithm"] != nil, present["algorithms"] != nil {
            throw AuthError(.invalidConfig, "give algorithm or algorithms, not both")
        }
        let names = try reader.stringList("algorithms") ?? (try reader.string("algorithm")).map { [$0] } ?? ["RS256"]
        let algorithmKey = present["algorithm"] != nil ? "algorithm" : "algorithms"
        guard !names.isEmpty else { throw AuthError(.invalidConfig, "algorithms: the list is empty") }
        algorithms = try names.map { name in
            guard let alg = JWSAlgorithm(name: name) else {
                throw AuthError(.invalidConfig, "\(algorithmKey): unsupported algorithm \"\(name)\"")
            }
            return alg
        }

        policy.issuers = try reader.stringList("issuer")
        policy.audiences = try reader.stringList("audience")
        policy.requiredScopes = try reader.stringList("required_scopes") ?? []
        policy.requiredClaims = try reader.stringList("required_claims") ?? []
        policy.leeway = try reader.seconds("leeway") ?? 0
        policy.requireExpiration = try reader.bool("require_exp") ?? true
        policy.expectedType = try reader.string("typ")
        policy.understoodCritical = Set(try reader.stringList("understood_crit") ?? [])
        maxTokenBytes = try reader.count("max_token_bytes", minimum: 64, maximum: 1 << 20) ?? maxTokenBytes
        maxJSONDepth = try reader.count("max_json_depth", minimum: 1, maximum: 256) ?? maxJSONDepth
        cacheSize = try reader.count("cache_size", minimum: 0, maximum: 10_000_000) ?? cacheSize
        cacheLifetime = try reader.seconds("cache_ttl") ?? cacheLifetime
        jwks.timeout = try reader.timeout("jwks_timeout") ?? jwks.timeout
        jwks.maxBytes = try reader.count("jwks_max_bytes", minimum: 64, maximum: 16 << 20) ?? jwks.maxBytes
        jwks.refetchCooldown = try reader.seconds("jwks_refetch_cooldown") ?? jwks.refetchCooldown
        jwks.defaultLifetime = try reader.seconds("jwks_cache_ttl") ?? jwks.defaultLifetime
        jwks.minLifetime = try reader.seconds("jwks_min_cache_ttl") ?? jwks.minLifetime
        jwks.maxLifetime = try reader.seconds("jwks_max_cache_ttl") ?? jwks.maxLifetime
        if jwks.timeout <= 0 { throw AuthError(.invalidConfig, "jwks_timeout: must be positive") }
        if jwks.minLifetime > jwks.maxLifetime {
            throw AuthError(.invalidConfig, "jwks_min_cache_ttl: exceeds jwks_max_cache_ttl")
        }
    }
}

/// Typed reads of a JSON configuration object, each failure naming its key.
struct ConfigReader {
    /// The configuration's members; JSON null counts as absent.
    let values: [String: JSONValue]

    init(values: [String: JSONValue]) { self.values = values }

    /// A reader of a configuration object whose every key must be one of `known`.
    init(json: JSONValue, known: Set<String>, what: String) throws {
        guard let object = json.objectValue else { throw AuthError(.invalidConfig, "\(what) must be a JSON object") }
        values = object.filter { $0.value != .null }
        if let unknown = values.keys.sorted().first(where: { !known.contains($0) }) {
            throw AuthError(.invalidConfig, "unknown configuration key \"\(unknown)\" in \(what)")
        }
    }

    func string(_ key: String) throws -> String? {
        guard let value = values[key] else { return nil }
        guard let s = value.stringValue else { throw AuthError(.invalidConfig, "\(key): must be a string") }
        return s
    }

    /// A list given as a JSON array of strings, or one string (JSON array text, commas or spaces).
    func stringList(_ key: String) throws -> [String]? {
        guard let value = values[key] else { return nil }
        if let text = value.stringValue { return try Self.splitList(text, key: key) }
        guard case .array = value, let list = value.stringOrStringArray else {
            throw AuthError(.invalidConfig, "\(key): must be a string or an array of strings")
        }
        return list
    }

    static func splitList(_ text: String, key: String) throws -> [String] {
        let trimmed = text.trimmingCharacters()
        if trimmed.hasPrefix("[") {
            guard let parsed = try? JSONValue.parse(trimmed), case .array = parsed,
                let list = parsed.stringOrStringArray
            else {
                throw AuthError(.invalidConfig, "\(key): not a JSON array of strings")
            }
            return list
        }
        return trimmed.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
    }

    func bool(_ key: String) throws -> Bool? {
        guard let value = values[key] else { return nil }
        guard let b = value.boolValue else { throw AuthError(.invalidConfig, "\(key): must be true or false") }
        return b
    }

    /// The longest lifetime or interval a configuration may name: 10 years.
    static let maxSeconds: Double = 10 * 365 * 86400
    /// The longest timeout a configuration may name: an hour.
    static let maxTimeout: Double = 3600

    /// A number of seconds from 0 to 10 years.
    func seconds(_ key: String) throws -> Double? {
        guard let value = values[key] else { return nil }
        guard let n = value.numberValue, n.isFinite, n >= 0, n <= Self.maxSeconds else {
            throw AuthError(.invalidConfig, "\(key): must be a number of seconds from 0 to \(Int(Self.maxSeconds))")
        }
        return n
    }

    /// A timeout: more than 0 and at most an hour.
    func timeout(_ key: String) throws -> Double? {
        guard let value = values[key] else { return nil }
        guard let n = value.numberValue, n.isFinite, n > 0, n <= Self.maxTimeout else {
            throw AuthError(.invalidConfig, "\(key): must be a timeout of more than 0 and at most 3600 seconds")
        }
        return n
    }

    func count(_ key: String, minimum: Int, maximum: Int = Int(Int32.max)) throws -> Int? {
        guard let value = values[key] else { return nil }
        guard case .int(let n) = value, n >= Int64(minimum), n <= Int64(maximum) else {
            throw AuthError(.invalidConfig, "\(key): must be an integer from \(minimum) to \(maximum)")
        }
        return Int(n)
    }
}
