/// Padded base64 (RFC 4648 §4 and §5) as Fernet and py-key-value write it. Decoding is strict:
/// correct padding, no foreign characters, canonical trailing bits.
public enum Base64 {
    public enum Alphabet: Sendable { case standard, urlSafe }

    private static let standardTable = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode(_ bytes: [UInt8], alphabet: Alphabet) -> String {
        var text = Array(Base64URL.encode(bytes).utf8)
        if alphabet == .standard {
            for index in text.indices {
                if text[index] == UInt8(ascii: "-") { text[index] = UInt8(ascii: "+") }
                if text[index] == UInt8(ascii: "_") { text[index] = UInt8(ascii: "/") }
            }
        }
        text += [UInt8](repeating: UInt8(ascii: "="), count: (4 - text.count % 4) % 4)
        return String(decoding: text, as: UTF8.self)
    }

    public static func decode(_ text: String, alphabet: Alphabet) -> [UInt8]? {
        var chars = Array(text.utf8)
        guard chars.count % 4 == 0 else { return nil }
        var padding = 0
        while padding < 2, chars.last == UInt8(ascii: "=") {
            chars.removeLast()
            padding += 1
        }
        let urlSafeForm: [UInt8] = chars.map { char in
            switch (alphabet, char) {
            case (.standard, UInt8(ascii: "+")): return UInt8(ascii: "-")
            case (.standard, UInt8(ascii: "/")): return UInt8(ascii: "_")
            case (.standard, UInt8(ascii: "-")), (.standard, UInt8(ascii: "_")): return UInt8(ascii: "=")  // foreign: refused below
            default: return char
            }
        }
        return Base64URL.decode(urlSafeForm)
    }
}
