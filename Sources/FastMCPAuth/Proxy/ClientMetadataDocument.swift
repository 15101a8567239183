/// OAuth Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, MCP
/// 2025-11-25): a client_id that is an https URL names a JSON document describing the client.
/// Fetched defensively: public addresses only (checked, then pinned), no redirects, 5 KiB, 5 s.
struct ClientMetadataDocuments {
    static let maxBytes = 5 * 1024
    static let timeout: Double = 5
    static let minLifetime: Double = 60
    static let maxLifetime: Double = 86400

    let http: HTTPClient
    /// Tests only: accept http and loopback addresses (for a document served by the test).
    let allowLoopback: Bool

    /// Whether the text is a client_id URL: https, a host, a path, no fragment, no credentials,
    /// no dot segments.
    func isClientIDURL(_ text: String) -> Bool {
        guard text.utf8.count <= 2048, let scheme = urlScheme(text), let host = urlHost(text) else { return false }
        guard
            scheme == "https"
                || (allowLoopback && scheme == "http"
                    && AddressPolicy.isLoopback(host == "localhost" ? "127.0.0.1" : host))
        else {
            return false
        }
        guard !text.contains("#"), let parts = RedirectURIs.parts(text), parts.host != nil else { return false }
        let path = parts.pathAndQuery.prefix { $0 != "?" }
        guard path.count > 1 else { return false }
        return !path.split(separator: "/", omittingEmptySubsequences: false).contains { $0 == "." || $0 == ".." }
    }

    enum Failure: Error {
        /// The document is not acceptable (or its host is not allowed): the client is unknown.
        case refused(String)
        /// The host could not be reached or failed (5xx): try again later.
        case unreachable(String)
    }

    /// The validated document and how long it may be reused (from Cache-Control).
    func fetch(_ url: String) throws -> (document: [String: JSONValue], lifetime: Double) {
        guard let host = urlHost(url) else { throw Failure.refused("no host") }
        var request = HTTPRequest(
            url: url,
            headers: [("Accept", "application/json")],
            timeout: Self.timeout,
            maxResponseBytes: Self.maxBytes
        )
        let literal = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        let addresses =
            AddressPolicy.ipv4Bytes(literal) != nil || AddressPolicy.ipv6Bytes(literal) != nil
            ? [literal] : AddressPolicy.resolve(host)
        guard !addresses.isEmpty else { throw Failure.refused("the host does not resolve") }
        let allowed = addresses.filter { AddressPolicy.isPublic($0) || (allowLoopback && AddressPolicy.isLoopback($0)) }
        // Every address must be acceptable: one private answer means the name is not safe to use.
        guard allowed.count == addresses.count, let address = allowed.first else {
            throw Failure.refused("the host resolves to a non-public address")
        }
        request.pinnedAddress = address
        let response: HTTPResponse
        do {
            response = try http.send(request)
        } catch HTTPClientError.tooLarge {
            throw Failure.refused("the document is larger than \(Self.maxBytes) bytes")
        } catch HTTPClientError.invalidURL {
            throw Failure.refused("the document URL is not usable")
        } catch {
            throw Failure.unreachable("the document could not be fetched")
        }
        if response.status >= 500 || response.status == 429 {
            throw Failure.unreachable("the document URL answered HTTP \(response.status)")
        }
        guard response.status == 200 else { throw Failure.refused("the document URL answered HTTP \(response.status)") }
        guard let document = (try? JSONValue.parse(response.body))?.objectValue else {
            throw Failure.refused("the document is not a JSON object")
        }
        guard document["client_id"]?.stringValue == url else {
            throw Failure.refused("the document's client_id is not its URL")
        }
        if document["client_secret"] != nil || document["client_secret_expires_at"] != nil {
            throw Failure.refused("a metadata document must not carry a client secret")
        }
        if let method = document["token_endpoint_auth_method"]?.stringValue, method != "none" {
            throw Failure.refused("only public clients (token_endpoint_auth_method none) are supported")
        }
        return (document, Self.lifetime(response.header("Cache-Control")))
    }

    /// Cache-Control max-age, clamped; no-store or no-cache: not reused.
    static func lifetime(_ header: String?) -> Double {
        guard let header = header?.lowercased() else { return minLifetime }
        if header.contains("no-store") || header.contains("no-cache") { return 0 }
        for part in header.split(separator: ",") {
            let directive = part.trimmingCharacters()
            if directive.hasPrefix("max-age="), let seconds = Double(directive.dropFirst(8)) {
                return min(max(seconds, minLifetime), maxLifetime)
            }
        }
        return minLifetime
    }
}
