import Synchronization

/// Bounded cache of verified tokens, keyed by the token's SHA-256 (the token itself is never a
/// key), each entry kept at most `maxLifetime` seconds and never past the token's `exp`.
final class VerifiedTokenCache: Sendable {
    private struct Entry {
        let token: AccessToken
        let validUntil: Double
    }

    private let capacity: Int
    private let maxLifetime: Double
    private let entries = Locked<[[UInt8]: Entry]>([:])

    init(capacity: Int, maxLifetime: Double) {
        self.capacity = capacity
        self.maxLifetime = maxLifetime
    }

    func lookup(_ digest: [UInt8], now: Double) -> AccessToken? {
        entries.withLock { table in
            guard let entry = table[digest] else { return nil }
            if now >= entry.validUntil {
                table[digest] = nil
                return nil
            }
            return entry.token
        }
    }

    func store(_ digest: [UInt8], _ token: AccessToken, now: Double, expiresBy deadline: Double?) {
        let validUntil = min(now + maxLifetime, deadline ?? .infinity)
        guard validUntil > now else { return }
        entries.withLock { table in
            if table.count >= capacity, table[digest] == nil {
                table = table.filter { $0.value.validUntil > now }
                while table.count >= capacity { table.remove(at: table.startIndex) }
            }
            table[digest] = Entry(token: token, validUntil: validUntil)
        }
    }
}
