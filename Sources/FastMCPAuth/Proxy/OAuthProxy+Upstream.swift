/// How an upstream token request failed.
enum UpstreamFailure: Error, CustomStringConvertible {
    /// Not reached, timed out, a 5xx or 429, or no JSON: worth retrying later.
    case unavailable(String)
    /// The upstream answered with an OAuth error (`invalid_grant`, …).
    case refused(code: String)

    var description: String {
        switch self {
        case .unavailable(let why): return "unavailable (\(why))"
        case .refused(let code): return "refused (\(code))"
        }
    }
}

/// The proxy as the upstream provider's client.
extension OAuthProxy {
    /// The upstream authorization URL for an approved transaction: our own PKCE and `state` =
    /// the transaction id.
    func upstreamAuthorizeURL(_ transaction: Transaction) throws -> String {
        var pairs: [(String, String)] = [
            ("response_type", "code"), ("client_id", config.upstreamClientID),
            ("redirect_uri", config.url(config.redirectPath)), ("state", transaction.id),
        ]
        if !transaction.scopes.isEmpty { pairs.append(("scope", transaction.scopes.joined(separator: " "))) }
        let challenge = Base64URL.encode(try OpenSSL.sha256(Array(transaction.proxyCodeVerifier.utf8)))
        pairs.append(("code_challenge", challenge))
        pairs.append(("code_challenge_method", "S256"))
        for (name, value) in config.extraAuthorizeParams {
            pairs.removeAll { $0.0 == name }
            pairs.append((name, value))
        }
        return Form.url(config.upstreamAuthorizationEndpoint, adding: pairs)
    }

    /// A form for the upstream's token or revocation endpoint with our client authentication
    /// (HTTP Basic, form fields, or the client id alone), and its headers.
    func authenticatedUpstreamForm(
        _ pairs: [(String, String)]
    ) -> (form: [(String, String)], headers: [(name: String, value: String)]) {
        var form = pairs
        var headers: [(name: String, value: String)] = [("Content-Type", "application/x-www-form-urlencoded")]
        switch config.upstreamClientAuth {
        case .clientSecretBasic:
            let credentials =
                Form.encode(config.upstreamClientID) + ":" + Form.encode(config.upstreamClientSecret ?? "")
            headers.append(("Authorization", "Basic " + Base64.encode(Array(credentials.utf8), alphabet: .standard)))
        case .clientSecretPost:
            form += [("client_id", config.upstreamClientID), ("client_secret", config.upstreamClientSecret ?? "")]
        case .none:
            form.append(("client_id", config.upstreamClientID))
        }
        return (form, headers)
    }

    /// POSTs to the upstream token endpoint with our client authentication; the token response.
    /// Throws UpstreamFailure; the upstream's own text is never passed on.
    func upstreamTokenRequest(_ pairs: [(String, String)]) throws -> [String: JSONValue] {
        var (form, headers) = authenticatedUpstreamForm(pairs)
        headers.append(("Accept", "application/json"))
        form += config.extraTokenParams
        let response: HTTPResponse
        do {
            response = try http.send(
                HTTPRequest(
                    method: "POST",
                    url: config.upstreamTokenEndpoint,
                    headers: headers,
                    body: Array(Form.encode(form).utf8),
                    timeout: config.timeout,
                    maxResponseBytes: 256 * 1024
                )
            )
        } catch {
            throw UpstreamFailure.unavailable("the token endpoint could not be reached")
        }
        if response.status >= 500 || response.status == 429 {
            throw UpstreamFailure.unavailable("the token endpoint answered HTTP \(response.status)")
        }
        guard let body = (try? JSONValue.parse(response.body))?.objectValue else {
            throw UpstreamFailure.unavailable("the token endpoint answered HTTP \(response.status) without JSON")
        }
        guard response.status == 200, let access = body["access_token"]?.stringValue, !access.isEmpty else {
            let code = body["error"]?.stringValue.map { Responses.printable(String($0.prefix(64))) } ?? "none"
            throw UpstreamFailure.refused(code: code)
        }
        return body
    }
}
