#if canImport(Glibc)
import Glibc
#endif

/// An MCP client's OAuth: a valid access token for one protected server, from the cache, by a
/// refresh (one at a time across processes sharing the store), or by a browser sign-in. The rules
/// live in the pure pieces (ClientDiscovery, RegistrationPlan, PendingAuthorization, TokenDecision,
/// RefreshMachine); this driver fetches, stores and waits. Thread-safe: sign-ins are serialised.
public final class OAuthClient: Sendable {
    public struct Configuration: Sendable {
        public var serverURL: String
        public var clientName = "fastmcpauth"
        public var clientMetadataURL: String?
        /// Pre-registered clients by issuer (`*`: any issuer, public clients only).
        public var preRegistered: [String: ClientCredentials] = [:]
        /// client_credentials: no browser, no registration; the pre-registered confidential client
        /// of the server's issuer asks for its own tokens.
        public var grant = ClientGrant.authorizationCode
        /// 0: an ephemeral port.
        public var redirectPort = 0
        public var scopes: [String] = []
        public var noBrowser = false
        public var signInTimeout: Double = 300
        public var httpTimeout: Double = 10
        /// Refresh this long before expiry.
        public var refreshMargin: Double = 60

        public init(serverURL: String) { self.serverURL = serverURL }
    }

    static let tokens = "fastmcpauth-client-tokens"
    static let registrations = "fastmcpauth-client-registrations"

    public let configuration: Configuration
    /// The canonical resource (RFC 8707) of the server.
    public let resource: String
    private let http: HTTPClient
    private let store: Store
    private let clock: @Sendable () -> Double
    private let browser = Locked<(@Sendable (String) -> Void)?>(nil)
    /// Bumped by cancel(): a call cancels when it moved past the value the call started with (a
    /// flag cleared by each new call would let a call starting right after a cancel undo it).
    private let cancellations = Locked(0)
    /// The last 401/403 the server answered, until `token` acts on it.
    private let challenged = Locked<(challenge: BearerChallenge, accessToken: String?)?>(nil)
    private let signIns = Locked(())
    /// Step-up sign-ins since the last call that came without a 403 (a new request).
    private let stepUps = Locked(0)
    /// Why the swift-sdk authorizer's preparation failed, per task (swift-sdk drops that error and
    /// sends the request without a token): that task's next 401 reports it instead of signing in again.
    package let failedPreparations = Locked<[Int: AuthError]>([:])

    public init(
        configuration: Configuration,
        store: Store,
        http: HTTPClient = CurlHTTPClient(),
        clock: @escaping @Sendable () -> Double = { Double(time(nil)) }
    ) throws {
        self.configuration = configuration
        self.resource = try ClientDiscovery.canonicalResource(configuration.serverURL)
        for scope in configuration.scopes where !ScopeNames.isValid(scope) {
            throw AuthError(
                .invalidConfig,
                "scopes: \"\(Responses.printable(String(scope.prefix(40))))\" is not a scope name"
            )
        }
        for (issuer, credentials) in configuration.preRegistered {
            try credentials.check()
            if issuer == "*" && (credentials.clientSecret != nil || credentials.privateKey != nil) {
                throw AuthError(.invalidConfig, "a client secret or private key needs its issuer (client_issuer)")
            }
        }
        if configuration.grant == .clientCredentials,
            !configuration.preRegistered.contains(where: { $0.key != "*" && $0.value.authMethod != .none })
        {
            throw AuthError(
                .invalidConfig,
                "grant client_credentials: needs client_id, client_issuer and a client_secret or private_key"
            )
        }
        self.store = store
        self.http = http
        self.clock = clock
    }

    /// Where the sign-in URL goes instead of the default browser chain; nil restores the default.
    public func setBrowser(_ open: (@Sendable (String) -> Void)?) { browser.withLock { $0 = open } }

    /// A pending sign-in returns `cancelled`.
    public func cancel() { cancellations.withLock { $0 &+= 1 } }

    /// Hands the client a 401 or 403 the server answered for `accessToken` (nil: the cached token);
    /// the next `token` acts on it: a refresh after a 401, a step-up sign-in after insufficient_scope.
    public func challenge(status: Int, wwwAuthenticate: String?, accessToken: String? = nil) {
        let parsed = BearerChallenge(status: status, header: wwwAuthenticate)
        challenged.withLock { $0 = (parsed, accessToken) }
    }

    /// Forgets the cached tokens of this server (the registration is kept).
    public func logout() throws {
        try store.delete(Self.tokens, recordKey)
    }

    /// The cached access token while it is unexpired, without any network call or sign-in (nil
    /// otherwise): for transports that ask for a header synchronously before each request.
    public func cachedAccessToken() -> String? {
        guard let record = try? loadRecord(), record.isFresh(now: clock(), margin: 0) else { return nil }
        return record.accessToken
    }

    /// A valid access token: cached, refreshed, or after an interactive sign-in (with the
    /// client_credentials grant: a new token request instead, never a browser).
    public func token() throws -> String {
        try token(unlessCancelledSince: cancellationPoint)
    }

    /// Now, for `token(unlessCancelledSince:)`: a cancel() from this moment on ends that call, even
    /// one made before the call started (a caller that hands the call to another thread reads the
    /// point first, so a cancel in between is not lost).
    public var cancellationPoint: Int { cancellations.withLock { $0 } }

    /// `token()`, cancelled by any cancel() after `started` (a value of `cancellationPoint`).
    public func token(unlessCancelledSince started: Int) throws -> String {
        try throwIfCancelled(since: started)
        let pending = challenged.withLock { value -> (challenge: BearerChallenge, accessToken: String?)? in
            defer { value = nil }
            return value
        }
        var needed = configuration.scopes
        let isStepUp = pending?.challenge.isInsufficientScope ?? false
        let count = stepUps.withLock { value -> Int in
            value = isStepUp ? value + 1 : 0
            return value
        }
        // Two step-ups per request at most: a server that keeps asking gets an error, not a loop.
        guard count <= 2 else {
            stepUps.withLock { $0 = 0 }
            throw AuthError(.insufficientScope, "the server still refuses after two step-up sign-ins")
        }
        if let pending, pending.challenge.isInsufficientScope {
            let wanted = pending.challenge.scopes.filter { !needed.contains($0) }
            // No person approves a client_credentials request: a server may not widen the
            // configured scopes by asking (a compromised one would collect broad tokens).
            if configuration.grant == .clientCredentials, !configuration.scopes.isEmpty, !wanted.isEmpty {
                stepUps.withLock { $0 = 0 }
                let names = wanted.prefix(8).map { Responses.printable(String($0.prefix(60))) }.joined(separator: " ")
                throw AuthError(
                    .insufficientScope,
                    "the server asks for scopes beyond the configured ones (\(names)); add them to scopes"
                )
            }
            needed += wanted
        }
        let record = try loadRecord()
        // A 401 or an insufficient_scope 403 refuses the token it was sent with (without one named,
        // the cached one); any other 403 is about the request, not the token.
        let refused = pending.flatMap { challenge in
            challenge.challenge.status == 401 || isStepUp ? challenge.accessToken ?? record?.accessToken ?? "" : nil
        }
        // A step-up signs in again even when the cache claims the scopes (a server that granted
        // fewer than asked without saying so would otherwise get the same token back).
        switch isStepUp
            ? .signIn
            : TokenDecision.decide(
                record: record,
                requiredScopes: needed,
                refusedAccessToken: refused,
                now: clock(),
                margin: configuration.refreshMargin
            )
        {
        case .use(let record):
            return record.accessToken
        case .refresh(let record):
            let usable = refused != record.accessToken && record.isFresh(now: clock(), margin: 0)
            switch try refresh(record, usableWhileRefreshing: usable) {
            case .use(let fresh) where needed.allSatisfy(fresh.scopes.contains):
                return fresh.accessToken
            case .fail(let error) where configuration.grant == .authorizationCode:
                throw error
            case .use, .signIn, .fail:
                // A client_credentials client asks for a new token instead: it needs no user.
                break
            }
        case .signIn:
            break
        }
        // Step-up: the union of what the cache held and what the server asked for (a service with
        // configured scopes asks for those alone, whatever a server granted beyond them).
        let scopes =
            configuration.grant == .clientCredentials && !configuration.scopes.isEmpty
            ? needed
            : (record?.scopes ?? []).reduce(into: needed) { all, scope in
                if !all.contains(scope) { all.append(scope) }
            }
        return try signIns.withLock { _ in
            // Another thread may have signed in while this one waited for the lock.
            if let record = try loadRecord(), record.accessToken != refused, scopes.allSatisfy(record.scopes.contains),
                record.isFresh(now: clock(), margin: configuration.refreshMargin)
            {
                return record.accessToken
            }
            switch configuration.grant {
            case .authorizationCode:
                return try signIn(scopes: scopes, challenge: pending?.challenge, started: started)
            case .clientCredentials:
                return try requestClientCredentials(scopes: scopes, challenge: pending?.challenge)
            }
        }
    }

    // MARK: - Cache

    /// Tokens are cached per resource and per configured client: with no client configured (the
    /// client registers itself) by the resource alone; else by the grant, every configured issuer
    /// and client id (sorted: the same key in every process) and the resource, so a service and a
    /// person, or two applications with their own clients, sharing one cache never get, refresh or
    /// sign out each other's tokens.
    private var recordKey: String {
        var identity = resource
        if configuration.grant != .authorizationCode || !configuration.preRegistered.isEmpty {
            let clients = configuration.preRegistered.map { "\($0.key) \($0.value.clientID)" }.sorted()
            identity = ([configuration.grant.rawValue] + clients + [resource]).joined(separator: "\n")
        }
        return (try? OpenSSL.sha256Hex(identity)) ?? identity
    }

    private func loadRecord() throws -> ClientTokenRecord? {
        guard let stored = try store.get(Self.tokens, recordKey) else { return nil }
        guard let record = ClientTokenRecord(stored: stored), record.resource == resource else { return nil }
        // Tokens of another client than the one configured for their issuer are not ours to use.
        let configured = configuration.preRegistered[record.issuer] ?? configuration.preRegistered["*"]
        if let configured, configured.clientID != record.clientID {
            return nil
        }
        return record
    }

    // MARK: - Refresh

    private func refresh(_ record: ClientTokenRecord, usableWhileRefreshing: Bool) throws -> RefreshMachine.Outcome {
        let server = try discover(challenge: nil).server
        guard server.issuer == record.issuer else { return .signIn }
        let credentials = try loadRegistration(server: server)
        var machine = RefreshMachine(seen: record, usableWhileRefreshing: usableWhileRefreshing)
        // The lease outlives the refresh request and the write (RefreshMachine's premise).
        let leaseTTL = configuration.httpTimeout * 2 + store.options.timeout * 2 + 5
        let leaseName = "fastmcpauth-client-refresh-" + recordKey
        var actions = [machine.start()]
        while !actions.isEmpty {
            let action = actions.removeFirst()
            switch action {
            case .acquireLease:
                if let holder = try store.acquireLease(leaseName, ttl: leaseTTL) {
                    actions += machine.handle(.leaseAcquired(holder: holder, current: try loadRecord()))
                } else {
                    actions += machine.handle(
                        .leaseBusy(current: try loadRecord(), now: LoopbackListener.monotonicNow())
                    )
                }
            case .wait(let seconds):
                usleep(UInt32(max(0, min(seconds, 1)) * 1_000_000))
            case .refresh(let refreshToken):
                actions += machine.handle(
                    refreshEvent(refreshToken: refreshToken, record: record, server: server, credentials: credentials)
                )
            case .write(let expected, let new):
                let won = try store.compareAndSwap(Self.tokens, recordKey, expected: expected.stored, new: new.stored)
                actions += machine.handle(.written(won: won, current: won ? new : try loadRecord()))
            case .delete(let expected):
                _ = try store.compareAndDelete(Self.tokens, recordKey, expected: expected.stored)
                actions += machine.handle(.deleted)
            case .release(let holder):
                _ = try? store.releaseLease(leaseName, holder: holder)
            case .finish(let outcome):
                return outcome
            }
        }
        return .fail(AuthError(.internalError, "the refresh ended without an outcome"))
    }

    private func refreshEvent(
        refreshToken: String,
        record: ClientTokenRecord,
        server: AuthorizationServerMetadata,
        credentials: ClientCredentials?
    ) -> RefreshMachine.Event {
        var form = [("grant_type", "refresh_token"), ("refresh_token", refreshToken), ("resource", resource)]
        if !record.scopes.isEmpty { form.append(("scope", record.scopes.joined(separator: " "))) }
        do {
            let response = try postToken(
                form,
                server: server,
                credentials: credentials.flatMap { $0.clientID == record.clientID ? $0 : nil }
                    ?? ClientCredentials(clientID: record.clientID)
            )
            return .refreshed(
                ClientTokenRecord(
                    issuer: record.issuer,
                    resource: resource,
                    clientID: record.clientID,
                    response: response,
                    previousRefreshToken: refreshToken,
                    requestedScopes: record.scopes,
                    now: clock()
                )
            )
        } catch let error as TokenEndpointRefusal {
            return error.response.isInvalidGrant || error.response.isInvalidClient
                ? .refreshRejected : .refreshFailed(AuthError(.upstreamUnavailable, error.message))
        } catch let error as AuthError {
            return .refreshFailed(error)
        } catch {
            return .refreshFailed(AuthError(.internalError, "the refresh failed"))
        }
    }

    // MARK: - Sign-in

    private func throwIfCancelled(since started: Int) throws {
        if cancellations.withLock({ $0 }) != started { throw AuthError(.cancelled, "the sign-in was cancelled") }
    }

    private func signIn(scopes requested: [String], challenge: BearerChallenge?, started: Int) throws -> String {
        // A call cancelled while it waited for another sign-in registers nothing and opens nothing.
        try throwIfCancelled(since: started)
        let (metadata, server) = try discover(challenge: challenge)
        let scopes = requested.isEmpty ? metadata.scopesSupported : requested
        var attempt = 0
        while true {
            attempt += 1
            let registration = try register(server: server)
            try throwIfCancelled(since: started)
            do {
                return try authorize(server: server, registration: registration, scopes: scopes, started: started)
            } catch let refusal as TokenEndpointRefusal where refusal.response.isInvalidClient && attempt == 1 {
                // The server forgot the registration: register again once and sign in again.
                try store.delete(Self.registrations, try OpenSSL.sha256Hex(server.issuer))
                continue
            } catch let refusal as TokenEndpointRefusal {
                throw AuthError(.authorizationDenied, refusal.message)
            }
        }
    }

    private struct Registration {
        var credentials: ClientCredentials
        var redirectPort: Int
        /// The listener registered with, kept open for the sign-in that follows.
        var listener: LoopbackListener? = nil
    }

    private func authorize(
        server: AuthorizationServerMetadata,
        registration: Registration,
        scopes: [String],
        started: Int
    ) throws
        -> String
    {
        try throwIfCancelled(since: started)
        let listener = try registration.listener ?? LoopbackListener(port: registration.redirectPort)
        let flow = try PendingAuthorization.start(
            server: server,
            clientID: registration.credentials.clientID,
            redirectURI: listener.redirectURI,
            resource: resource,
            scopes: scopes
        )
        var process: BrowserProcess? = nil
        if let open = browser.withLock({ $0 }) {
            open(flow.authorizationURL)
        } else {
            var environment = [String: String]()
            for name in ["BROWSER", "PATH"] {
                if let value = getenv(name) { environment[name] = String(cString: value) }
            }
            process = try BrowserOpener.open(
                flow.authorizationURL,
                commands: BrowserOpener.defaultCommands(environment: environment),
                noBrowser: configuration.noBrowser,
                stderrIsTerminal: isatty(2) == 1
            ) { url in
                let text = Array("Open this URL in a browser to sign in:\n\(url)\n".utf8)
                _ = text.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            }
        }
        var code: String? = nil
        var failure: AuthError? = nil
        try listener.serve(
            until: LoopbackListener.monotonicNow() + configuration.signInTimeout,
            interrupt: {
                if cancellations.withLock({ $0 }) != started {
                    return AuthError(.cancelled, "the sign-in was cancelled")
                }
                if process?.failed == true {
                    return AuthError(.browserUnavailable, "the browser command exited with an error")
                }
                return nil
            },
            handle: { query in
                switch flow.callback(query: query) {
                case .code(let received):
                    code = received
                    return .finished(page: LoopbackListener.page("Signed in. You can close this window."))
                case .ignored:
                    return .keepWaiting(page: LoopbackListener.page("This is not the sign-in this client started."))
                case .failed(let error):
                    failure = error
                    return .finished(page: LoopbackListener.page("The sign-in failed. You can close this window."))
                }
            }
        )
        if let failure { throw failure }
        guard let code else { throw AuthError(.authorizationDenied, "the authorization response has no code") }
        let response = try postToken(
            flow.tokenRequest(code: code),
            server: server,
            credentials: registration.credentials
        )
        let record = ClientTokenRecord(
            issuer: server.issuer,
            resource: resource,
            clientID: registration.credentials.clientID,
            response: response,
            previousRefreshToken: nil,
            requestedScopes: scopes,
            now: clock()
        )
        try store.put(Self.tokens, recordKey, record.stored)
        return record.accessToken
    }

    // MARK: - Registration

    private func loadRegistration(server: AuthorizationServerMetadata) throws -> ClientCredentials? {
        let issuer = server.issuer
        if let configured = configuration.preRegistered[issuer] { return configured }
        guard let stored = try store.get(Self.registrations, try OpenSSL.sha256Hex(issuer)),
            let clientID = stored["client_id"]?.stringValue, stored["issuer"]?.stringValue == issuer
        else { return nil }
        return Self.storedCredentials(stored, clientID: clientID, server: server)
    }

    /// A kept dynamic registration's credentials with the method recorded at registration (records
    /// from before methods were recorded: the method for its secret that the server lists).
    private static func storedCredentials(
        _ stored: [String: JSONValue],
        clientID: String,
        server: AuthorizationServerMetadata
    ) -> ClientCredentials {
        (try? ClientCredentials.registered(
            clientID: clientID,
            clientSecret: stored["client_secret"]?.stringValue,
            method: stored["token_endpoint_auth_method"]?.stringValue,
            server: server
        )) ?? ClientCredentials(clientID: clientID)
    }

    private func register(server: AuthorizationServerMetadata) throws -> Registration {
        let key = try OpenSSL.sha256Hex(server.issuer)
        switch try RegistrationPlan.choose(
            preRegistered: configuration.preRegistered,
            metadataDocumentURL: configuration.clientMetadataURL,
            server: server
        ) {
        case .preRegistered(let credentials):
            // A method or key the server does not take is refused before the browser opens.
            _ = try ClientAuthentication.check(credentials, server: server)
            return Registration(credentials: credentials, redirectPort: configuration.redirectPort)
        case .metadataDocument(let url):
            return Registration(credentials: ClientCredentials(clientID: url), redirectPort: configuration.redirectPort)
        case .dynamic(let endpoint):
            if let stored = try store.get(Self.registrations, key), stored["issuer"]?.stringValue == server.issuer,
                let clientID = stored["client_id"]?.stringValue,
                (stored["client_secret_expires_at"]?.numberValue ?? 0) == 0
                    || (stored["client_secret_expires_at"]?.numberValue ?? 0) > clock()
            {
                let port = Int(exactly: stored["redirect_port"]?.numberValue ?? 0) ?? 0
                return Registration(
                    credentials: Self.storedCredentials(stored, clientID: clientID, server: server),
                    redirectPort: configuration.redirectPort != 0 ? configuration.redirectPort : port
                )
            }
            // Registered with the port the sign-in will listen on (servers that match loopback
            // redirect URIs exactly need it), and reused with it.
            let listener = try LoopbackListener(port: configuration.redirectPort)
            let port = listener.port
            let redirectURI = listener.redirectURI
            let body: JSONValue = [
                "client_name": .string(configuration.clientName), "redirect_uris": [.string(redirectURI)],
                "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
                "token_endpoint_auth_method": "none", "application_type": "native",
            ]
            var request = HTTPRequest(
                method: "POST",
                url: endpoint,
                headers: [("Content-Type", "application/json"), ("Accept", "application/json")],
                body: Array(body.serialized().utf8),
                timeout: configuration.httpTimeout,
                maxResponseBytes: 256 * 1024
            )
            request.connectPolicy = .any
            let response: HTTPResponse
            do { response = try http.send(request) } catch {
                throw AuthError(.registrationFailed, "the registration endpoint cannot be reached")
            }
            guard response.status == 201 || response.status == 200,
                let json = try? JSONValue.parse(response.body, maxDepth: 16),
                let clientID = json["client_id"]?.stringValue, !clientID.isEmpty, clientID.utf8.count <= 1024
            else {
                throw AuthError(
                    .registrationFailed,
                    "the authorization server refused the registration (HTTP \(response.status))"
                )
            }
            let credentials = try ClientCredentials.registered(
                clientID: clientID,
                clientSecret: json["client_secret"]?.stringValue,
                method: json["token_endpoint_auth_method"]?.stringValue,
                server: server
            )
            // The method must be one the server takes before the browser opens.
            do { _ = try ClientAuthentication.check(credentials, server: server) } catch let error as AuthError {
                throw AuthError(.registrationFailed, "the registration cannot be used: \(error.message)")
            }
            var record: [String: JSONValue] = [
                "issuer": .string(server.issuer), "client_id": .string(clientID), "redirect_port": .int(Int64(port)),
                "token_endpoint_auth_method": .string(credentials.authMethod.rawValue),
            ]
            record.set("client_secret", credentials.clientSecret.map { .string($0) })
            record.set("client_secret_expires_at", json["client_secret_expires_at"]?.numberValue.map { .double($0) })
            try store.put(Self.registrations, key, record)
            return Registration(credentials: credentials, redirectPort: port, listener: listener)
        }
    }

    // MARK: - Discovery

    private func discover(
        challenge: BearerChallenge?
    ) throws -> (
        metadata: ProtectedResourceMetadata, server: AuthorizationServerMetadata
    ) {
        var candidates = try ClientDiscovery.protectedResourceMetadataURLs(resource: resource)
        if let challenge, let url = ClientDiscovery.resourceMetadataURL(challenge, serverURL: resource) {
            candidates.insert(url, at: 0)
        }
        var metadata: ProtectedResourceMetadata? = nil
        var lastError = AuthError(.discoveryFailed, "the server publishes no protected-resource metadata")
        for url in candidates {
            guard let json = try fetchJSON(url) else { continue }
            do {
                metadata = try ProtectedResourceMetadata(json: json, requestedResource: resource)
                break
            } catch let error as AuthError {
                lastError = error
            }
        }
        guard let metadata, let issuer = metadata.authorizationServers.first else { throw lastError }
        for url in try ClientDiscovery.authorizationServerMetadataURLs(issuer: issuer) {
            guard let json = try fetchJSON(url) else { continue }
            return (metadata, try AuthorizationServerMetadata(json: json, expectedIssuer: issuer))
        }
        throw AuthError(.discoveryFailed, "the authorization server publishes no metadata")
    }

    /// A 200 JSON document, nil for a 4xx (try the next URL); unreachable is discovery_failed.
    private func fetchJSON(_ url: String) throws -> JSONValue? {
        let response: HTTPResponse
        do {
            response = try http.send(
                HTTPRequest(
                    url: url,
                    headers: [("Accept", "application/json")],
                    timeout: configuration.httpTimeout,
                    maxResponseBytes: 256 * 1024
                )
            )
        } catch {
            throw AuthError(.discoveryFailed, "\(Responses.printable(String(url.prefix(200)))) cannot be reached")
        }
        guard response.status == 200 else {
            if (400..<500).contains(response.status) { return nil }
            throw AuthError(
                .discoveryFailed,
                "\(Responses.printable(String(url.prefix(200)))) answered HTTP \(response.status)"
            )
        }
        return try? JSONValue.parse(response.body, maxDepth: 16)
    }

    // MARK: - Token endpoint

    private func postToken(
        _ form: [(String, String)],
        server: AuthorizationServerMetadata,
        credentials: ClientCredentials
    ) throws
        -> TokenResponse
    {
        let request = try ClientAuthentication.authenticate(
            form,
            credentials: credentials,
            server: server,
            now: clock()
        )
        let response: HTTPResponse
        do {
            response = try http.send(
                HTTPRequest(
                    method: "POST",
                    url: server.tokenEndpoint,
                    headers: request.headers,
                    body: Array(Form.encode(request.form).utf8),
                    timeout: configuration.httpTimeout,
                    maxResponseBytes: 256 * 1024
                )
            )
        } catch {
            throw AuthError(.upstreamUnavailable, "the token endpoint cannot be reached")
        }
        guard response.status == 200 else {
            throw TokenEndpointRefusal(response: TokenErrorResponse(status: response.status, body: response.body))
        }
        guard let json = try? JSONValue.parse(response.body, maxDepth: 16) else {
            throw AuthError(.upstreamUnavailable, "the token response is not JSON")
        }
        return try TokenResponse(json: json)
    }

    // MARK: - Client credentials

    /// A new token for the pre-registered confidential client (RFC 6749 §4.4): no browser, no
    /// listener, no registration; the scopes asked for, else the resource's scopes_supported.
    private func requestClientCredentials(scopes requested: [String], challenge: BearerChallenge?) throws -> String {
        let (metadata, server) = try discover(challenge: challenge)
        let grant = try ClientCredentialsGrant(
            preRegistered: configuration.preRegistered,
            server: server,
            scopes: requested.isEmpty ? metadata.scopesSupported : requested,
            resource: resource
        )
        let response: TokenResponse
        do {
            response = try postToken(grant.form, server: server, credentials: grant.credentials)
        } catch let refusal as TokenEndpointRefusal {
            throw ClientCredentialsGrant.error(for: refusal.response)
        }
        let record = ClientTokenRecord(
            issuer: server.issuer,
            resource: resource,
            clientID: grant.credentials.clientID,
            response: response,
            previousRefreshToken: nil,
            requestedScopes: grant.scopes,
            now: clock()
        )
        try store.put(Self.tokens, recordKey, record.stored)
        return record.accessToken
    }
}

/// A token endpoint's error answer, for the driver's decisions.
struct TokenEndpointRefusal: Error {
    var response: TokenErrorResponse
    var message: String {
        "the token endpoint answered HTTP \(response.status) \(Responses.printable(response.error ?? "without an error code"))"
    }
}
