/// Base64url (RFC 4648 §5) as JWS uses it: no padding, and only the canonical encoding is
/// accepted (the unused low bits of the last character must be zero), so one byte string has
/// exactly one textual form.
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static let decodeTable: [UInt8] = makeDecodeTable(alphabet)

    static func makeDecodeTable(_ alphabet: [UInt8]) -> [UInt8] {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, char) in alphabet.enumerated() { table[Int(char)] = UInt8(index) }
        return table
    }

    public static func encode<Bytes: Collection>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let input = Array(bytes)
        var out = [UInt8]()
        out.reserveCapacity((input.count * 4 + 2) / 3)
        var i = 0
        while i + 3 <= input.count {
            let n = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)])
            out.append(alphabet[Int(n & 63)])
            i += 3
        }
        let rest = input.count - i
        if rest == 1 {
            let n = UInt32(input[i]) << 16
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
        } else if rest == 2 {
            let n = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func encode(_ string: String) -> String { encode(Array(string.utf8)) }

    /// Decodes strictly; returns nil for padding, characters outside the alphabet, an
    /// impossible length or non-zero trailing bits.
    public static func decode<Chars: Collection>(_ text: Chars) -> [UInt8]? where Chars.Element == UInt8 {
        if let decoded = text.withContiguousStorageIfAvailable({ decode(buffer: $0, table: decodeTable) }) {
            return decoded
        }
        return Array(text).withUnsafeBufferPointer { decode(buffer: $0, table: decodeTable) }
    }

    /// Unpadded, canonical decoding of `buffer` with a 256-entry table (0xFF: not in the alphabet).
    static func decode(buffer: UnsafeBufferPointer<UInt8>, table decodeTable: [UInt8]) -> [UInt8]? {
        if buffer.count % 4 == 1 { return nil }
        var valid = true
        let decoded = [UInt8](unsafeUninitializedCapacity: buffer.count * 3 / 4) { out, initialized in
            decodeTable.withUnsafeBufferPointer { table in
                var accumulator: UInt32 = 0
                var bits: UInt32 = 0
                var written = 0
                for char in buffer {
                    let value = table[Int(char)]
                    if value == 0xFF {
                        valid = false
                        break
                    }
                    accumulator = accumulator << 6 | UInt32(value)
                    bits += 6
                    if bits >= 8 {
                        bits -= 8
                        out[written] = UInt8(truncatingIfNeeded: accumulator >> bits)
                        written += 1
                        accumulator &= (1 << bits) - 1
                    }
                }
                // Leftover bits (2 or 4) must be zero for the encoding to be canonical.
                if accumulator != 0 { valid = false }
                initialized = written
            }
        }
        return valid ? decoded : nil
    }

    public static func decode(_ text: String) -> [UInt8]? { decode(Array(text.utf8)) }
}
