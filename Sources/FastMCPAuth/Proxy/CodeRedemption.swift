/// The rules for redeeming a one-time authorization code, as a state machine. A code is issued,
/// then redeemed once; presenting it with the wrong client, redirect URI or PKCE verifier is
/// refused without using it up (a leaked code cannot be burned by a stranger). A second use is
/// always `invalid_grant` (RFC 6749 §4.1.2); it leaves the grant alone only when it is the same
/// client with the same verifier within `duplicateWindow` seconds of the redemption (clients do
/// POST /token twice), and revokes what the code issued otherwise.
enum CodeRedemption {
    static let duplicateWindow: Double = 10

    /// What a redemption leaves behind (our collection, keyed by the code's SHA-256 hex).
    struct Redemption: Equatable {
        var clientID: String
        /// SHA-256 hex of the PKCE verifier that redeemed the code.
        var verifierHash: String
        var redeemedAt: Double
        /// The grant the code's tokens belong to.
        var upstreamTokenID: String
        /// Set by a replay that revoked the grant, so a redemption still issuing sees it.
        var revoked: Bool

        init(clientID: String, verifierHash: String, redeemedAt: Double, upstreamTokenID: String, revoked: Bool = false)
        {
            self.clientID = clientID
            self.verifierHash = verifierHash
            self.redeemedAt = redeemedAt
            self.upstreamTokenID = upstreamTokenID
            self.revoked = revoked
        }

        init?(json: [String: JSONValue]) {
            let fields = Fields(object: json)
            guard let client = fields.string("client_id"), let hash = fields.string("verifier_hash"),
                let at = fields.number("redeemed_at"), let upstream = fields.string("upstream_token_id")
            else { return nil }
            self.init(
                clientID: client,
                verifierHash: hash,
                redeemedAt: at,
                upstreamTokenID: upstream,
                revoked: json["revoked"] == .bool(true)
            )
        }

        var json: [String: JSONValue] {
            [
                "client_id": .string(clientID), "verifier_hash": .string(verifierHash),
                "redeemed_at": .double(redeemedAt),
                "upstream_token_id": .string(upstreamTokenID), "revoked": .bool(revoked),
            ]
        }
    }

    enum State: Equatable {
        case issued(AuthorizationCode)
        case redeemed(Redemption)
        case unknown
    }

    /// One POST /token with `grant_type=authorization_code`.
    struct Presentation {
        var clientID: String
        var redirectURI: String?
        /// The base64url SHA-256 of the presented verifier; nil when no valid verifier was sent.
        var verifierChallenge: String?
        /// SHA-256 hex of the presented verifier (to recognise a duplicate), nil without one.
        var verifierHash: String?
        var resource: String?
        var now: Double
    }

    enum Action: Equatable {
        /// Refused; the code stays as it was.
        case refuse(error: String, description: String)
        /// Claim the redemption (one claimant wins), then issue the tokens.
        case redeem(AuthorizationCode)
        /// A duplicate POST of the same redemption: refused, the grant left alone.
        case refuseDuplicate
        /// A replay: refused, and the grant the code issued is revoked.
        case revokeAndRefuse(upstreamTokenID: String)
    }

    static func decide(_ state: State, _ presentation: Presentation) -> Action {
        switch state {
        case .unknown:
            return .refuse(
                error: "invalid_grant",
                description: "The authorization code is invalid, expired or already used."
            )
        case .redeemed(let redemption):
            if redemption.clientID == presentation.clientID, let hash = presentation.verifierHash,
                OpenSSL.constantTimeEqual(Array(hash.utf8), Array(redemption.verifierHash.utf8)),
                presentation.now - redemption.redeemedAt <= duplicateWindow, !redemption.revoked
            {
                return .refuseDuplicate
            }
            return .revokeAndRefuse(upstreamTokenID: redemption.upstreamTokenID)
        case .issued(let code):
            guard code.clientID == presentation.clientID else {
                return .refuse(
                    error: "invalid_grant",
                    description: "The authorization code was issued to another client."
                )
            }
            guard presentation.now < code.expiresAt else {
                return .refuse(error: "invalid_grant", description: "The authorization code has expired.")
            }
            guard presentation.redirectURI == code.redirectURI else {
                return .refuse(
                    error: "invalid_grant",
                    description: "redirect_uri does not match the authorization request."
                )
            }
            guard let challenge = presentation.verifierChallenge,
                OpenSSL.constantTimeEqual(Array(challenge.utf8), Array(code.codeChallenge.utf8))
            else {
                return .refuse(
                    error: "invalid_grant",
                    description: "The PKCE code_verifier does not match the code_challenge."
                )
            }
            if let resource = code.resource, let asked = presentation.resource,
                !OAuthProxy.sameResource(asked, resource)
            {
                return .refuse(
                    error: "invalid_target",
                    description: "The resource differs from the authorization request."
                )
            }
            return .redeem(code)
        }
    }
}
