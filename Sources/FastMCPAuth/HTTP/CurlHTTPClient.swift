import CCurl

#if canImport(Glibc)
import Glibc
#endif

/// HTTPClient over libcurl: one easy handle per request, no redirects, http and https only,
/// TLS verification on, no signals (safe in threaded programs).
public struct CurlHTTPClient: HTTPClient {
    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    public init() { _ = CurlHTTPClient.globalInit }

    private final class Transfer {
        var body: [UInt8] = []
        var headers: [(name: String, value: String)] = []
        var overflow = false
        let maxBytes: Int
        init(maxBytes: Int) { self.maxBytes = maxBytes }
    }

    public func send(_ request: HTTPRequest) throws -> HTTPResponse {
        guard let scheme = urlScheme(request.url), scheme == "http" || scheme == "https" else {
            throw HTTPClientError.invalidURL
        }
        guard let handle = curl_easy_init() else {
            throw HTTPClientError.connectionFailed("cannot create a curl handle")
        }
        defer { curl_easy_cleanup(handle) }
        let transfer = Transfer(maxBytes: request.maxResponseBytes)
        let context = Unmanaged.passRetained(transfer)
        defer { context.release() }

        _ = fma_curl_setopt_string(handle, CURLOPT_URL, request.url)
        _ = fma_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        _ = fma_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0)
        _ = fma_curl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https")
        let milliseconds = request.timeout.isFinite ? Int(min(max(request.timeout, 0.001), 3600) * 1000) : 10_000
        _ = fma_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, milliseconds)
        _ = fma_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, milliseconds)
        _ = fma_curl_setopt_long(handle, CURLOPT_MAXFILESIZE, request.maxResponseBytes)
        _ = fma_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, context.toOpaque())
        _ = fma_curl_setopt_write_fn(handle, CURLOPT_WRITEFUNCTION) { data, size, count, user in
            guard let user, let data else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(user).takeUnretainedValue()
            let length = size * count
            if transfer.body.count + length > transfer.maxBytes {
                transfer.overflow = true
                return 0
            }
            data.withMemoryRebound(to: UInt8.self, capacity: length) {
                transfer.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: length))
            }
            return length
        }
        _ = fma_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, context.toOpaque())
        _ = fma_curl_setopt_write_fn(handle, CURLOPT_HEADERFUNCTION) { data, size, count, user in
            guard let user, let data else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(user).takeUnretainedValue()
            let length = size * count
            let line = data.withMemoryRebound(to: UInt8.self, capacity: length) {
                String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
            }
            if line.hasPrefix("HTTP/") { transfer.headers.removeAll() }  // a new response (e.g. after 100-continue)
            if let colon = line.firstIndex(of: ":") {
                let name = line[..<colon].trimmingCharacters()
                let value = line[line.index(after: colon)...].trimmingCharacters()
                transfer.headers.append((name: name, value: value))
            }
            return length
        }

        // A client-supplied URL: never through a proxy from the environment, and every address
        // curl is about to connect to is checked (at connect time: a name that resolves anew,
        // or to several addresses, cannot slip past). Name resolution is bounded by the
        // connect timeout (curl's resolver, not a blocking getaddrinfo of ours).
        // [policy, refused]: the opener reads the policy and records a refusal.
        var policy: [Int32] = [request.connectPolicy == .publicOrLoopback ? 2 : 1, 0]
        if request.connectPolicy != .any {
            _ = fma_curl_setopt_string(handle, CURLOPT_PROXY, "")
            _ = fma_curl_setopt_string(handle, CURLOPT_NOPROXY, "*")
            _ = fma_curl_setopt_opensocket_fn(handle, Self.openCheckedSocket)
        }

        var headerList: UnsafeMutablePointer<curl_slist>? = nil
        defer { curl_slist_free_all(headerList) }
        for header in request.headers { headerList = curl_slist_append(headerList, "\(header.name): \(header.value)") }
        if headerList != nil {
            _ = fma_curl_setopt_pointer(handle, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(headerList))
        }

        let body = request.body
        if request.method == "POST" {
            _ = fma_curl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, body.count)
            _ = fma_curl_setopt_long(handle, CURLOPT_POST, 1)
        } else if request.method != "GET" {
            _ = fma_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method)
        }
        let code: CURLcode = policy.withUnsafeMutableBufferPointer { policyPointer in
            if request.connectPolicy != .any, let base = policyPointer.baseAddress {
                _ = fma_curl_setopt_pointer(handle, CURLOPT_OPENSOCKETDATA, UnsafeMutableRawPointer(base))
            }
            return body.withUnsafeBytes { bytes in
                if request.method == "POST" {
                    _ = fma_curl_setopt_pointer(
                        handle,
                        CURLOPT_POSTFIELDS,
                        UnsafeMutableRawPointer(mutating: bytes.baseAddress ?? UnsafeRawPointer(OpenSSL.emptyCString))
                    )
                }
                return curl_easy_perform(handle)
            }
        }
        if transfer.overflow || code == CURLE_FILESIZE_EXCEEDED { throw HTTPClientError.tooLarge }
        if code != CURLE_OK, policy[1] != 0 { throw HTTPClientError.addressRefused }
        switch code {
        case CURLE_OK: break
        case CURLE_OPERATION_TIMEDOUT: throw HTTPClientError.timeout
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL: throw HTTPClientError.invalidURL
        default: throw HTTPClientError.connectionFailed(String(cString: curl_easy_strerror(code)))
        }
        var status = 0
        _ = fma_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, headers: transfer.headers, body: transfer.body)
    }

    /// CURLOPT_OPENSOCKETFUNCTION: opens the socket only for an address the request's policy
    /// allows (1: public unicast; 2: public or loopback), else refuses the connection.
    static let openCheckedSocket: fma_curl_opensocket_fn = { clientp, _, address in
        guard let clientp, let address, let raw = fma_curl_sockaddr_address(address) else { return CURL_SOCKET_BAD }
        let policy = clientp.load(as: Int32.self)
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch address.pointee.family {
        case AF_INET:
            var ip = raw.assumingMemoryBound(to: sockaddr_in.self).pointee.sin_addr
            guard inet_ntop(AF_INET, &ip, &text, socklen_t(text.count)) != nil else { return CURL_SOCKET_BAD }
        case AF_INET6:
            guard address.pointee.addrlen >= UInt32(MemoryLayout<sockaddr_in6>.size) else { return CURL_SOCKET_BAD }
            var ip = raw.assumingMemoryBound(to: sockaddr_in6.self).pointee.sin6_addr
            guard inet_ntop(AF_INET6, &ip, &text, socklen_t(text.count)) != nil else { return CURL_SOCKET_BAD }
        default:
            return CURL_SOCKET_BAD
        }
        let numeric = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let allowed = AddressPolicy.isPublic(numeric) || (policy == 2 && AddressPolicy.isLoopback(numeric))
        guard allowed else {
            (clientp + MemoryLayout<Int32>.stride).storeBytes(of: Int32(1), as: Int32.self)
            return CURL_SOCKET_BAD
        }
        return socket(address.pointee.family, address.pointee.socktype, address.pointee.protocol)
    }
}

extension StringProtocol {
    package func trimmingCharacters() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        guard let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        var out = ""
        out.unicodeScalars.append(contentsOf: scalars[first...last])
        return out
    }
}
