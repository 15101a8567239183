/// Refresh-token rotation as a state machine. Each refresh token is rotated once: the first
/// request claims it (an atomic put-if-absent of a rotation record keyed by the token's SHA-256),
/// mints the successor pair and records it (for the grace window only, in a record of its own),
/// encrypted under a key only the old token yields.
/// Until the rotation is recorded, every other request sees the claim and waits; so concurrent
/// refreshes never see "neither the live token nor a rotation" and never revoke the grant.
/// Within the grace window the first replay by the same client gets exactly the recorded
/// successor response (never a second chain); later replays inside the window are refused and
/// leave the grant alone; any use after the window, or of a token that is not live, revokes it.
enum RefreshRotation {
    /// The rotation record (our collection, keyed by the old refresh token's SHA-256 hex).
    struct Record: Equatable {
        enum Phase: String, Equatable {
            case rotating
            case rotated
            /// The token was found not live (or replayed late) and its grant revoked: every later
            /// use is refused at once.
            case revoked
        }

        var phase: Phase
        var clientID: String
        /// The grant, so a replay after the window can end it.
        var upstreamTokenID: String?
        var startedAt: Double
        var rotatedAt: Double?
        /// How many replays received the successor (at most one).
        var replays: Int

        static func claim(clientID: String, now: Double) -> Record {
            Record(
                phase: .rotating,
                clientID: clientID,
                upstreamTokenID: nil,
                startedAt: now,
                rotatedAt: nil,
                replays: 0
            )
        }

        init(
            phase: Phase,
            clientID: String,
            upstreamTokenID: String?,
            startedAt: Double,
            rotatedAt: Double?,
            replays: Int
        ) {
            self.phase = phase
            self.clientID = clientID
            self.upstreamTokenID = upstreamTokenID
            self.startedAt = startedAt
            self.rotatedAt = rotatedAt
            self.replays = replays
        }

        init?(json: [String: JSONValue]) {
            let fields = Fields(object: json)
            guard let phase = fields.string("phase").flatMap(Phase.init(rawValue:)),
                let client = fields.string("client_id"), let started = fields.number("started_at")
            else { return nil }
            let replays = fields.number("replays") ?? 0
            self.init(
                phase: phase,
                clientID: client,
                upstreamTokenID: fields.string("upstream_token_id"),
                startedAt: started,
                rotatedAt: fields.number("rotated_at"),
                replays: replays >= 0 && replays < 1_000_000 ? Int(replays) : 1_000_000
            )
        }

        var json: [String: JSONValue] {
            var object: [String: JSONValue] = [
                "phase": .string(phase.rawValue), "client_id": .string(clientID), "started_at": .double(startedAt),
                "replays": .int(Int64(replays)),
            ]
            if let upstreamTokenID { object["upstream_token_id"] = .string(upstreamTokenID) }
            if let rotatedAt { object["rotated_at"] = .double(rotatedAt) }
            return object
        }
    }

    enum State: Equatable {
        /// This request holds the claim; the live refresh record as found (nil: not live).
        case claimed(RefreshRecord?)
        /// Another request holds the claim and has not finished.
        case rotating(Record)
        /// Rotated already.
        case rotated(Record)
    }

    enum Action: Equatable {
        /// Mint the successor pair from this record, record it, then retire the old token.
        case rotate(RefreshRecord)
        /// Refused; the grant is left alone (the claim, if held, is released).
        case refuse(description: String)
        /// Wait for the other request's rotation, then look again.
        case wait
        /// Count this replay (compare-and-swap `replays` from 0 to 1); the winner gets the
        /// recorded successor (if its record is still there), a loser looks again.
        case serveSuccessor(Record)
        /// The token is not live, or was replayed after the window: revoke the whole grant (the
        /// rotation record's, else the one the token's jti maps to).
        case revokeGrant(upstreamTokenID: String?)
    }

    static func decide(_ state: State, clientID: String, now: Double, gracePeriod: Double) -> Action {
        switch state {
        case .claimed(nil):
            return .revokeGrant(upstreamTokenID: nil)
        case .claimed(let record?):
            guard record.clientID == clientID else {
                return .refuse(description: "The refresh token was issued to another client.")
            }
            if let expires = record.expiresAt, now >= expires {
                return .refuse(description: "The refresh token has expired.")
            }
            return .rotate(record)
        case .rotating(let record):
            guard record.clientID == clientID else {
                return .refuse(description: "The refresh token was issued to another client.")
            }
            return .wait
        case .rotated(let record):
            guard record.clientID == clientID else {
                return .refuse(description: "The refresh token was issued to another client.")
            }
            guard record.phase == .rotated else {
                return .refuse(description: "The refresh token was already used or revoked.")
            }
            guard let rotatedAt = record.rotatedAt, now - rotatedAt < gracePeriod else {
                return .revokeGrant(upstreamTokenID: record.upstreamTokenID)
            }
            guard record.replays == 0 else {
                return .refuse(description: "The refresh token was already used; the grant is unchanged.")
            }
            return .serveSuccessor(record)
        }
    }
}
