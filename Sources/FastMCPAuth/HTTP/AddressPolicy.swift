#if canImport(Glibc)
import Glibc
#endif

/// Where outbound fetches of client-supplied URLs may go: public unicast addresses only (no
/// private, loopback, link-local, shared, documentation, multicast or reserved ranges, and no
/// IPv4 hidden in mapped, NAT64 or 6to4 IPv6 forms). Used against SSRF, on the address a
/// connection is about to be made to (CurlHTTPClient's socket callback).
enum AddressPolicy {
    static func ipv4Bytes(_ text: String) -> [UInt8]? {
        var address = in_addr()
        guard inet_pton(AF_INET, text, &address) == 1 else { return nil }
        return withUnsafeBytes(of: &address) { Array($0) }
    }

    static func ipv6Bytes(_ text: String) -> [UInt8]? {
        var address = in6_addr()
        guard inet_pton(AF_INET6, text, &address) == 1 else { return nil }
        return withUnsafeBytes(of: &address) { Array($0) }
    }

    static func isLoopback(_ text: String) -> Bool {
        if let v4 = ipv4Bytes(text) { return v4[0] == 127 }
        if let v6 = ipv6Bytes(text) {
            return v6 == [UInt8](repeating: 0, count: 15) + [1] || (isMapped(v6) && v6[12] == 127)
        }
        return false
    }

    static func isPublic(_ text: String) -> Bool {
        if let v4 = ipv4Bytes(text) { return isPublicIPv4(v4) }
        guard let v6 = ipv6Bytes(text) else { return false }
        if isMapped(v6) || v6.prefix(12).allSatisfy({ $0 == 0 }) {
            return isPublicIPv4(Array(v6[12...])) && !isMapped(v6)
        }
        if v6[0] == 0x00, v6[1] == 0x64, v6[2] == 0xff, v6[3] == 0x9b { return false }  // 64:ff9b::/96 NAT64
        if v6[0] == 0x20, v6[1] == 0x02 { return isPublicIPv4(Array(v6[2...5])) }  // 2002::/16 6to4
        if v6[0] & 0xfe == 0xfc { return false }  // fc00::/7 unique local
        if v6[0] == 0xfe, v6[1] & 0xc0 == 0x80 { return false }  // fe80::/10 link-local
        if v6[0] == 0xfe, v6[1] & 0xc0 == 0xc0 { return false }  // fec0::/10 site-local
        if v6[0] == 0xff { return false }  // multicast
        if v6[0] == 0x20, v6[1] == 0x01, v6[2] == 0x0d, v6[3] == 0xb8 { return false }  // 2001:db8::/32 documentation
        if v6[0] == 0x20, v6[1] == 0x01, v6[2] == 0x00, v6[3] == 0x00 { return false }  // 2001::/32 Teredo
        return v6[0] & 0xe0 == 0x20  // 2000::/3 global unicast
    }

    private static func isMapped(_ v6: [UInt8]) -> Bool {
        v6.prefix(10).allSatisfy { $0 == 0 } && v6[10] == 0xff && v6[11] == 0xff
    }

    private static func isPublicIPv4(_ b: [UInt8]) -> Bool {
        switch (b[0], b[1], b[2]) {
        case (0, _, _), (10, _, _), (127, _, _): return false
        case (100, 64...127, _): return false  // shared address space (CGNAT)
        case (169, 254, _): return false  // link-local (cloud metadata lives here)
        case (172, 16...31, _): return false
        case (192, 0, 0), (192, 0, 2), (192, 88, 99): return false
        case (192, 168, _): return false
        case (198, 18...19, _): return false  // benchmarking
        case (198, 51, 100), (203, 0, 113): return false  // documentation
        default: return b[0] < 224  // multicast, reserved, broadcast
        }
    }
}
