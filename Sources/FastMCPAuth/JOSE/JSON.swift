import CJansson

/// A parsed JSON value. Parsing goes through jansson with duplicate keys rejected; numbers keep
/// their integer-ness so `exp` values round-trip exactly.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public struct ParseError: Error, Sendable {
        public let message: String
    }

    /// How deep arrays and objects may nest in JSON the library parses, unless a caller says
    /// otherwise (JOSE headers and claims: 32, configurable).
    public static let defaultMaxDepth = 64

    /// Parses strict JSON (RFC 8259, duplicate object keys refused, NUL in strings refused),
    /// nested at most `maxDepth` levels: the depth is checked before anything recurses, so
    /// hostile nesting costs neither stack nor time.
    public static func parse<Bytes: Collection>(
        _ bytes: Bytes,
        maxDepth: Int = defaultMaxDepth,
        bigIntegersAsReals: Bool = false
    ) throws -> JSONValue where Bytes.Element == UInt8 {
        let buffer = Array(bytes)
        if buffer.isEmpty { throw ParseError(message: "empty input") }
        if let deepest = exceedsDepth(buffer, maxDepth) {
            throw ParseError(message: "nested deeper than \(maxDepth) levels at byte \(deepest)")
        }
        var error = json_error_t()
        let root: UnsafeMutablePointer<json_t>? = buffer.withUnsafeBufferPointer { raw in
            guard let base = raw.baseAddress else { return nil }
            return base.withMemoryRebound(to: CChar.self, capacity: raw.count) { chars in
                let flags =
                    JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | (bigIntegersAsReals ? JSON_DECODE_INT_AS_REAL : 0)
                return json_loadb(chars, raw.count, Int(flags), &error)
            }
        }
        guard let root else {
            // jansson's text names the position and reason, never echoes the input.
            let text = withUnsafeBytes(of: error.text) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            throw ParseError(message: "\(text) at line \(error.line) column \(error.column)")
        }
        defer { json_decref(root) }
        return convert(root)
    }

    public static func parse(_ text: String, maxDepth: Int = defaultMaxDepth) throws -> JSONValue {
        try parse(Array(text.utf8), maxDepth: maxDepth)
    }

    /// The offset where arrays and objects first nest deeper than `maxDepth` (brackets inside
    /// strings aside), or nil. A scan, not a parse: it never recurses.
    static func exceedsDepth(_ bytes: [UInt8], _ maxDepth: Int) -> Int? {
        var depth = 0
        var inString = false
        var escaped = false
        for (offset, byte) in bytes.enumerated() {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > maxDepth { return offset }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
        return nil
    }

    /// Parses bytes that must hold a JSON object; any failure is an AuthError with `code`.
    static func parseObject(
        _ bytes: [UInt8],
        code: ErrorCode,
        what: String,
        maxDepth: Int = defaultMaxDepth
    ) throws -> [String: JSONValue] {
        let value: JSONValue
        do {
            do {
                value = try parse(bytes, maxDepth: maxDepth)
            } catch let error as ParseError where error.message.contains("too big") {
                // An integer beyond 64 bits: read the numbers as reals, so the claim that holds
                // it is judged (out of range) instead of the whole object being unreadable.
                value = try parse(bytes, maxDepth: maxDepth, bigIntegersAsReals: true)
            }
        } catch let error as ParseError {
            if error.message.hasPrefix("nested deeper") {
                throw AuthError(code, "the \(what) are nested deeper than \(maxDepth) levels")
            }
            throw AuthError(code, "the \(what) are not valid JSON (duplicate keys are refused)")
        }
        guard let object = value.objectValue else { throw AuthError(code, "the \(what) are not a JSON object") }
        return object
    }

    private static func convert(_ node: UnsafeMutablePointer<json_t>) -> JSONValue {
        switch fma_json_type(node) {
        case JSON_OBJECT:
            var object = [String: JSONValue]()
            var iterator = json_object_iter(node)
            while let current = iterator {
                if let keyPointer = json_object_iter_key(current), let value = json_object_iter_value(current) {
                    let keyLength = json_object_iter_key_len(current)
                    let key = keyPointer.withMemoryRebound(to: UInt8.self, capacity: keyLength) {
                        String(decoding: UnsafeBufferPointer(start: $0, count: keyLength), as: UTF8.self)
                    }
                    object[key] = convert(value)
                }
                iterator = json_object_iter_next(node, current)
            }
            return .object(object)
        case JSON_ARRAY:
            let count = json_array_size(node)
            return .array((0..<count).compactMap { json_array_get(node, $0).map(convert) })
        case JSON_STRING:
            let length = json_string_length(node)
            guard let pointer = json_string_value(node) else { return .string("") }
            return .string(
                pointer.withMemoryRebound(to: UInt8.self, capacity: length) {
                    String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
                }
            )
        case JSON_INTEGER:
            return .int(Int64(json_integer_value(node)))
        case JSON_REAL:
            return .double(json_real_value(node))
        case JSON_TRUE:
            return .bool(true)
        case JSON_FALSE:
            return .bool(false)
        default:
            return .null
        }
    }

    // MARK: - Accessors

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
    public var objectValue: [String: JSONValue]? {
        if case .object(let o) = self { return o }
        return nil
    }
    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// A JSON number as Double (integers included).
    public var numberValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    /// A string, or an array made only of strings.
    public var stringOrStringArray: [String]? {
        switch self {
        case .string(let s): return [s]
        case .array(let items):
            var out = [String]()
            for item in items {
                guard let s = item.stringValue else { return nil }
                out.append(s)
            }
            return out
        default: return nil
        }
    }

    public subscript(key: String) -> JSONValue? { objectValue?[key] }

    // MARK: - Serialization

    /// How JSON text is written. Object keys are always sorted, so output is deterministic.
    public struct Style: Sendable {
        /// `{"a":1}` (compact) or `{"a": 1, "b": 2}` (Python's json.dumps default separators).
        public var spaced = false
        /// Escape every non-ASCII character as \uXXXX (Python's ensure_ascii).
        public var asciiOnly = false
        public static let compact = Style()
        /// json.dumps(value, sort_keys=True) as Python writes it.
        public static let python = Style(spaced: true, asciiOnly: true)
        /// json.dumps(value, separators=(",", ":")) as Python writes it.
        public static let pythonCompact = Style(spaced: false, asciiOnly: true)
    }

    /// Compact JSON with object keys sorted, so output is deterministic.
    public func serialized(_ style: Style = .compact) -> String {
        var out = ""
        write(into: &out, style)
        return out
    }

    private func write(into out: inout String, _ style: Style) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            // Integral doubles keep their ".0" (as Python's repr) so a float stays a float.
            if d.isFinite, d == d.rounded(), abs(d) < 1e16 {
                out += String(Int64(d)) + ".0"
            } else if d.isFinite {
                out += "\(d)"
            } else {
                out += "null"
            }
        case .string(let s): JSONValue.writeString(s, into: &out, asciiOnly: style.asciiOnly)
        case .array(let items):
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += style.spaced ? ", " : "," }
                item.write(into: &out, style)
            }
            out += "]"
        case .object(let object):
            out += "{"
            for (index, member) in object.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { out += style.spaced ? ", " : "," }
                JSONValue.writeString(member.key, into: &out, asciiOnly: style.asciiOnly)
                out += style.spaced ? ": " : ":"
                member.value.write(into: &out, style)
            }
            out += "}"
        }
    }

    private static func writeString(_ s: String, into out: inout String, asciiOnly: Bool) {
        out += "\""
        // Fast path: printable ASCII without quote or backslash (tokens, base64, URLs) goes as is.
        if s.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
            out += s
            out += "\""
            return
        }
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 || (asciiOnly && scalar.value > 0x7E) {
                    // Outside the BMP: a UTF-16 surrogate pair, as JSON requires.
                    for unit in String(scalar).utf16 {
                        let hex = String(unit, radix: 16)
                        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                    }
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral
{
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(nilLiteral: ()) { self = .null }
}
