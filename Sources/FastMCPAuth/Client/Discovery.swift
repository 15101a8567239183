/// The client side's discovery rules (MCP authorization, RFC 9728, RFC 8414, OpenID Connect
/// Discovery) as pure functions over typed records: which URLs to try, in which order, and which
/// documents to believe. The driver fetches; nothing here does I/O.
public enum ClientDiscovery {
    /// The canonical resource URI of an MCP server URL (RFC 8707 §2, as the MCP spec uses it): lowercase
    /// scheme and host, no default port, no fragment. https, or http on a loopback host.
    public static func canonicalResource(_ url: String) throws -> String {
        guard let parts = RedirectURIs.parts(url), let host = parts.host else {
            throw AuthError(
                .invalidConfig,
                "server_url: an absolute http(s) URL without fragment or userinfo is required"
            )
        }
        guard parts.scheme == "https" || (parts.scheme == "http" && isLoopbackHost(host)) else {
            throw AuthError(.invalidConfig, "server_url: https is required (plain http only on a loopback host)")
        }
        return render(parts)
    }

    /// RFC 9728 §3.1 then the MCP fallback: the well-known URI with the resource's path inserted,
    /// then at the root. One URL when the resource has no path.
    public static func protectedResourceMetadataURLs(resource: String) throws -> [String] {
        let (origin, path, query) = try split(resource)
        let root = origin + "/.well-known/oauth-protected-resource"
        let suffix = path + (query.map { "?" + $0 } ?? "")
        return suffix.isEmpty ? [root] : [root + suffix, root]
    }

    /// The MCP spec's order: for an issuer with a path, RFC 8414 path insertion, OIDC path insertion,
    /// OIDC path appending; without a path, RFC 8414 then OIDC.
    public static func authorizationServerMetadataURLs(issuer: String) throws -> [String] {
        let (origin, path, query) = try split(issuer)
        // RFC 8414 §2: an issuer has no query or fragment.
        guard query == nil else { throw AuthError(.discoveryFailed, "an issuer identifier must not have a query") }
        guard !path.isEmpty else {
            return [origin + "/.well-known/oauth-authorization-server", origin + "/.well-known/openid-configuration"]
        }
        return [
            origin + "/.well-known/oauth-authorization-server" + path,
            origin + "/.well-known/openid-configuration" + path,
            origin + path + "/.well-known/openid-configuration",
        ]
    }

    /// Whether the resource a metadata document names is the server the client asked for: identical
    /// after canonicalisation, a trailing slash aside. No hierarchy: a document for `/` does not
    /// cover `/mcp`, so a token is never requested for a resource other than the one called.
    public static func isSameResource(_ documented: String, _ requested: String) -> Bool {
        guard let documented = try? canonicalResource(documented), let requested = try? canonicalResource(requested)
        else { return false }
        return documented.trimmingSuffix("/") == requested.trimmingSuffix("/")
    }

    /// scheme://host[:port], the path without its terminating slashes (RFC 8414 §3.1, OpenID Connect
    /// Discovery §4, RFC 9728 §3.1 remove them before the well-known path goes in), and the query.
    static func split(_ url: String) throws -> (origin: String, path: String, query: String?) {
        guard let parts = RedirectURIs.parts(url), let host = parts.host,
            parts.scheme == "https" || (parts.scheme == "http" && isLoopbackHost(host))
        else { throw AuthError(.discoveryFailed, "not an https URL (plain http only on loopback): cannot discover") }
        return (origin(parts), parts.path.trimmingSuffix("/"), parts.query)
    }

    static func origin(_ parts: RedirectURIs.Parts) -> String {
        var origin = parts.scheme + "://" + (parts.host ?? "")
        if let port = parts.port, !(parts.scheme == "https" && port == "443"), !(parts.scheme == "http" && port == "80")
        {
            origin += ":" + port
        }
        return origin
    }

    static func render(_ parts: RedirectURIs.Parts) -> String {
        origin(parts) + parts.pathAndQuery
    }

    /// An endpoint a document from `source` points the client at: https, or http on loopback; and a
    /// loopback host only when `source` is itself on loopback, so that a remote server cannot aim
    /// the client's requests (registration, token forms) at services on the user's machine.
    public static func isAcceptableEndpoint(_ url: String, from source: String) -> Bool {
        guard let parts = RedirectURIs.parts(url), let host = parts.host else { return false }
        guard parts.scheme == "https" || (parts.scheme == "http" && isLoopbackHost(host)) else { return false }
        guard isLoopbackHost(host) else { return true }
        return urlHost(source).map(isLoopbackHost) ?? false
    }

    /// The `resource_metadata` URL of a challenge from `serverURL`, if it is one to fetch.
    public static func resourceMetadataURL(_ challenge: BearerChallenge, serverURL: String) -> String? {
        guard let url = challenge.resourceMetadata, isAcceptableEndpoint(url, from: serverURL) else { return nil }
        return url
    }
}

/// RFC 9728 protected-resource metadata, as far as a client uses it.
public struct ProtectedResourceMetadata: Equatable, Sendable {
    public var resource: String
    public var authorizationServers: [String]
    public var scopesSupported: [String]

    /// Reads the document and checks it describes `requestedResource`; discovery_failed otherwise.
    public init(json: JSONValue, requestedResource: String) throws {
        guard case .object(let object) = json else {
            throw AuthError(.discoveryFailed, "the protected-resource metadata is not a JSON object")
        }
        let fields = Fields(object: object)
        guard let resource = fields.string("resource") else {
            throw AuthError(.discoveryFailed, "the protected-resource metadata has no resource")
        }
        guard ClientDiscovery.isSameResource(resource, requestedResource) else {
            throw AuthError(
                .discoveryFailed,
                "the protected-resource metadata describes \"\(Responses.printable(String(resource.prefix(200))))\", not the server URL"
            )
        }
        guard let servers = fields.strings("authorization_servers"), !servers.isEmpty else {
            throw AuthError(.discoveryFailed, "the protected-resource metadata lists no authorization server")
        }
        guard servers.allSatisfy({ ClientDiscovery.isAcceptableEndpoint($0, from: requestedResource) }) else {
            throw AuthError(.discoveryFailed, "an authorization server in the resource metadata is not an https URL")
        }
        self.resource = resource
        self.authorizationServers = servers
        self.scopesSupported = (fields.strings("scopes_supported") ?? []).filter(ScopeNames.isValid)
    }
}

/// RFC 8414 / OpenID Connect authorization-server metadata, as far as a client uses it.
public struct AuthorizationServerMetadata: Equatable, Sendable {
    public var issuer: String
    public var authorizationEndpoint: String?
    public var tokenEndpoint: String
    public var registrationEndpoint: String?
    public var revocationEndpoint: String?
    public var codeChallengeMethods: [String]
    public var scopesSupported: [String]
    /// `grant_types_supported`, RFC 8414's default when absent.
    public var grantTypes: [String]
    /// `token_endpoint_auth_methods_supported`, RFC 8414's default when absent.
    public var tokenEndpointAuthMethods: [String]
    /// `grant_types_supported` as the document lists it; nil when it does not.
    public var advertisedGrantTypes: [String]?
    /// `token_endpoint_auth_methods_supported` as the document lists it; nil when it does not.
    public var advertisedTokenEndpointAuthMethods: [String]?
    /// `token_endpoint_auth_signing_alg_values_supported`; nil when the document does not list it.
    public var tokenEndpointAuthSigningAlgorithms: [String]?
    public var clientIDMetadataDocumentSupported: Bool
    public var issParameterSupported: Bool

    /// Reads the document fetched for `expectedIssuer`. Its `issuer` must be that string exactly
    /// (RFC 8414 §3.3: a mix-up defence, no normalisation); every endpoint https (or http on loopback).
    public init(json: JSONValue, expectedIssuer: String) throws {
        guard case .object(let object) = json else {
            throw AuthError(.discoveryFailed, "the authorization-server metadata is not a JSON object")
        }
        let fields = Fields(object: object)
        guard let issuer = fields.string("issuer"), issuer == expectedIssuer else {
            throw AuthError(.discoveryFailed, "the authorization-server metadata names a different issuer")
        }
        guard let tokenEndpoint = fields.string("token_endpoint") else {
            throw AuthError(.discoveryFailed, "the authorization-server metadata has no token_endpoint")
        }
        let endpoints = ["authorization_endpoint", "token_endpoint", "registration_endpoint", "revocation_endpoint"]
        for name in endpoints {
            if let value = object[name],
                !(value.stringValue.map { ClientDiscovery.isAcceptableEndpoint($0, from: expectedIssuer) } ?? false)
            {
                throw AuthError(.discoveryFailed, "the authorization-server metadata's \(name) is not an https URL")
            }
        }
        self.issuer = issuer
        self.authorizationEndpoint = fields.string("authorization_endpoint")
        self.tokenEndpoint = tokenEndpoint
        self.registrationEndpoint = fields.string("registration_endpoint")
        self.revocationEndpoint = fields.string("revocation_endpoint")
        self.codeChallengeMethods = fields.strings("code_challenge_methods_supported") ?? []
        self.scopesSupported = (fields.strings("scopes_supported") ?? []).filter(ScopeNames.isValid)
        self.advertisedGrantTypes = fields.strings("grant_types_supported")
        self.advertisedTokenEndpointAuthMethods = fields.strings("token_endpoint_auth_methods_supported")
        self.tokenEndpointAuthSigningAlgorithms = fields.strings("token_endpoint_auth_signing_alg_values_supported")
        self.grantTypes = advertisedGrantTypes ?? ["authorization_code", "implicit"]
        self.tokenEndpointAuthMethods = advertisedTokenEndpointAuthMethods ?? ["client_secret_basic"]
        self.clientIDMetadataDocumentSupported = object["client_id_metadata_document_supported"]?.boolValue ?? false
        self.issParameterSupported = object["authorization_response_iss_parameter_supported"]?.boolValue ?? false
    }

    /// The authorization endpoint, when this server can run an authorization-code flow for us: it
    /// must advertise S256 (the MCP spec: a client must refuse to proceed otherwise).
    public func authorizationCodeEndpoint() throws -> String {
        guard let authorizationEndpoint else {
            throw AuthError(.discoveryFailed, "the authorization server has no authorization_endpoint")
        }
        guard codeChallengeMethods.contains("S256") else {
            throw AuthError(
                .discoveryFailed,
                "the authorization server does not advertise PKCE S256; refusing to sign in"
            )
        }
        return authorizationEndpoint
    }
}

/// Credentials a client was given for an authorization server: its id, and for a confidential
/// client a secret or a private key and the method that sends it. Its descriptions omit the secret
/// and the key.
public struct ClientCredentials: Equatable, Sendable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    public var clientID: String
    public var clientSecret: String?
    /// The key `private_key_jwt` signs its assertions with.
    public var privateKey: ClientAssertionKey?
    public var authMethod: TokenEndpointAuthMethod

    /// `authMethod` nil: client_secret_basic with a secret, private_key_jwt with a key, else none.
    public init(
        clientID: String,
        clientSecret: String? = nil,
        privateKey: ClientAssertionKey? = nil,
        authMethod: TokenEndpointAuthMethod? = nil
    ) {
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.privateKey = privateKey
        self.authMethod =
            authMethod ?? (clientSecret != nil ? .clientSecretBasic : privateKey != nil ? .privateKeyJWT : .none)
    }

    /// A dynamic registration's answer (RFC 7591 §3.2.1): the method the server assigned when it
    /// names one, else with a secret client_secret_basic or, when the server lists only post,
    /// client_secret_post; registration_failed for a method this client has no credential for.
    public static func registered(
        clientID: String,
        clientSecret: String?,
        method name: String?,
        server: AuthorizationServerMetadata
    ) throws -> ClientCredentials {
        let assigned = name.flatMap(TokenEndpointAuthMethod.init(rawValue:))
        let method: TokenEndpointAuthMethod
        switch (name, assigned, clientSecret) {
        case (nil, _, nil), (_, TokenEndpointAuthMethod.none?, _):
            // A public client (a secret beside "none" is not sent anywhere).
            return ClientCredentials(clientID: clientID)
        case (_, TokenEndpointAuthMethod.clientSecretBasic?, _?), (_, TokenEndpointAuthMethod.clientSecretPost?, _?):
            method = assigned ?? .clientSecretBasic
        case (nil, _, _?):
            let listed = server.advertisedTokenEndpointAuthMethods ?? []
            let postOnly = listed.contains("client_secret_post") && !listed.contains("client_secret_basic")
            method = postOnly ? .clientSecretPost : .clientSecretBasic
        default:
            let shown = Responses.printable(String((name ?? "none").prefix(40)))
            throw AuthError(
                .registrationFailed,
                "the authorization server registered the client for token_endpoint_auth_method \(shown)"
                    + (clientSecret == nil ? " without a client_secret" : "") + ", which this client cannot use"
            )
        }
        return ClientCredentials(clientID: clientID, clientSecret: clientSecret, authMethod: method)
    }

    /// Whether the method has its credential and nothing else: invalid_config otherwise, named in
    /// the configuration's keys.
    public func check() throws {
        if clientSecret != nil && privateKey != nil {
            throw AuthError(.invalidConfig, "client_secret and private_key: give one of them, not both")
        }
        switch authMethod {
        case .clientSecretBasic, .clientSecretPost:
            guard let clientSecret else {
                throw AuthError(
                    .invalidConfig,
                    "token_endpoint_auth_method \(authMethod.rawValue): needs client_secret"
                        + (privateKey != nil ? " (a private_key is for private_key_jwt)" : "")
                )
            }
            guard !clientSecret.isEmpty else { throw AuthError(.invalidConfig, "client_secret: must not be empty") }
        case .privateKeyJWT:
            guard privateKey != nil else {
                throw AuthError(.invalidConfig, "token_endpoint_auth_method private_key_jwt: needs private_key")
            }
        case .none:
            guard clientSecret == nil, privateKey == nil else {
                throw AuthError(
                    .invalidConfig,
                    "token_endpoint_auth_method none: sends no credential; remove client_secret and private_key"
                )
            }
        }
    }

    public var description: String {
        "ClientCredentials(clientID: \(Responses.printable(String(clientID.prefix(200)))), clientSecret: \(clientSecret == nil ? "none" : "<redacted>"), "
            + "privateKey: \(privateKey == nil ? "none" : "<redacted>"), authMethod: \(authMethod.rawValue))"
    }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["clientID": clientID, "authMethod": authMethod]) }
}

/// How the client will identify itself to an authorization server, in the MCP spec's order.
public enum RegistrationPlan: Equatable, Sendable {
    case preRegistered(ClientCredentials)
    case metadataDocument(url: String)
    case dynamic(endpoint: String)

    /// A pre-registered client for this issuer (the `issuer` key, or `*` for any, public clients only); else the Client ID
    /// Metadata Document when one is given and the server supports it; else dynamic registration;
    /// else registration_failed asking for a client id.
    public static func choose(
        preRegistered: [String: ClientCredentials],
        metadataDocumentURL: String?,
        server: AuthorizationServerMetadata
    ) throws -> RegistrationPlan {
        if let credentials = preRegistered[server.issuer] {
            return .preRegistered(credentials)
        }
        if let credentials = preRegistered["*"] {
            // The MCP server names the authorization server: a secret for "any issuer" would go to
            // whichever token endpoint a hostile server names.
            guard credentials.clientSecret == nil, credentials.privateKey == nil else {
                throw AuthError(
                    .invalidConfig,
                    "a client secret or private key needs the issuer it was issued by (client_issuer)"
                )
            }
            return .preRegistered(credentials)
        }
        if let metadataDocumentURL, server.clientIDMetadataDocumentSupported {
            return .metadataDocument(url: metadataDocumentURL)
        }
        if let endpoint = server.registrationEndpoint {
            return .dynamic(endpoint: endpoint)
        }
        throw AuthError(
            .registrationFailed,
            "the authorization server offers neither dynamic registration nor client metadata documents; configure a client_id"
        )
    }
}
