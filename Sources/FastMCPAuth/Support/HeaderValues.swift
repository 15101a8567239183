/// What may go into an HTTP header the library emits, and into a scope name. Header values are
/// built from configuration (base URL, MCP path, scope names) and from our own text; a control
/// character there could split a response or smuggle a header, so configuration refuses them
/// and every emitted header passes `HeaderValues.safe` once more (in AuthResponse).
public enum HeaderValues {
    /// No C0 control character (CR, LF, NUL, TAB, …) and no DEL.
    public static func isSafe(_ text: String) -> Bool {
        !text.utf8.contains { $0 < 0x20 || $0 == 0x7F }
    }

    /// The text with every control character removed (the last line of defence).
    public static func safe(_ text: String) -> String {
        isSafe(text)
            ? text
            : String(String.UnicodeScalarView(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }))
    }

    /// A header name: an RFC 9110 token.
    static func isToken(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy(isTokenCharacter)
    }

    /// RFC 9110 tchar: visible ASCII except the delimiters `"(),/:;<=>?@[\]{}`. A switch, since every
    /// header of every response passes here.
    private static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x22, 0x28, 0x29, 0x2C, 0x2F, 0x3A...0x40, 0x5B...0x5D, 0x7B, 0x7D: false
        case 0x21...0x7E: true
        default: false
        }
    }

    /// Configuration text that ends up in headers: refused (invalid_config) with control characters.
    static func checkConfig(_ text: String, key: String) throws {
        guard isSafe(text) else { throw AuthError(.invalidConfig, "\(key): must not contain control characters") }
    }
}

/// Scope names (RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`).
public enum ScopeNames {
    public static func isValid(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 256
            && name.utf8.allSatisfy { $0 == 0x21 || (0x23...0x5B).contains($0) || (0x5D...0x7E).contains($0) }
    }

    /// A configured list: every name valid, else invalid_config naming the key.
    static func checkConfig(_ names: [String], key: String) throws {
        if let bad = names.first(where: { !isValid($0) }) {
            throw AuthError(
                .invalidConfig,
                "\(key): \"\(Responses.printable(String(bad.prefix(40))))\" is not a scope name (printable ASCII, no space, quote or backslash)"
            )
        }
    }

    /// Space-separated scopes a caller passes per call: invalid_argument when one is not a name.
    public static func parseArgument(_ text: String) throws -> [String] {
        let names = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard names.allSatisfy(isValid) else {
            throw AuthError(
                .invalidArgument,
                "required_scopes: scope names are printable ASCII without quotes or backslashes"
            )
        }
        return names
    }
}
