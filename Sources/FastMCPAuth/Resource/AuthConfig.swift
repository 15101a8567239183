/// Building an AuthFacade from a JSON configuration (keys are the Python keyword names) or from
/// FastMCP's environment variables.
extension AuthFacade {
    static let commonKeys: Set<String> = ["provider", "base_url", "mcp_path", "required_scopes", "resource_name"]
    static let verifierKeys = JWTVerifierConfig.knownKeys.subtracting(["required_scopes"])

    /// {"provider": "jwt" | "remote" | "authkit" | "static" | "introspection" | "workos-userinfo" |
    ///  "oauth_proxy" | "oidc_proxy" | "workos", "base_url", "mcp_path" ("/mcp"), "required_scopes",
    ///  "resource_name", …provider keys}. jwt: the JWTVerifier keys; remote: "token_verifier" (a
    /// JWTVerifier configuration) and "authorization_servers"; authkit: "authkit_domain"; static:
    /// "tokens" ({token: {client_id, scopes, expires_at, sub}}); introspection and workos-userinfo:
    /// their endpoints; the three proxies: the OAuthProxyConfig keys.
    public convenience init(
        json: JSONValue,
        http: HTTPClient = CurlHTTPClient(),
        clock: @escaping @Sendable () -> Double = JWTVerifier.systemClock,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) throws {
        guard let object = json.objectValue else {
            throw AuthError(.invalidConfig, "the auth configuration must be a JSON object")
        }
        let values = object.filter { $0.value != .null }
        let reader = ConfigReader(values: values)
        guard let name = try reader.string("provider") else { throw AuthError(.invalidConfig, "provider: is required") }
        guard let provider = Provider(rawValue: name) else {
            throw AuthError(
                .invalidConfig,
                "provider: \"\(name)\" is not available (\(Provider.allCases.map(\.rawValue).joined(separator: ", ")))"
            )
        }
        let specific: Set<String>
        switch provider {
        case .jwt: specific = AuthFacade.verifierKeys
        case .remote: specific = ["token_verifier", "authorization_servers"]
        case .authkit: specific = ["authkit_domain"]
        case .static: specific = ["tokens"]
        case .introspection:
            specific = [
                "introspection_url", "client_id", "client_secret", "timeout_seconds", "authorization_servers",
                "cache_ttl", "audience",
            ]
        case .workosUserinfo: specific = ["authkit_domain", "timeout_seconds", "cache_ttl", "audience"]
        case .oauthProxy: specific = OAuthProxyConfig.proxyKeys
        case .oidcProxy: specific = OAuthProxyConfig.oidcKeys
        case .workos: specific = OAuthProxyConfig.workosKeys
        }
        if let unknown = values.keys.sorted().first(where: {
            !AuthFacade.commonKeys.contains($0) && !specific.contains($0)
        }) {
            throw AuthError(.invalidConfig, "unknown configuration key \"\(unknown)\" for provider \(name)")
        }
        let baseURL = try reader.string("base_url")
        if baseURL == nil, [.authkit, .remote, .workosUserinfo, .oauthProxy, .oidcProxy, .workos].contains(provider) {
            throw AuthError(
                .invalidConfig,
                "base_url: is required for provider \(name) (it names the protected resource)"
            )
        }
        let mcpPath = try reader.string("mcp_path") ?? "/mcp"
        let scopes = try reader.stringList("required_scopes") ?? []
        // An introspection or userinfo answer that names an audience must name us.
        var remoteAudiences = try reader.stringList("audience") ?? []
        if let baseURL, let origin = AuthFacade.origin(of: baseURL) {
            remoteAudiences.append(origin + String(baseURL.dropFirst(origin.count)).trimmingSuffix("/") + mcpPath)
        }
        var servers: [String] = []
        var domain: String? = nil
        var proxy: OAuthProxy? = nil
        let verify: @Sendable (String, [String]) throws -> AccessToken

        func jwtVerifier(_ config: [String: JSONValue], defaults: [String: JSONValue] = [:]) throws -> JWTVerifier {
            var merged = defaults
            merged.merge(config) { _, explicit in explicit }
            return try JWTVerifier(json: .object(merged), http: http, clock: clock)
        }

        switch provider {
        case .jwt:
            let verifier = try jwtVerifier(values.filter { AuthFacade.verifierKeys.contains($0.key) })
            verify = { token, needed in try verifier.verify(token, requiredScopes: needed) }
        case .remote:
            guard case .object(let config)? = values["token_verifier"] else {
                throw AuthError(.invalidConfig, "token_verifier: must be a JWTVerifier configuration object")
            }
            if config["required_scopes"] != nil {
                throw AuthError(.invalidConfig, "token_verifier: give required_scopes on the provider")
            }
            let verifier = try jwtVerifier(config)
            servers = try reader.stringList("authorization_servers") ?? []
            guard !servers.isEmpty else {
                throw AuthError(.invalidConfig, "authorization_servers: at least one is required")
            }
            verify = { token, needed in try verifier.verify(token, requiredScopes: needed) }
        case .authkit:
            guard let text = try reader.string("authkit_domain"), let origin = AuthFacade.origin(of: text) else {
                throw AuthError(.invalidConfig, "authkit_domain: must be a URL such as https://your-app.authkit.app")
            }
            domain = origin
            servers = [origin]
            let base = baseURL ?? ""
            let resource =
                (AuthFacade.origin(of: base) ?? "")
                + String(base.dropFirst((AuthFacade.origin(of: base) ?? "").count)).trimmingSuffix("/") + mcpPath
            // AuthKit: JWKS at {domain}/oauth2/jwks, issuer = domain, audience = the resource.
            let verifier = try jwtVerifier(
                [:],
                defaults: [
                    "jwks_uri": .string(origin + "/oauth2/jwks"), "issuer": .string(origin),
                    "audience": .string(resource), "algorithms": ["RS256"],
                ]
            )
            verify = { token, needed in try verifier.verify(token, requiredScopes: needed) }
        case .introspection:
            guard let url = try reader.string("introspection_url"), let clientID = try reader.string("client_id"),
                let secret = try reader.string("client_secret")
            else {
                throw AuthError(.invalidConfig, "introspection_url, client_id and client_secret: are required")
            }
            servers = try reader.stringList("authorization_servers") ?? []
            let checker = try RemoteTokenVerifier(
                method: .introspection(url: url, clientID: clientID, clientSecret: secret),
                timeout: try reader.timeout("timeout_seconds") ?? 10,
                cacheLifetime: try reader.seconds("cache_ttl") ?? 60,
                audiences: remoteAudiences,
                http: http,
                clock: clock
            )
            verify = { token, needed in try checker.verify(token, requiredScopes: needed) }
        case .workosUserinfo:
            guard let text = try reader.string("authkit_domain"), let origin = AuthFacade.origin(of: text) else {
                throw AuthError(.invalidConfig, "authkit_domain: must be a URL such as https://your-app.authkit.app")
            }
            servers = [origin]
            let checker = try RemoteTokenVerifier(
                method: .userinfo(url: origin + "/oauth2/userinfo"),
                timeout: try reader.timeout("timeout_seconds") ?? 10,
                cacheLifetime: try reader.seconds("cache_ttl") ?? 60,
                audiences: remoteAudiences,
                http: http,
                clock: clock
            )
            verify = { token, needed in try checker.verify(token, requiredScopes: needed) }
        case .oauthProxy, .oidcProxy, .workos:
            let base = baseURL ?? ""
            let origin = AuthFacade.origin(of: base) ?? ""
            let resource = origin + String(base.dropFirst(origin.count)).trimmingSuffix("/") + mcpPath
            let config = try OAuthProxyConfig.parse(
                provider: provider,
                reader: reader,
                values: values,
                baseURL: base,
                resourceURL: resource,
                requiredScopes: scopes,
                http: http
            )
            let built = try OAuthProxy(config: config, http: http, clock: clock, log: log)
            proxy = built
            servers = [config.issuer]
            verify = { token, needed in try built.verify(token, requiredScopes: needed) }
        case .static:
            guard case .object(let tokens)? = values["tokens"], !tokens.isEmpty else {
                throw AuthError(.invalidConfig, "tokens: must map each token to {client_id, scopes, expires_at}")
            }
            let table: [(token: [UInt8], claims: [String: JSONValue])] = try tokens.map { token, entry in
                guard case .object(var claims) = entry else {
                    throw AuthError(.invalidConfig, "tokens: each entry must be an object")
                }
                if let scopes = claims.removeValue(forKey: "scopes") {
                    guard let list = scopes.stringOrStringArray else {
                        throw AuthError(.invalidConfig, "tokens: scopes must be a list of strings")
                    }
                    claims["scope"] = .string(list.joined(separator: " "))
                }
                if let expires = claims.removeValue(forKey: "expires_at") { claims["exp"] = expires }
                return (Array(token.utf8), claims)
            }
            verify = { token, needed in
                let bytes = Array(token.utf8)
                // Every entry is compared, in constant time, so timing does not reveal a prefix.
                var found: [String: JSONValue]? = nil
                for entry in table where OpenSSL.constantTimeEqual(entry.token, bytes) { found = entry.claims }
                guard let claims = found else { throw AuthError(.badSignature, "unknown static token") }
                var policy = ClaimsPolicy()
                policy.requireExpiration = false
                try policy.checkClaims(claims, now: clock(), extraScopes: needed)
                return AccessToken(token: token, claims: claims)
            }
        }
        try self.init(
            provider: provider,
            baseURL: baseURL,
            mcpPath: mcpPath,
            requiredScopes: scopes,
            authorizationServers: servers,
            resourceName: try reader.string("resource_name"),
            authKitDomain: domain,
            proxy: proxy,
            verify: verify,
            http: http,
            clock: clock
        )
    }

    // MARK: - Environment

    static let providerNames: [String: Provider] = [
        "jwt": .jwt, "jwtverifier": .jwt, "fastmcp.server.auth.providers.jwt.jwtverifier": .jwt,
        "authkit": .authkit, "authkitprovider": .authkit,
        "fastmcp.server.auth.providers.workos.authkitprovider": .authkit,
        "remote": .remote, "remoteauthprovider": .remote, "fastmcp.server.auth.auth.remoteauthprovider": .remote,
        "fastmcp.server.auth.remoteauthprovider": .remote,
        "static": .static, "statictokenverifier": .static,
        "fastmcp.server.auth.providers.jwt.statictokenverifier": .static,
        "introspection": .introspection, "introspectiontokenverifier": .introspection,
        "fastmcp.server.auth.providers.introspection.introspectiontokenverifier": .introspection,
        "workos-userinfo": .workosUserinfo, "workostokenverifier": .workosUserinfo,
        "fastmcp.server.auth.providers.workos.workostokenverifier": .workosUserinfo,
        "workos": .workos, "workosprovider": .workos, "fastmcp.server.auth.providers.workos.workosprovider": .workos,
        "oidc_proxy": .oidcProxy, "oidcproxy": .oidcProxy, "fastmcp.server.auth.oidc_proxy.oidcproxy": .oidcProxy,
        "oauth_proxy": .oauthProxy, "oauthproxy": .oauthProxy,
        "fastmcp.server.auth.oauth_proxy.oauthproxy": .oauthProxy,
        "fastmcp.server.auth.oauthproxy": .oauthProxy,
    ]

    /// The configuration FastMCP's variables describe: FASTMCP_SERVER_AUTH names the provider;
    /// FASTMCP_SERVER_AUTH_JWT_*, FASTMCP_SERVER_AUTH_AUTHKITPROVIDER_*, …_REMOTE_* and
    /// …_STATIC_TOKENS give its settings. `overrides` (explicit arguments) win; `defaults` lose.
    /// Returns nil when FASTMCP_SERVER_AUTH is unset and `overrides` names no provider.
    public static func configuration(
        environment: [String: String],
        overrides: [String: JSONValue] = [:],
        defaults: [String: JSONValue] = [:]
    ) throws -> JSONValue? {
        var config = defaults
        var variableOf = [String: String]()
        if let named = environment["FASTMCP_SERVER_AUTH"], !named.trimmingCharacters().isEmpty {
            let key = named.trimmingCharacters().lowercased()
            guard let provider = providerNames[key] else {
                throw AuthError(.invalidConfig, "FASTMCP_SERVER_AUTH: unknown provider \"\(named)\"")
            }
            config["provider"] = .string(provider.rawValue)
            let prefixes: [String]
            switch provider {
            case .jwt: prefixes = ["FASTMCP_SERVER_AUTH_JWT_"]
            case .authkit: prefixes = ["FASTMCP_SERVER_AUTH_AUTHKITPROVIDER_"]
            case .remote: prefixes = ["FASTMCP_SERVER_AUTH_REMOTE_", "FASTMCP_SERVER_AUTH_JWT_"]
            case .static: prefixes = ["FASTMCP_SERVER_AUTH_STATIC_"]
            case .introspection: prefixes = ["FASTMCP_SERVER_AUTH_INTROSPECTION_"]
            case .workosUserinfo, .workos: prefixes = ["FASTMCP_SERVER_AUTH_WORKOS_"]
            case .oidcProxy: prefixes = ["FASTMCP_SERVER_AUTH_OIDC_"]
            case .oauthProxy: prefixes = ["FASTMCP_SERVER_AUTH_OAUTH_PROXY_"]
            }
            var verifier = [String: JSONValue]()
            for (variable, value) in environment.sorted(by: { $0.key < $1.key }) {
                guard let prefix = prefixes.first(where: { variable.hasPrefix($0) }) else { continue }
                let key = variable.dropFirst(prefix.count).lowercased()
                if OAuthProxyConfig.testOnlyKeys.contains(key) || key == "testing" {
                    throw AuthError(
                        .invalidConfig,
                        "\(variable): test-only settings are never read from the environment"
                    )
                }
                let parsed = try environmentValue(value, key: key, variable: variable)
                if provider == .remote, prefix == "FASTMCP_SERVER_AUTH_JWT_", key != "base_url",
                    key != "required_scopes"
                {
                    verifier[key] = parsed
                } else {
                    config[key] = parsed
                }
                variableOf[key] = variable
            }
            if provider == .remote, !verifier.isEmpty { config["token_verifier"] = .object(verifier) }
        }
        config.merge(overrides) { _, explicit in explicit }
        guard config["provider"] != nil else { return nil }
        // Fail here, naming the variable, rather than later naming only the key.
        do {
            _ = try AuthFacade(json: .object(config))
        } catch let error as AuthError {
            if let key = variableOf.keys.sorted(by: { $0.count > $1.count }).first(where: {
                error.message.hasPrefix($0 + ":") || error.message.contains("\"\($0)\"")
            }),
                let variable = variableOf[key], overrides[key] == nil
            {
                throw AuthError(error.code, "\(variable): \(error.message)")
            }
            throw error
        }
        return .object(config)
    }

    /// Numbers, booleans, JSON objects/arrays and plain strings, as FastMCP's settings accept them.
    static func environmentValue(_ text: String, key: String, variable: String) throws -> JSONValue {
        let trimmed = text.trimmingCharacters()
        if trimmed.hasPrefix("{") || trimmed.hasPrefix("[") {
            guard let parsed = try? JSONValue.parse(trimmed) else {
                throw AuthError(.invalidConfig, "\(variable): not valid JSON")
            }
            return parsed
        }
        switch trimmed.lowercased() {
        case "true": return true
        case "false": return false
        default: break
        }
        if [
            "leeway", "cache_size", "cache_ttl", "max_token_bytes", "jwks_timeout", "jwks_max_bytes",
            "jwks_refetch_cooldown",
            "jwks_cache_ttl", "jwks_min_cache_ttl", "jwks_max_cache_ttl", "timeout_seconds", "access_token_lifetime",
            "refresh_token_lifetime", "refresh_grace_period", "transaction_lifetime", "code_lifetime",
            "client_lifetime",
            "registration_rate_limit", "pbkdf2_iterations", "authorize_rate_limit", "consent_rate_limit",
            "max_pending_transactions_per_client", "max_pending_transactions", "max_consent_renders",
            "max_registrations_per_hour",
        ].contains(key) {
            if let integer = Int64(trimmed) { return .int(integer) }
            if let number = Double(trimmed) { return .double(number) }
            throw AuthError(.invalidConfig, "\(variable): must be a number")
        }
        return .string(text)
    }
}
