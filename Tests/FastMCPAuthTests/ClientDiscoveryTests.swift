import Testing

@testable import FastMCPAuth

/// The client's discovery rules without network: header parsing, the URL orders of RFC 9728, RFC 8414
/// and the MCP spec, the identity checks on the documents, and the registration order.
@Suite struct ClientDiscoveryTests {
    @Test func wwwAuthenticateExamplesFromTheRFCs() {
        // RFC 9110 §11.6.1: two challenges, the second with a token and an escaped quoted-string.
        let two = WWWAuthenticate.parse(
            #"Basic realm="simple", Newauth realm="apps", type=1, title="Login to \"apps\"""#
        )
        #expect(
            two == [
                AuthChallenge(scheme: "basic", parameters: ["realm": "simple"]),
                AuthChallenge(
                    scheme: "newauth",
                    parameters: ["realm": "apps", "type": "1", "title": #"Login to "apps""#]
                ),
            ]
        )
        // RFC 6750 §3.
        let expired = BearerChallenge(
            status: 401,
            header: #"Bearer realm="example", error="invalid_token", error_description="The access token expired""#
        )
        #expect(expired.error == "invalid_token" && expired.resourceMetadata == nil && expired.scopes.isEmpty)
        // RFC 9728 §5.1.
        let metadata = BearerChallenge(
            status: 401,
            header: #"Bearer resource_metadata="https://resource.example.com/.well-known/oauth-protected-resource""#
        )
        #expect(metadata.resourceMetadata == "https://resource.example.com/.well-known/oauth-protected-resource")
        // RFC 6750 §3.1 with a scope list; parameter names are case-insensitive.
        let more = BearerChallenge(status: 403, header: #"BEARER Error="insufficient_scope", Scope="read write""#)
        #expect(more.isInsufficientScope && more.scopes == ["read", "write"])
        // A token68 challenge before a Bearer one.
        #expect(
            WWWAuthenticate.parse("Basic YWxhZGRpbjpvcGVuc2VzYW1l==, Bearer scope=read")
                == [
                    AuthChallenge(scheme: "basic", token68: "YWxhZGRpbjpvcGVuc2VzYW1l=="),
                    AuthChallenge(scheme: "bearer", parameters: ["scope": "read"]),
                ]
        )
        #expect(WWWAuthenticate.parse("Bearer") == [AuthChallenge(scheme: "bearer")])
    }

    /// What our own host sends is what our client reads.
    @Test func ourServersChallengeRoundTrips() throws {
        let facade = try AuthFacade(
            json: [
                "provider": "remote", "base_url": "http://127.0.0.1:8000",
                "authorization_servers": ["http://127.0.0.1:9000"], "required_scopes": ["read", "write"],
                "token_verifier": ["public_key": "0123456789abcdef0123456789abcdef", "algorithm": "HS256"],
            ]
        )
        guard case .challenge(let response) = facade.authenticate(authorization: nil) else {
            Issue.record("no challenge")
            return
        }
        let challenge = BearerChallenge(status: response.status, header: response.headers["WWW-Authenticate"])
        #expect(challenge.status == 401)
        #expect(challenge.resourceMetadata == "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp")
        #expect(challenge.scopes == ["read", "write"])
        #expect(
            try ProtectedResourceMetadata(
                json: facade.protectedResourceMetadata(),
                requestedResource: "http://127.0.0.1:8000/mcp"
            ).authorizationServers == ["http://127.0.0.1:9000"]
        )
    }

    @Test func hostileHeadersEndTheParseWithoutTrapping() {
        #expect(WWWAuthenticate.parse(#"Bearer realm="unterminated"#) == [AuthChallenge(scheme: "bearer")])
        #expect(WWWAuthenticate.parse(String(repeating: ",", count: 10_000)).isEmpty)
        #expect(WWWAuthenticate.parse(String(repeating: "a", count: WWWAuthenticate.maxLength + 1)).isEmpty)
        #expect(
            WWWAuthenticate.parse(String(repeating: "Bearer, ", count: 1000)).count == WWWAuthenticate.maxChallenges
        )
        let manyParameters = "Bearer " + (0..<100).map { "p\($0)=v" }.joined(separator: ", ")
        #expect(WWWAuthenticate.parse(manyParameters).first?.parameters.count == WWWAuthenticate.maxParameters)
        // The first of a repeated parameter wins; a scope list keeps only valid scope names.
        let repeated = BearerChallenge(
            status: 401,
            header: #"Bearer resource_metadata="https://a/", resource_metadata="https://b/""#
        )
        #expect(repeated.resourceMetadata == "https://a/")
        #expect(BearerChallenge(status: 403, header: "Bearer scope=\"ok bad\\\\name\"").scopes == ["ok"])
        #expect(BearerChallenge(status: 401, header: "\u{0}\u{1}@@@ = ,,").resourceMetadata == nil)
    }

    @Test func protectedResourceMetadataURLs() throws {
        // RFC 9728 §3.1's example, then the MCP spec's root fallback.
        #expect(
            try ClientDiscovery.protectedResourceMetadataURLs(resource: "https://resource.example.com/resource1") == [
                "https://resource.example.com/.well-known/oauth-protected-resource/resource1",
                "https://resource.example.com/.well-known/oauth-protected-resource",
            ]
        )
        #expect(
            try ClientDiscovery.protectedResourceMetadataURLs(resource: "https://resource.example.com/") == [
                "https://resource.example.com/.well-known/oauth-protected-resource"
            ]
        )
        #expect(
            try ClientDiscovery.protectedResourceMetadataURLs(resource: "http://127.0.0.1:8000/mcp").first
                == "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp"
        )
        #expect(
            outcome { try ClientDiscovery.protectedResourceMetadataURLs(resource: "http://example.com/mcp") }
                == .discoveryFailed
        )
    }

    @Test func authorizationServerMetadataURLsInTheSpecsOrder() throws {
        // RFC 8414 §3.1's example issuer with a path.
        #expect(
            try ClientDiscovery.authorizationServerMetadataURLs(issuer: "https://example.com/issuer1") == [
                "https://example.com/.well-known/oauth-authorization-server/issuer1",
                "https://example.com/.well-known/openid-configuration/issuer1",
                "https://example.com/issuer1/.well-known/openid-configuration",
            ]
        )
        for issuer in ["https://example.com", "https://example.com/", "https://EXAMPLE.com:443"] {
            #expect(
                try ClientDiscovery.authorizationServerMetadataURLs(issuer: issuer) == [
                    "https://example.com/.well-known/oauth-authorization-server",
                    "https://example.com/.well-known/openid-configuration",
                ]
            )
        }
    }

    @Test func canonicalResourcesAndTheirIdentity() throws {
        #expect(
            try ClientDiscovery.canonicalResource("HTTPS://MCP.Example.com:443/mcp") == "https://mcp.example.com/mcp"
        )
        #expect(try ClientDiscovery.canonicalResource("http://localhost:8000/mcp") == "http://localhost:8000/mcp")
        for bad in ["http://example.com/mcp", "https://user@example.com/mcp", "https://example.com/mcp#x", "mcp", ""] {
            #expect(outcome { try ClientDiscovery.canonicalResource(bad) } == .invalidConfig, "\(bad)")
        }
        #expect(ClientDiscovery.isSameResource("https://mcp.example.com/mcp/", "https://MCP.example.com/mcp"))
        // No hierarchy and no cross-origin: a parent path or another port is another resource.
        #expect(!ClientDiscovery.isSameResource("https://mcp.example.com/", "https://mcp.example.com/mcp"))
        #expect(!ClientDiscovery.isSameResource("https://mcp.example.com:8443/mcp", "https://mcp.example.com/mcp"))
        #expect(!ClientDiscovery.isSameResource("https://mcp.example.com/mcp2", "https://mcp.example.com/mcp"))
    }

    @Test func resourceMetadataMustDescribeTheServerCalled() throws {
        let good: JSONValue = [
            "resource": "https://mcp.example.com/mcp", "authorization_servers": ["https://auth.example.com"],
            "scopes_supported": ["read", "bad scope", "write"],
        ]
        let metadata = try ProtectedResourceMetadata(json: good, requestedResource: "https://mcp.example.com/mcp")
        #expect(
            metadata.authorizationServers == ["https://auth.example.com"]
                && metadata.scopesSupported == ["read", "write"]
        )
        let cases: [JSONValue] = [
            ["resource": "https://evil.example/mcp", "authorization_servers": ["https://auth.example.com"]],
            ["authorization_servers": ["https://auth.example.com"]],
            ["resource": "https://mcp.example.com/mcp", "authorization_servers": []],
            ["resource": "https://mcp.example.com/mcp", "authorization_servers": ["http://auth.example.com"]],
            ["resource": "https://mcp.example.com/mcp", "authorization_servers": [1]],
            "not an object",
        ]
        for json in cases {
            #expect(
                outcome { try ProtectedResourceMetadata(json: json, requestedResource: "https://mcp.example.com/mcp") }
                    == .discoveryFailed,
                "\(json.serialized())"
            )
        }
    }

    static let serverDocument: [String: JSONValue] = [
        "issuer": "https://auth.example.com/tenant", "authorization_endpoint": "https://auth.example.com/authorize",
        "token_endpoint": "https://auth.example.com/token",
        "registration_endpoint": "https://auth.example.com/register",
        "code_challenge_methods_supported": ["S256"], "client_id_metadata_document_supported": true,
        "authorization_response_iss_parameter_supported": true,
    ]

    /// Whether the server document with `endpoint` set to `value` is refused (discovery_failed).
    static func refuses(_ endpoint: String, _ value: String) -> Bool {
        var document = serverDocument
        document[endpoint] = .string(value)
        return outcome {
            try AuthorizationServerMetadata(json: .object(document), expectedIssuer: "https://auth.example.com/tenant")
        } == .discoveryFailed
    }

    @Test func authorizationServerMetadataIdentityAndPKCE() throws {
        let metadata = try AuthorizationServerMetadata(
            json: .object(Self.serverDocument),
            expectedIssuer: "https://auth.example.com/tenant"
        )
        #expect(try metadata.authorizationCodeEndpoint() == "https://auth.example.com/authorize")
        #expect(metadata.issParameterSupported && metadata.clientIDMetadataDocumentSupported)
        // The issuer is compared as a string: a trailing slash or another case is another issuer.
        for expected in [
            "https://auth.example.com/tenant/", "https://AUTH.example.com/tenant", "https://auth.example.com",
        ] {
            #expect(
                outcome {
                    try AuthorizationServerMetadata(json: .object(Self.serverDocument), expectedIssuer: expected)
                }
                    == .discoveryFailed
            )
        }
        var plain = Self.serverDocument
        plain["code_challenge_methods_supported"] = ["plain"]
        let noS256 = try AuthorizationServerMetadata(
            json: .object(plain),
            expectedIssuer: "https://auth.example.com/tenant"
        )
        #expect(outcome { try noS256.authorizationCodeEndpoint() } == .discoveryFailed)
        plain["code_challenge_methods_supported"] = nil
        let unadvertised = try AuthorizationServerMetadata(
            json: .object(plain),
            expectedIssuer: "https://auth.example.com/tenant"
        )
        #expect(outcome { try unadvertised.authorizationCodeEndpoint() } == .discoveryFailed)
        for endpoint in ["token_endpoint", "authorization_endpoint", "registration_endpoint"] {
            #expect(Self.refuses(endpoint, "http://auth.example.com/x"), "\(endpoint)")
        }
    }

    @Test func registrationInTheSpecsOrder() throws {
        let server = try AuthorizationServerMetadata(
            json: .object(Self.serverDocument),
            expectedIssuer: "https://auth.example.com/tenant"
        )
        let mine = ClientCredentials(clientID: "mine")
        #expect(
            try RegistrationPlan.choose(
                preRegistered: ["https://auth.example.com/tenant": mine],
                metadataDocumentURL: "https://app.example/client.json",
                server: server
            ) == .preRegistered(mine)
        )
        #expect(
            try RegistrationPlan.choose(preRegistered: ["*": mine], metadataDocumentURL: nil, server: server)
                == .preRegistered(mine)
        )
        // Registered for another issuer: not used here.
        #expect(
            try RegistrationPlan.choose(
                preRegistered: ["https://other.example": mine],
                metadataDocumentURL: "https://app.example/client.json",
                server: server
            ) == .metadataDocument(url: "https://app.example/client.json")
        )
        #expect(
            try RegistrationPlan.choose(preRegistered: [:], metadataDocumentURL: nil, server: server)
                == .dynamic(endpoint: "https://auth.example.com/register")
        )
        var noCIMD = Self.serverDocument
        noCIMD["client_id_metadata_document_supported"] = false
        noCIMD["registration_endpoint"] = nil
        let bare = try AuthorizationServerMetadata(
            json: .object(noCIMD),
            expectedIssuer: "https://auth.example.com/tenant"
        )
        #expect(
            outcome {
                try RegistrationPlan.choose(
                    preRegistered: [:],
                    metadataDocumentURL: "https://app.example/client.json",
                    server: bare
                )
            } == .registrationFailed
        )
    }

    @Test func terminatingSlashesQueriesAndIssuerQueries() throws {
        // Terminating slashes go before the well-known path goes in; a resource's query stays after it.
        #expect(
            try ClientDiscovery.protectedResourceMetadataURLs(resource: "https://h.example/mcp/").first
                == "https://h.example/.well-known/oauth-protected-resource/mcp"
        )
        #expect(
            try ClientDiscovery.protectedResourceMetadataURLs(resource: "https://h.example/?tenant=1").first
                == "https://h.example/.well-known/oauth-protected-resource?tenant=1"
        )
        #expect(
            try ClientDiscovery.authorizationServerMetadataURLs(issuer: "https://example.com/issuer1/")
                == ClientDiscovery.authorizationServerMetadataURLs(issuer: "https://example.com/issuer1")
        )
        // RFC 8414 §2: no query in an issuer.
        #expect(
            outcome { try ClientDiscovery.authorizationServerMetadataURLs(issuer: "https://example.com/t?x=1") }
                == .discoveryFailed
        )
    }

    /// A remote server cannot aim the client's requests at the user's own machine: not through the
    /// resource metadata, the authorization-server metadata or a challenge's resource_metadata.
    @Test func loopbackTargetsOnlyFromLoopbackServers() throws {
        for servers: JSONValue in [["http://127.0.0.1:9000"], ["https://localhost/"], ["https://127.0.0.1:6379/"]] {
            let json: JSONValue = ["resource": "https://mcp.example.com/mcp", "authorization_servers": servers]
            #expect(
                outcome { try ProtectedResourceMetadata(json: json, requestedResource: "https://mcp.example.com/mcp") }
                    == .discoveryFailed
            )
        }
        let local: JSONValue = [
            "resource": "http://127.0.0.1:8000/mcp", "authorization_servers": ["http://127.0.0.1:9000"],
        ]
        #expect(throws: Never.self) {
            try ProtectedResourceMetadata(json: local, requestedResource: "http://127.0.0.1:8000/mcp")
        }
        for (endpoint, value) in [
            ("token_endpoint", "https://127.0.0.1:6379/x"), ("registration_endpoint", "http://localhost:8080/admin"),
            ("authorization_endpoint", "https://[::1]/authorize"),
        ] {
            #expect(Self.refuses(endpoint, value), "\(endpoint) \(value)")
        }
        let challenge = BearerChallenge(status: 401, header: #"Bearer resource_metadata="http://127.0.0.1:2375/x""#)
        #expect(ClientDiscovery.resourceMetadataURL(challenge, serverURL: "https://mcp.example.com/mcp") == nil)
        #expect(
            ClientDiscovery.resourceMetadataURL(challenge, serverURL: "http://127.0.0.1:8000/mcp")
                == "http://127.0.0.1:2375/x"
        )
    }

    /// A secret only goes to the issuer it was issued by, never to whichever server is named.
    @Test func aSecretNeedsItsIssuer() throws {
        let server = try AuthorizationServerMetadata(
            json: .object(Self.serverDocument),
            expectedIssuer: "https://auth.example.com/tenant"
        )
        let confidential = ClientCredentials(clientID: "mine", clientSecret: "s3cret")
        #expect(
            outcome {
                try RegistrationPlan.choose(
                    preRegistered: ["*": confidential],
                    metadataDocumentURL: nil,
                    server: server
                )
            }
                == .invalidConfig
        )
        #expect(
            try RegistrationPlan.choose(
                preRegistered: ["https://auth.example.com/tenant": confidential],
                metadataDocumentURL: nil,
                server: server
            ) == .preRegistered(confidential)
        )
        #expect(!"\(confidential)".contains("s3cret") && !String(reflecting: confidential).contains("s3cret"))
    }
}
