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

    private static let standardDecodeTable = Base64URL.makeDecodeTable(standardTable)

    public static func decode(_ text: String, alphabet: Alphabet) -> [UInt8]? {
        var text = text
        return text.withUTF8 { chars -> [UInt8]? in
            guard chars.count % 4 == 0 else { return nil }
            var count = chars.count
            if count > 0, chars[count - 1] == UInt8(ascii: "=") { count -= 1 }
            if count > 0, chars[count - 1] == UInt8(ascii: "=") { count -= 1 }
            let body = UnsafeBufferPointer(rebasing: chars[0..<count])
            return Base64URL.decode(
                buffer: body,
                table: alphabet == .standard ? standardDecodeTable : Base64URL.decodeTable
            )
        }
    }
}
