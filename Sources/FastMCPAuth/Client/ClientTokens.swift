/// The client's cached tokens for one (issuer, resource), as stored (encrypted) in the token store.
/// Its descriptions omit the tokens.
public struct ClientTokenRecord: Equatable, Sendable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    public var issuer: String
    public var resource: String
    public var clientID: String
    public var accessToken: String
    public var refreshToken: String?
    /// Epoch seconds; nil when the server gave no lifetime.
    public var expiresAt: Double?
    public var scopes: [String]

    public init(
        issuer: String,
        resource: String,
        clientID: String,
        accessToken: String,
        refreshToken: String?,
        expiresAt: Double?,
        scopes: [String]
    ) {
        self.issuer = issuer
        self.resource = resource
        self.clientID = clientID
        self.accessToken = accessToken
        self.refreshToken = refreshToken
        self.expiresAt = expiresAt
        self.scopes = scopes
    }

    /// The record after a token response: a server that sends no new refresh token keeps the old
    /// one valid (RFC 6749 §6), one that lists no scopes granted what was asked.
    public init(
        issuer: String,
        resource: String,
        clientID: String,
        response: TokenResponse,
        previousRefreshToken: String?,
        requestedScopes: [String],
        now: Double
    ) {
        self.init(
            issuer: issuer,
            resource: resource,
            clientID: clientID,
            accessToken: response.accessToken,
            refreshToken: response.refreshToken ?? previousRefreshToken,
            expiresAt: response.expiresIn.map { now + Double($0) },
            scopes: response.scopes ?? requestedScopes
        )
    }

    /// nil when a required field is missing or mistyped: the caller treats the entry as absent.
    public init?(stored object: [String: JSONValue]) {
        let fields = Fields(object: object)
        guard let issuer = fields.string("issuer"), let resource = fields.string("resource"),
            let clientID = fields.string("client_id"), let access = fields.string("access_token"),
            let scopes = fields.strings("scopes")
        else { return nil }
        if object["expires_at"] != nil && fields.number("expires_at") == nil { return nil }
        self.init(
            issuer: issuer,
            resource: resource,
            clientID: clientID,
            accessToken: access,
            refreshToken: fields.string("refresh_token"),
            expiresAt: fields.number("expires_at"),
            scopes: scopes
        )
    }

    public var stored: [String: JSONValue] {
        var object: [String: JSONValue] = [
            "issuer": .string(issuer), "resource": .string(resource), "client_id": .string(clientID),
            "access_token": .string(accessToken), "scopes": .array(scopes.map { .string($0) }),
        ]
        object.set("refresh_token", refreshToken.map { .string($0) })
        object.set("expires_at", expiresAt.map { .double($0) })
        return object
    }

    public var description: String {
        "ClientTokenRecord(issuer: \(issuer), resource: \(resource), clientID: \(clientID), scopes: \(scopes), "
            + "expiresAt: \(expiresAt.map { String($0) } ?? "none"), "
            + "refreshToken: \(refreshToken == nil ? "none" : "<redacted>"))"
    }
    public var debugDescription: String { description }
    public var customMirror: Mirror {
        Mirror(self, children: ["issuer": issuer, "resource": resource, "clientID": clientID, "scopes": scopes])
    }

    /// Usable for at least `margin` more seconds (a token without a lifetime is usable until refused).
    public func isFresh(now: Double, margin: Double) -> Bool {
        guard let expiresAt else { return true }
        return now + margin < expiresAt
    }
}

/// What a `token` call does with the cache, decided without I/O.
public enum TokenDecision: Equatable, Sendable {
    case use(ClientTokenRecord)
    case refresh(ClientTokenRecord)
    case signIn
}

extension TokenDecision {
    /// Refresh ahead of expiry (within `margin`) or when the server refused the cached access token;
    /// sign in when there is nothing to refresh with, or the cache holds fewer scopes than needed.
    public static func decide(
        record: ClientTokenRecord?,
        requiredScopes: [String],
        refusedAccessToken: String?,
        now: Double,
        margin: Double
    ) -> TokenDecision {
        guard let record else { return .signIn }
        guard requiredScopes.allSatisfy(record.scopes.contains) else { return .signIn }
        let refused = refusedAccessToken.map { $0 == record.accessToken } ?? false
        if !refused && record.isFresh(now: now, margin: margin) { return .use(record) }
        return record.refreshToken == nil ? .signIn : .refresh(record)
    }
}

/// One refresh of one (issuer, resource), coordinated across threads and processes through a
/// store lease: at most one refresh runs at a time, the rotated pair is written by compare-and-swap
/// over the record that was refreshed, and a caller that found the lease taken re-reads the cache
/// instead of refreshing, so sharing a cache never spends a refresh token twice (a server without a
/// grace window would revoke the chain). The driver performs the actions and feeds back the events.
/// The guard rests on the lease outliving the refresh: the driver takes it for longer than the token
/// request's timeout plus the write. After `.use`, the driver decides again (scopes may differ).
public struct RefreshMachine: Sendable {
    public enum Outcome: Equatable, Sendable {
        case use(ClientTokenRecord)
        case signIn
        case fail(AuthError)
    }

    public enum Event: Equatable, Sendable {
        /// The lease was taken; `current` is the record read after taking it.
        case leaseAcquired(holder: String, current: ClientTokenRecord?)
        /// Another holder has it; `current` is the record as it is now.
        case leaseBusy(current: ClientTokenRecord?, now: Double)
        case refreshed(ClientTokenRecord)
        /// The token endpoint refused the refresh token (invalid_grant): the chain is dead.
        case refreshRejected
        /// The token endpoint could not be reached or answered something unusable.
        case refreshFailed(AuthError)
        /// The compare-and-swap of the rotated record; `current` is the record it found when it lost.
        case written(won: Bool, current: ClientTokenRecord?)
        case deleted
    }

    public enum Action: Equatable, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
        case acquireLease
        /// Sleep, then acquire again.
        case wait(seconds: Double)
        case refresh(refreshToken: String)
        case write(expected: ClientTokenRecord, new: ClientTokenRecord)
        /// Remove the dead record, if it is still the one refreshed.
        case delete(expected: ClientTokenRecord)
        case release(holder: String)
        case finish(Outcome)

        /// Names the action; tokens (in `refresh` and in the records) are left out.
        public var description: String {
            switch self {
            case .acquireLease: "acquireLease"
            case .wait(let seconds): "wait(\(seconds))"
            case .refresh: "refresh(<redacted>)"
            case .write: "write"
            case .delete: "delete"
            case .release: "release"
            case .finish(.use): "finish(use)"
            case .finish(.signIn): "finish(signIn)"
            case .finish(.fail(let error)): "finish(fail(\(error.code.name)))"
            }
        }
        public var debugDescription: String { description }
    }

    private enum State: Equatable, Sendable {
        case waitingForLease(since: Double?)
        case refreshing(holder: String)
        case writing(holder: String, new: ClientTokenRecord, attempts: Int)
        case deleting(holder: String)
        case finished
    }

    /// The record the caller decided to refresh.
    public let seen: ClientTokenRecord
    /// How long to wait for another holder before giving up with store_unavailable.
    public let patience: Double
    public let pollInterval: Double
    /// The seen access token is neither expired nor refused: a failed refresh may fall back to it.
    public let usableWhileRefreshing: Bool
    private var state: State = .waitingForLease(since: nil)

    public init(
        seen: ClientTokenRecord,
        usableWhileRefreshing: Bool,
        patience: Double = 30,
        pollInterval: Double = 0.05
    ) {
        self.seen = seen
        self.usableWhileRefreshing = usableWhileRefreshing
        self.patience = patience
        self.pollInterval = pollInterval
    }

    public func start() -> Action { .acquireLease }

    /// Whether `current` is the result of someone else's refresh of `seen`.
    private func isNewer(_ current: ClientTokenRecord?) -> Bool {
        guard let current else { return false }
        return current.accessToken != seen.accessToken || current.refreshToken != seen.refreshToken
    }

    public mutating func handle(_ event: Event) -> [Action] {
        switch (state, event) {
        case (.waitingForLease, .leaseAcquired(let holder, let current)):
            // Someone refreshed while we waited: use theirs, do not spend the rotated-away token.
            if isNewer(current), let current { return finish(.use(current), releasing: holder) }
            guard current != nil else { return finish(.signIn, releasing: holder) }
            guard let refreshToken = seen.refreshToken else { return finish(.signIn, releasing: holder) }
            state = .refreshing(holder: holder)
            return [.refresh(refreshToken: refreshToken)]

        case (.waitingForLease(let since), .leaseBusy(let current, let now)):
            if isNewer(current), let current { return finish(.use(current), releasing: nil) }
            // The other holder signed out or found the chain dead.
            if current == nil { return finish(.signIn, releasing: nil) }
            let start = since ?? now
            guard now - start < patience else {
                return finish(
                    .fail(AuthError(.storeUnavailable, "another process holds the refresh lease past the wait limit")),
                    releasing: nil
                )
            }
            state = .waitingForLease(since: start)
            return [.wait(seconds: pollInterval), .acquireLease]

        case (.refreshing(let holder), .refreshed(let new)):
            state = .writing(holder: holder, new: new, attempts: 1)
            return [.write(expected: seen, new: new)]

        case (.refreshing(let holder), .refreshRejected):
            state = .deleting(holder: holder)
            return [.delete(expected: seen)]

        case (.refreshing(let holder), .refreshFailed(let error)):
            // A transient failure leaves the chain as it was; an access token refreshed ahead of its
            // expiry still serves.
            return finish(usableWhileRefreshing ? .use(seen) : .fail(error), releasing: holder)

        case (.writing(let holder, let new, let attempts), .written(let won, let current)):
            if won { return finish(.use(new), releasing: holder) }
            // Signed out meanwhile (or the chain was found dead): the sign-out stands.
            guard let current else { return finish(.signIn, releasing: holder) }
            // Lost to someone else's refresh (our lease ran out): theirs is the chain's end.
            if isNewer(current) { return finish(.use(current), releasing: holder) }
            // Same tokens, other fields changed: ours is the only live refresh token, so it must be
            // written, over what is there now.
            guard attempts < 3 else {
                return finish(
                    .fail(AuthError(.storeUnavailable, "the refreshed tokens could not be stored")),
                    releasing: holder
                )
            }
            state = .writing(holder: holder, new: new, attempts: attempts + 1)
            return [.write(expected: current, new: new)]

        case (.deleting(let holder), .deleted):
            return finish(.signIn, releasing: holder)

        default:
            // Out of order: end, and never keep the lease (others would wait out its lifetime).
            return finish(
                .fail(AuthError(.internalError, "the refresh sequence received an unexpected event")),
                releasing: heldLease
            )
        }
    }

    private var heldLease: String? {
        switch state {
        case .refreshing(let holder), .writing(let holder, _, _), .deleting(let holder): holder
        case .waitingForLease, .finished: nil
        }
    }

    private mutating func finish(_ outcome: Outcome, releasing holder: String?) -> [Action] {
        state = .finished
        return (holder.map { [Action.release(holder: $0)] } ?? []) + [.finish(outcome)]
    }
}
