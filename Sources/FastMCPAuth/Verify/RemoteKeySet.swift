import Synchronization

/// A JWKS fetched from `jwks_uri` and kept fresh: cached per Cache-Control max-age (clamped),
/// refetched on an unknown `kid` at most once per cooldown, and the last good set kept serving
/// when a refresh fails. Fetches are single-flight: concurrent callers wait for one request.
public final class RemoteKeySet: Sendable {
    public struct Settings: Sendable {
        public var timeout: Double = 5
        public var maxBytes = 256 * 1024
        /// Minimum seconds between two fetches caused by unknown kids or failures.
        public var refetchCooldown: Double = 30
        /// Lifetime of a set served without Cache-Control max-age.
        public var defaultLifetime: Double = 3600
        public var minLifetime: Double = 60
        public var maxLifetime: Double = 86400
        public init() {}
    }

    private struct State {
        var keySet: KeySet? = nil
        var expiresAt: Double = 0
        var lastAttempt: Double = -Double.infinity
        var generation = 0
    }

    public let uri: String
    private let settings: Settings
    private let http: HTTPClient
    private let clock: @Sendable () -> Double
    private let state = Locked(State())
    private let fetchLock = Locked(())

    public init(uri: String, settings: Settings, http: HTTPClient, clock: @escaping @Sendable () -> Double) {
        self.uri = uri
        self.settings = settings
        self.http = http
        self.clock = clock
    }

    /// The current key set for a token carrying `kid`, refreshed as the rules above allow.
    func keySet(for kid: String?) throws -> KeySet {
        let now = clock()
        let snapshot = state.withLock { $0 }
        if let set = snapshot.keySet, now < snapshot.expiresAt {
            guard let kid, !set.contains(kid: kid), now - snapshot.lastAttempt >= settings.refetchCooldown else {
                return set
            }
            return (try? refresh(after: snapshot.generation)) ?? set
        }
        if snapshot.keySet == nil, now - snapshot.lastAttempt < settings.refetchCooldown {
            throw AuthError(.jwksUnavailable, "the JWKS could not be fetched recently; retrying after the cooldown")
        }
        do {
            return try refresh(after: snapshot.generation)
        } catch let error as AuthError {
            if let set = state.withLock({ $0.keySet }) { return set }  // stale but last good
            throw error
        }
    }

    /// Fetches unless another caller already did since `generation` was read.
    private func refresh(after generation: Int) throws -> KeySet {
        try fetchLock.withLock { _ in
            let current = state.withLock { $0 }
            if current.generation != generation, let set = current.keySet { return set }
            let now = clock()
            do {
                let (set, lifetime) = try fetch()
                state.withLock { s in
                    s.keySet = set
                    s.expiresAt = now + lifetime
                    s.lastAttempt = now
                    s.generation += 1
                }
                return set
            } catch {
                state.withLock { s in
                    s.lastAttempt = now
                    s.generation += 1
                    // Keep serving the last good set; try again after the cooldown.
                    if s.keySet != nil { s.expiresAt = now + settings.refetchCooldown }
                }
                throw error
            }
        }
    }

    private func fetch() throws -> (KeySet, Double) {
        let response: HTTPResponse
        do {
            response = try http.send(
                HTTPRequest(
                    url: uri,
                    headers: [("Accept", "application/json")],
                    timeout: settings.timeout,
                    maxResponseBytes: settings.maxBytes
                )
            )
        } catch HTTPClientError.timeout {
            throw AuthError(.jwksUnavailable, "fetching the JWKS timed out")
        } catch HTTPClientError.tooLarge {
            throw AuthError(.jwksUnavailable, "the JWKS response exceeds \(settings.maxBytes) bytes")
        } catch {
            throw AuthError(.jwksUnavailable, "the JWKS could not be fetched")
        }
        guard response.status == 200 else {
            throw AuthError(.jwksUnavailable, "the JWKS endpoint answered HTTP \(response.status)")
        }
        let set: KeySet
        do {
            set = try KeySet(jwks: try JSONValue.parse(response.body))
        } catch {
            throw AuthError(.jwksUnavailable, "the JWKS response is not a usable key set")
        }
        let maxAge =
            response.header("cache-control").flatMap(RemoteKeySet.maxAge(cacheControl:)) ?? settings.defaultLifetime
        return (set, min(max(maxAge, settings.minLifetime), settings.maxLifetime))
    }

    /// Seconds from `max-age`, or 0 for `no-store`/`no-cache`; nil when neither is present.
    static func maxAge(cacheControl: String) -> Double? {
        for directive in cacheControl.split(separator: ",") {
            let part = directive.trimmingCharacters().lowercased()
            if part == "no-store" || part == "no-cache" { return 0 }
            if part.hasPrefix("max-age="),
                let seconds = Int(String(part.dropFirst("max-age=".count)).trimmingCharacters(in: "\""))
            {
                return Double(max(0, seconds))
            }
        }
        return nil
    }
}

extension String {
    func trimmingCharacters(in quote: Character) -> String {
        var text = Substring(self)
        while text.first == quote { text = text.dropFirst() }
        while text.last == quote { text = text.dropLast() }
        return String(text)
    }
}
