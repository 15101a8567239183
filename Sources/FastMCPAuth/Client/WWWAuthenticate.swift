/// One challenge of a `WWW-Authenticate` header (RFC 9110 §11.6.1): the scheme, lowercased, and
/// its auth-params (names lowercased, quoted values unescaped). A token68 form is kept as `token68`.
public struct AuthChallenge: Equatable, Sendable {
    public var scheme: String
    public var parameters: [String: String]
    public var token68: String?

    public init(scheme: String, parameters: [String: String] = [:], token68: String? = nil) {
        self.scheme = scheme
        self.parameters = parameters
        self.token68 = token68
    }
}

/// A parser for `WWW-Authenticate`, written for hostile servers: bounded length and count, no
/// recursion, and anything it cannot read ends the parse with the challenges read so far.
public enum WWWAuthenticate {
    public static let maxLength = 16 * 1024
    public static let maxChallenges = 16
    public static let maxParameters = 32

    public static func parse(_ header: String) -> [AuthChallenge] {
        guard header.utf8.count <= maxLength else { return [] }
        var reader = Reader(Array(header.utf8))
        var challenges = [AuthChallenge]()
        while challenges.count < maxChallenges {
            reader.skip { $0 == 0x20 || $0 == 0x09 || $0 == 0x2C }
            guard let scheme = reader.token() else { break }
            var challenge = AuthChallenge(scheme: scheme.lowercased())
            reader.skipSpaces()
            // token68 (`Basic YWxh…=`): token68 characters then `=` padding, then a comma or the end.
            if let token68 = reader.token68() {
                challenge.token68 = token68
                challenges.append(challenge)
                continue
            }
            while challenge.parameters.count < maxParameters {
                let mark = reader.position
                reader.skip { $0 == 0x20 || $0 == 0x09 || $0 == 0x2C }
                guard let name = reader.token() else {
                    reader.position = mark
                    break
                }
                reader.skipSpaces()
                guard reader.consume(0x3D) else {
                    // A token without "=": the scheme of the next challenge.
                    reader.position = mark
                    break
                }
                reader.skipSpaces()
                guard let value = reader.quotedString() ?? reader.token() else { return challenges + [challenge] }
                let key = name.lowercased()
                // A repeated parameter makes the challenge ambiguous (RFC 9110: each name once): keep the first.
                if challenge.parameters[key] == nil { challenge.parameters[key] = value }
                reader.skipSpaces()
            }
            challenges.append(challenge)
            if reader.atEnd { break }
            if reader.peek != 0x2C && reader.peek != 0x20 { break }
        }
        return challenges
    }

    private struct Reader {
        let bytes: [UInt8]
        var position = 0

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool { position >= bytes.count }
        var peek: UInt8? { position < bytes.count ? bytes[position] : nil }

        mutating func skip(while predicate: (UInt8) -> Bool) {
            while position < bytes.count, predicate(bytes[position]) { position += 1 }
        }

        mutating func skipSpaces() { skip { $0 == 0x20 || $0 == 0x09 } }

        mutating func consume(_ byte: UInt8) -> Bool {
            guard peek == byte else { return false }
            position += 1
            return true
        }

        mutating func token() -> String? {
            let start = position
            skip(while: Self.isTokenCharacter)
            guard position > start else { return nil }
            return String(decoding: bytes[start..<position], as: UTF8.self)
        }

        /// A token68 (RFC 9110 §11.2) only when a comma or the end follows; else it was an auth-param name.
        mutating func token68() -> String? {
            let start = position
            skip(while: Self.isToken68Character)
            guard position > start else { return nil }
            skip { $0 == 0x3D }
            let end = position
            skipSpaces()
            guard atEnd || peek == 0x2C else {
                position = start
                return nil
            }
            return String(decoding: bytes[start..<end], as: UTF8.self)
        }

        /// A quoted-string with its backslash escapes removed; nil when there is none or it is unterminated.
        mutating func quotedString() -> String? {
            guard peek == 0x22 else { return nil }
            var index = position + 1
            var out = [UInt8]()
            while index < bytes.count {
                let byte = bytes[index]
                if byte == 0x22 {
                    position = index + 1
                    return String(decoding: out, as: UTF8.self)
                }
                if byte == 0x5C {
                    index += 1
                    guard index < bytes.count else { return nil }
                }
                out.append(bytes[index])
                index += 1
            }
            return nil
        }

        static func isToken68Character(_ byte: UInt8) -> Bool {
            switch byte {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x2D, 0x2E, 0x5F, 0x7E, 0x2B, 0x2F: true
            default: false
            }
        }

        static func isTokenCharacter(_ byte: UInt8) -> Bool {
            switch byte {
            case 0x22, 0x28, 0x29, 0x2C, 0x2F, 0x3A...0x40, 0x5B...0x5D, 0x7B, 0x7D: false
            case 0x21...0x7E: true
            default: false
            }
        }
    }
}

/// What a client takes from a 401 or 403: the Bearer challenge's `error`, `scope` and
/// `resource_metadata` (RFC 6750 §3, RFC 9728 §5.1).
public struct BearerChallenge: Equatable, Sendable {
    public var status: Int
    public var error: String?
    public var scopes: [String]
    public var resourceMetadata: String?

    public init(status: Int, error: String? = nil, scopes: [String] = [], resourceMetadata: String? = nil) {
        self.status = status
        self.error = error
        self.scopes = scopes
        self.resourceMetadata = resourceMetadata
    }

    /// The first Bearer challenge of the header; a header without one still yields the status.
    public init(status: Int, header: String?) {
        self.init(status: status)
        guard let header, let bearer = WWWAuthenticate.parse(header).first(where: { $0.scheme == "bearer" }) else {
            return
        }
        error = bearer.parameters["error"]
        scopes = (bearer.parameters["scope"] ?? "").split(separator: " ").map(String.init).filter(ScopeNames.isValid)
        resourceMetadata = bearer.parameters["resource_metadata"]
    }

    /// A 403 asking for more scope (RFC 6750 §3.1).
    public var isInsufficientScope: Bool { status == 403 && error == "insufficient_scope" }
}
