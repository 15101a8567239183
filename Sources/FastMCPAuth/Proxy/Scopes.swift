/// Which scopes a grant may carry. The offered set is `valid_scopes`, else `required_scopes`
/// (FastMCP's rule); with neither, nothing is offered and any requested scope is refused. A
/// client registers a subset of the offered set (default: all of it); each leg of a flow asks for
/// a subset of what the previous leg allowed, and a request without `scope` gets all of it. What
/// the upstream says it granted, mapped to our names, confines the grant further.
struct ScopePolicy: Sendable, Equatable {
    let offered: [String]
    /// Upstream scope name → ours; a name not in the map is taken as it is.
    let upstreamNames: [String: String]

    init(validScopes: [String]?, requiredScopes: [String], upstreamNames: [String: String] = [:]) {
        offered = Self.unique(validScopes ?? requiredScopes)
        self.upstreamNames = upstreamNames
    }

    /// Space-separated scope names, in order, each once.
    static func parse(_ text: String) -> [String] {
        unique(text.split(separator: " ", omittingEmptySubsequences: true).map(String.init))
    }

    /// An upstream's `scope`: space- or comma-separated (GitHub and others use commas).
    static func parseUpstream(_ text: String) -> [String] {
        unique(text.split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init))
    }

    static func unique(_ names: [String]) -> [String] {
        var seen = Set<String>()
        return names.filter { seen.insert($0).inserted }
    }

    /// A registration's scope: nil (all that is offered) or a subset of the offered set.
    func registered(_ requested: String?) -> [String]? {
        guard let requested else { return offered }
        let names = Self.parse(requested)
        return names.allSatisfy(offered.contains) ? names : nil
    }

    /// What a client may ask for: its registered scope (nil: the offered set), within the offered set.
    func allowed(forClientScope scope: String?) -> [String] {
        guard let scope else { return offered }
        return Self.parse(scope).filter(offered.contains)
    }

    /// A request's scopes within `allowed`: nil (refused) when it names anything else; no
    /// `scope` at all gets everything allowed.
    static func narrowed(_ requested: String?, within allowed: [String]) -> [String]? {
        guard let requested else { return allowed }
        let names = parse(requested)
        return names.allSatisfy(allowed.contains) ? names : nil
    }

    /// The grant after the upstream token response: without an upstream `scope` the requested
    /// scopes stand (RFC 6749 §5.1); with one, only those the upstream granted, under our names.
    func confined(_ requested: [String], byUpstream scope: String?) -> [String] {
        guard let scope else { return requested }
        let granted = Set(Self.parseUpstream(scope).map { upstreamNames[$0] ?? $0 })
        return requested.filter(granted.contains)
    }
}
