/// The consent rules as a state machine. A transaction is pending until a browser approves it,
/// then approved for that browser only (its binding cookie's hash), then finished by the upstream
/// callback in that same browser. Each render of the page is a one-use CSRF token recorded with
/// the browser it was rendered for, so a form fetched by an attacker and submitted by a victim's
/// browser (or the other way round) is refused, and the callback is refused in any other browser.
/// Pure: the driver (OAuthProxy+Consent) loads the records, feeds an event and performs the action.
enum ConsentMachine {
    /// A POST may be a consent decision only when it comes from our own page: `Origin` equal to
    /// ours, or no `Origin` and `Sec-Fetch-Site` absent or `same-origin`. `Origin: null`, another
    /// origin, and `Sec-Fetch-Site` `cross-site` or `same-site` are refused.
    static func submissionOriginAllowed(origin: String?, fetchSite: String?, proxyOrigin: String) -> Bool {
        if let fetchSite, fetchSite.lowercased() != "same-origin" { return false }
        guard let origin else { return true }
        return normalizedOrigin(origin) == normalizedOrigin(proxyOrigin)
    }

    /// An origin lower-cased, without the scheme's default port (browsers never send it).
    static func normalizedOrigin(_ origin: String) -> String {
        let lowered = origin.lowercased()
        for (scheme, port) in [("https://", ":443"), ("http://", ":80")] where lowered.hasPrefix(scheme) {
            return lowered.hasSuffix(port) ? String(lowered.dropLast(port.count)) : lowered
        }
        return lowered
    }

    enum Decision: Equatable {
        case approve
        case deny
    }

    /// A consent form arrives.
    struct Submission {
        /// The render its CSRF token named (taken from the store: each token works once).
        var render: ConsentRender?
        var transactionID: String
        var transaction: Transaction?
        /// SHA-256 hex of the browser-binding cookie the POST carried.
        var browser: String?
        var decision: Decision?
        var now: Double
    }

    enum SubmissionAction: Equatable {
        case refuse(status: Int, message: String)
        /// Delete the transaction and send the client `access_denied`.
        case deny(Transaction)
        /// Store this approved transaction (compare-and-swap over the pending one), then send the
        /// browser to the upstream provider.
        case approve(Transaction)
        /// Approved already by this very browser (a second page of the same flow): go on.
        case proceed(Transaction)
    }

    static func submit(_ submission: Submission) -> SubmissionAction {
        guard let render = submission.render, render.transactionID == submission.transactionID,
            submission.now < render.expiresAt
        else {
            return .refuse(status: 403, message: Messages.formExpired)
        }
        guard let browser = submission.browser, let renderedFor = render.browserBinding,
            OpenSSL.constantTimeEqual(Array(browser.utf8), Array(renderedFor.utf8))
        else {
            return .refuse(status: 403, message: Messages.otherBrowser)
        }
        guard var transaction = submission.transaction else {
            return .refuse(status: 400, message: Messages.unknownTransaction)
        }
        guard let decision = submission.decision else { return .refuse(status: 400, message: Messages.malformed) }
        if let approved = transaction.approvedBinding {
            guard OpenSSL.constantTimeEqual(Array(approved.utf8), Array(browser.utf8)) else {
                return .refuse(status: 403, message: Messages.otherBrowser)
            }
            return decision == .approve ? .proceed(transaction) : .deny(transaction)
        }
        guard decision == .approve else { return .deny(transaction) }
        transaction.approvedBinding = browser
        transaction.approvedAt = submission.now
        return .approve(transaction)
    }

    enum CallbackAction: Equatable {
        case refuse(status: Int, message: String)
        /// Take the transaction (one caller wins) and finish the sign-in.
        case finish
    }

    /// The upstream provider sends the browser back.
    static func callback(transaction: Transaction?, browser: String?) -> CallbackAction {
        guard let transaction else { return .refuse(status: 400, message: Messages.unknownSignIn) }
        guard let approved = transaction.approvedBinding else {
            return .refuse(status: 403, message: Messages.notApproved)
        }
        guard let browser, OpenSSL.constantTimeEqual(Array(approved.utf8), Array(browser.utf8)) else {
            return .refuse(status: 403, message: Messages.otherBrowser)
        }
        return .finish
    }

    enum Messages {
        static let formExpired =
            "This form has expired, was already used or was not issued by this server. Start again from your MCP client."
        static let otherBrowser = "This sign-in was started in another browser. Start again from your MCP client."
        static let unknownTransaction = "This authorization request is unknown or has expired."
        static let unknownSignIn =
            "This sign-in is unknown, expired or already completed. Start again from your MCP client."
        static let notApproved = "This sign-in was not approved on this server's consent page."
        static let malformed = "The form is malformed."
    }
}
