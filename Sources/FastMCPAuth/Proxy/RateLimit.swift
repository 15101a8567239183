/// A fixed-window rate limit as a state machine over the store's expiring counter: the state is
/// the count of attempts in the current window (one atomic increment per attempt, shared by
/// every process on the store), the event an attempt, the action allow or refuse. Because the
/// increment is the only store operation, concurrent attempts can neither slip past the limit
/// nor refuse each other below it.
struct FixedWindowRateLimit: Sendable, Equatable {
    /// Names the limit in its counter keys ("register", "authorize", …).
    let name: String
    let limit: Int
    /// Seconds per window.
    let window: Double

    enum Decision: Equatable {
        case allow
        /// Over the limit; `retryAfter` seconds until the window ends (at least 1).
        case refuse(retryAfter: Int)
    }

    /// The window an instant falls in, as its index (finite for any finite clock).
    func windowIndex(_ now: Double) -> Int64 {
        let index = (now / window).rounded(.down)
        guard index.isFinite, abs(index) < 9e15 else { return 0 }
        return Int64(index)
    }

    /// The counter key for one subject (an address prefix) in the window of `now`.
    func counterKey(subject: String, now: Double) throws -> String {
        name + ":" + (try OpenSSL.sha256Hex(subject)) + ":" + String(windowIndex(now))
    }

    /// The count after this attempt's increment → allow, or refuse until the window ends.
    func decide(count: Int64, now: Double) -> Decision {
        guard count > Int64(limit) else { return .allow }
        let end = (Double(windowIndex(now)) + 1) * window
        let left = (end - now).rounded(.up)
        return .refuse(retryAfter: left.isFinite && left >= 1 && left < 1e9 ? Int(left) : 1)
    }

    /// What one address counts as: an IPv4 address alone (/32), an IPv6 address by its /64 (one
    /// host usually holds a whole /64), an IPv4-mapped IPv6 address as its IPv4 address.
    static func subject(forAddress address: String?) -> String {
        guard var text = address?.trimmingCharacters(), !text.isEmpty else { return "unknown" }
        if text.hasPrefix("["), text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        if let zone = text.firstIndex(of: "%") { text = String(text[..<zone]) }
        if let v4 = AddressPolicy.ipv4Bytes(text) { return "ipv4:" + v4.map(String.init).joined(separator: ".") }
        if let v6 = AddressPolicy.ipv6Bytes(text) {
            if v6[0..<10].allSatisfy({ $0 == 0 }), v6[10] == 0xFF, v6[11] == 0xFF {
                return "ipv4:" + v6[12...].map(String.init).joined(separator: ".")
            }
            return "ipv6:"
                + v6[0..<8].map { byte in
                    let hex = String(byte, radix: 16)
                    return hex.count == 1 ? "0" + hex : hex
                }.joined() + "::/64"
        }
        return "other:" + text.prefix(64)
    }
}

/// An address range (CIDR) of `trusted_proxies`: "10.0.0.0/8", "2001:db8::/32", or one address.
struct AddressRange: Sendable, Equatable {
    let bytes: [UInt8]
    let prefix: Int

    init?(_ text: String) {
        let parts = text.trimmingCharacters().split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = parts.first, parts.count <= 2 else { return nil }
        guard let bytes = AddressPolicy.ipv4Bytes(String(address)) ?? AddressPolicy.ipv6Bytes(String(address)) else {
            return nil
        }
        let maximum = bytes.count * 8
        var prefix = maximum
        if parts.count == 2 {
            guard parts[1].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let value = Int(parts[1]),
                (0...maximum).contains(value)
            else { return nil }
            prefix = value
        }
        self.bytes = bytes
        self.prefix = prefix
    }

    func contains(_ address: String) -> Bool {
        guard let other = AddressPolicy.ipv4Bytes(address) ?? AddressPolicy.ipv6Bytes(address),
            other.count == bytes.count
        else { return false }
        var left = prefix
        for (mine, theirs) in zip(bytes, other) {
            guard left > 0 else { return true }
            let mask: UInt8 = left >= 8 ? 0xFF : ~(0xFF >> UInt8(left))
            if mine & mask != theirs & mask { return false }
            left -= 8
        }
        return true
    }
}

/// Which address a request counts as for rate limits: the TCP peer, unless the peer is a
/// trusted proxy; then the nearest address in X-Forwarded-For that is not one (a client can
/// prepend anything to the header, so it is read from the right).
enum ClientAddress {
    static func effective(peer: String?, forwardedFor: String?, trusted: [AddressRange]) -> String? {
        guard let peer, !trusted.isEmpty, trusted.contains(where: { $0.contains(peer) }), let forwardedFor else {
            return peer
        }
        let hops = forwardedFor.split(separator: ",").map { $0.trimmingCharacters() }.filter { !$0.isEmpty }
        for hop in hops.reversed() {
            let address = hop.hasPrefix("[") ? String(hop.dropFirst().prefix { $0 != "]" }) : hop
            guard AddressPolicy.ipv4Bytes(address) != nil || AddressPolicy.ipv6Bytes(address) != nil else {
                return peer
            }
            if !trusted.contains(where: { $0.contains(address) }) { return address }
        }
        return hops.first ?? peer
    }
}
