/// Where and why a JSON text is not valid. `offset` is the 0-based byte offset of the problem;
/// `line` and `column` are 1-based (the column counts Unicode scalars, not bytes).
public struct JSONParseError: Error, Sendable, Hashable, CustomStringConvertible {
    public var offset: Int
    public var line: Int
    public var column: Int
    public var message: String

    public init(offset: Int, line: Int, column: Int, message: String) {
        self.offset = offset
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String { "line \(line), column \(column): \(message)" }
}

/// A byte-level RFC 8259 JSON parser producing `JSONValue`, without Foundation.
///
/// Strict on purpose, since its input decides who gets in:
/// - exactly one value, surrounded only by JSON whitespace (space, tab, LF, CR): trailing garbage,
///   a byte order mark, comments, trailing commas, single quotes, `NaN` and the like are errors;
/// - strings must be valid UTF-8 without raw control characters; every escape of RFC 8259 §7 is
///   decoded, `\uXXXX` surrogate pairs are joined and an unpaired surrogate is an error;
/// - numbers follow the RFC grammar (no leading zeros, no `+`, no bare `.`); one whose magnitude
///   does not fit a `Double` (`1e400`) is an error rather than a silent infinity;
/// - arrays and objects nest at most `maxDepth` (default 64) deep;
/// - **duplicate object keys are rejected.** RFC 8259 leaves their meaning open and parsers disagree
///   (first wins, last wins, both kept): a gateway or a log pipeline reading the same body with
///   another parser could then see a different principal or path than the one we judge. In an
///   authorization request that ambiguity is an attack surface, so it is an error here. Keys are
///   compared as Swift strings, that is up to Unicode canonical equivalence: `"é"` and `"e\u0301"`
///   are the same key, hence duplicates.
/// The maximum size of a body is the caller's business.
public enum JSONParser {
    public static let defaultMaxDepth = 64

    public static func parse(_ bytes: [UInt8], maxDepth: Int = defaultMaxDepth) throws(JSONParseError) -> JSONValue {
        let result: Result<JSONValue, JSONParseError> = bytes.withUnsafeBufferPointer { buffer in
            parseResult(buffer, maxDepth: maxDepth)
        }
        return try result.get()
    }

    public static func parse(_ text: String, maxDepth: Int = defaultMaxDepth) throws(JSONParseError) -> JSONValue {
        var text = text
        let result: Result<JSONValue, JSONParseError> = text.withUTF8 { buffer in
            parseResult(buffer, maxDepth: maxDepth)
        }
        return try result.get()
    }

    public static func parse(_ buffer: UnsafeBufferPointer<UInt8>,
                             maxDepth: Int = defaultMaxDepth) throws(JSONParseError) -> JSONValue {
        try parseResult(buffer, maxDepth: maxDepth).get()
    }

    static func parseResult(_ buffer: UnsafeBufferPointer<UInt8>, maxDepth: Int) -> Result<JSONValue, JSONParseError> {
        var cursor = Cursor(buffer, maxDepth: maxDepth)
        do throws(JSONParseError) {
            return .success(try cursor.parseDocument())
        } catch {
            return .failure(error)
        }
    }

    /// Line and column (1-based) of a byte offset; only computed when reporting an error.
    static func position(of offset: Int, in buffer: UnsafeBufferPointer<UInt8>) -> (line: Int, column: Int) {
        var line = 1
        var column = 1
        var index = 0
        let end = min(offset, buffer.count)
        while index < end {
            let byte = buffer[index]
            if byte == 0x0A {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {  // not a UTF-8 continuation byte
                column += 1
            }
            index += 1
        }
        return (line, column)
    }
}

// ASCII bytes used below.
private let quote: UInt8 = 0x22  // "
private let backslash: UInt8 = 0x5C  // \
private let slash: UInt8 = 0x2F  // /
private let comma: UInt8 = 0x2C  // ,
private let colon: UInt8 = 0x3A  // :
private let openBrace: UInt8 = 0x7B  // {
private let closeBrace: UInt8 = 0x7D  // }
private let openBracket: UInt8 = 0x5B  // [
private let closeBracket: UInt8 = 0x5D  // ]
private let minus: UInt8 = 0x2D  // -
private let plus: UInt8 = 0x2B  // +
private let dot: UInt8 = 0x2E  // .
private let zero: UInt8 = 0x30
private let nine: UInt8 = 0x39

/// Bytes that a string copies without a second look: ASCII, not a control character, `"` or `\`.
/// Bit masks over 0-63 and 64-127 (constants: a global table costs a lazy-initialization check per call).
@inline(__always)
private func stringByteIsPlain(_ byte: UInt8) -> Bool {
    let low: UInt64 = 0xFFFF_FFFB_0000_0000  // 0x20-0x3F except 0x22 (")
    let high: UInt64 = ~(1 << 28)  // 0x40-0x7F except 0x5C (\)
    guard byte < 0x80 else { return false }
    return ((byte < 0x40 ? low : high) >> UInt64(byte & 0x3F)) & 1 == 1
}

extension JSONParser {
    struct Cursor {
        let base: UnsafeBufferPointer<UInt8>
        let count: Int
        let maxDepth: Int
        var index = 0
        var depth = 0

        init(_ base: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
            self.base = base
            self.count = base.count
            self.maxDepth = maxDepth
        }

        func error(_ message: String, at offset: Int) -> JSONParseError {
            let (line, column) = JSONParser.position(of: offset, in: base)
            return JSONParseError(offset: offset, line: line, column: column, message: message)
        }

        func describe(_ byte: UInt8) -> String {
            if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
            return "byte 0x\(String(byte, radix: 16, uppercase: true))"
        }

        mutating func parseDocument() throws(JSONParseError) -> JSONValue {
            try beginDocument()
            let value = try parseValue()
            try endDocument()
            return value
        }

        /// Checks what may precede the one value of a document and moves to it.
        mutating func beginDocument() throws(JSONParseError) {
            if count >= 3 && base[0] == 0xEF && base[1] == 0xBB && base[2] == 0xBF {
                throw error("a byte order mark is not allowed", at: 0)
            }
            skipWhitespace()
            if index == count { throw error("empty document", at: index) }
        }

        /// Checks that nothing but whitespace follows the value.
        mutating func endDocument() throws(JSONParseError) {
            skipWhitespace()
            if index != count {
                throw error("unexpected \(describe(base[index])) after the JSON value", at: index)
            }
        }

        @inline(__always)
        mutating func skipWhitespace() {
            while index < count {
                let byte = base[index]
                guard byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 else { return }
                index += 1
            }
        }

        mutating func parseValue() throws(JSONParseError) -> JSONValue {
            guard index < count else { throw error("unexpected end of input, expected a value", at: index) }
            switch base[index] {
            case quote: return .string(try parseString())
            case openBrace: return try parseObject()
            case openBracket: return try parseArray()
            case minus, zero...nine: return .number(try parseNumber())
            case UInt8(ascii: "t"):
                try expectLiteral("true")
                return .bool(true)
            case UInt8(ascii: "f"):
                try expectLiteral("false")
                return .bool(false)
            case UInt8(ascii: "n"):
                try expectLiteral("null")
                return .null
            default:
                throw error("unexpected \(describe(base[index])), expected a value", at: index)
            }
        }

        mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
            let length = literal.utf8CodeUnitCount
            let start = index
            guard count - index >= length else { throw error("invalid literal, expected \(literal)", at: start) }
            let bytes = literal.utf8Start
            for offset in 0..<length where base[index + offset] != bytes[offset] {
                throw error("invalid literal, expected \(literal)", at: start)
            }
            index += length
        }

        mutating func enter() throws(JSONParseError) {
            depth += 1
            if depth > maxDepth { throw error("nesting is deeper than \(maxDepth) levels", at: index) }
        }

        /// An object, through the same pull interface the request decoders use (one reading of the syntax).
        mutating func parseObject() throws(JSONParseError) -> JSONValue {
            try enterContainer()
            var members: [String: JSONValue] = [:]
            var first = true
            while try nextMember(first: &first) {
                let key = try readKey()
                let value = try parseValue()
                let name = key.string(base)
                if members.updateValue(value, forKey: name) != nil { throw duplicateKey(name, at: key.offset) }
            }
            return .object(members)
        }

        mutating func parseArray() throws(JSONParseError) -> JSONValue {
            try enterContainer()
            var elements: [JSONValue] = []
            var first = true
            while try nextElement(first: &first) { elements.append(try parseValue()) }
            return .array(elements)
        }

        // MARK: Numbers

        mutating func parseNumber() throws(JSONParseError) -> Double {
            let start = index
            var negative = false
            if base[index] == minus {
                negative = true
                index += 1
            }
            guard index < count, base[index] >= zero && base[index] <= nine else {
                throw error("invalid number: expected a digit", at: index)
            }
            let integerStart = index
            if base[index] == zero {
                index += 1
                if index < count && base[index] >= zero && base[index] <= nine {
                    throw error("invalid number: leading zeros are not allowed", at: integerStart)
                }
            } else {
                while index < count && base[index] >= zero && base[index] <= nine { index += 1 }
            }
            let integerDigits = index - integerStart
            var isInteger = true
            if index < count && base[index] == dot {
                isInteger = false
                index += 1
                guard index < count, base[index] >= zero && base[index] <= nine else {
                    throw error("invalid number: expected a digit after '.'", at: index)
                }
                while index < count && base[index] >= zero && base[index] <= nine { index += 1 }
            }
            if index < count && (base[index] == UInt8(ascii: "e") || base[index] == UInt8(ascii: "E")) {
                isInteger = false
                index += 1
                if index < count && (base[index] == plus || base[index] == minus) { index += 1 }
                guard index < count, base[index] >= zero && base[index] <= nine else {
                    throw error("invalid number: expected a digit in the exponent", at: index)
                }
                while index < count && base[index] >= zero && base[index] <= nine { index += 1 }
            }
            if isInteger && integerDigits <= 15 {
                // Exact in a Double: no need for the general conversion.
                var value: Int64 = 0
                for offset in integerStart..<index { value = value &* 10 &+ Int64(base[offset] &- zero) }
                if negative { return value == 0 ? -0.0 : -Double(value) }
                return Double(value)
            }
            // General case: the standard library's correctly rounded conversion (no Foundation).
            let text = String(decoding: UnsafeBufferPointer(rebasing: base[start..<index]), as: UTF8.self)
            guard let value = Double(text), value.isFinite else {
                throw error("number \(text) is out of range", at: start)
            }
            return value
        }

        // MARK: Strings

        /// Parses a string at `index` (which holds the opening quote).
        mutating func parseString() throws(JSONParseError) -> String {
            let open = index
            let (position, escaped) = try scanString()
            if escaped { return try parseEscapedString(open: open, firstEscape: position) }
            index = position + 1
            return String(decoding: UnsafeBufferPointer(rebasing: base[(open + 1)..<position]), as: UTF8.self)
        }

        /// Scans the string whose opening quote is at `index`, without moving: the offset of the closing
        /// quote when the string has no escape (its bytes are then the string, validated), else the offset
        /// of the first backslash.
        @inline(__always)
        func scanString() throws(JSONParseError) -> (position: Int, escaped: Bool) {
            var cursor = index + 1
            while true {
                // Plain ASCII bytes are the common case: one table look-up each.
                while cursor < count && stringByteIsPlain(base[cursor]) { cursor += 1 }
                guard cursor < count else { throw error("unterminated string", at: index) }
                let byte = base[cursor]
                if byte == quote { return (cursor, false) }
                if byte == backslash { return (cursor, true) }
                if byte < 0x20 { throw error("unescaped control character \(describe(byte)) in a string", at: cursor) }
                cursor = try validateUTF8(at: cursor)
            }
        }

        mutating func parseEscapedString(open: Int, firstEscape: Int) throws(JSONParseError) -> String {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(firstEscape - open + 16)
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: base[(open + 1)..<firstEscape]))
            var cursor = firstEscape
            while cursor < count {
                let byte = base[cursor]
                if byte == quote {
                    index = cursor + 1
                    return String(decoding: bytes, as: UTF8.self)
                }
                if byte == backslash {
                    cursor += 1
                    guard cursor < count else { break }
                    switch base[cursor] {
                    case quote: bytes.append(quote)
                    case backslash: bytes.append(backslash)
                    case slash: bytes.append(slash)
                    case UInt8(ascii: "b"): bytes.append(0x08)
                    case UInt8(ascii: "f"): bytes.append(0x0C)
                    case UInt8(ascii: "n"): bytes.append(0x0A)
                    case UInt8(ascii: "r"): bytes.append(0x0D)
                    case UInt8(ascii: "t"): bytes.append(0x09)
                    case UInt8(ascii: "u"):
                        let escapeStart = cursor - 1
                        var scalar = try hex4(at: cursor + 1)
                        cursor += 4
                        if scalar >= 0xD800 && scalar <= 0xDBFF {
                            // A high surrogate must be followed by an escaped low surrogate.
                            guard cursor + 2 < count, base[cursor + 1] == backslash, base[cursor + 2] == UInt8(ascii: "u")
                            else { throw error("unpaired high surrogate \\u\(hex(scalar))", at: escapeStart) }
                            let low = try hex4(at: cursor + 3)
                            guard low >= 0xDC00 && low <= 0xDFFF else {
                                throw error("unpaired high surrogate \\u\(hex(scalar))", at: escapeStart)
                            }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                            cursor += 6
                        } else if scalar >= 0xDC00 && scalar <= 0xDFFF {
                            throw error("unpaired low surrogate \\u\(hex(scalar))", at: escapeStart)
                        }
                        appendUTF8(scalar, to: &bytes)
                    default:
                        throw error("invalid escape \\\(describe(base[cursor]))", at: cursor - 1)
                    }
                    cursor += 1
                } else if byte < 0x20 {
                    throw error("unescaped control character \(describe(byte)) in a string", at: cursor)
                } else if byte < 0x80 {
                    bytes.append(byte)
                    cursor += 1
                } else {
                    let end = try validateUTF8(at: cursor)
                    bytes.append(contentsOf: UnsafeBufferPointer(rebasing: base[cursor..<end]))
                    cursor = end
                }
            }
            throw error("unterminated string", at: open)
        }

        func hex(_ value: UInt32) -> String {
            let digits = String(value, radix: 16, uppercase: true)
            return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
        }

        func hex4(at offset: Int) throws(JSONParseError) -> UInt32 {
            guard offset + 4 <= count else { throw error("invalid \\u escape: expected 4 hex digits", at: offset - 2) }
            var value: UInt32 = 0
            for position in offset..<(offset + 4) {
                let byte = base[position]
                let digit: UInt8
                switch byte {
                case zero...nine: digit = byte - zero
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw error("invalid \\u escape: expected 4 hex digits", at: offset - 2)
                }
                value = value << 4 | UInt32(digit)
            }
            return value
        }

        func appendUTF8(_ scalar: UInt32, to bytes: inout [UInt8]) {
            switch scalar {
            case 0..<0x80:
                bytes.append(UInt8(scalar))
            case 0x80..<0x800:
                bytes.append(UInt8(0xC0 | scalar >> 6))
                bytes.append(UInt8(0x80 | scalar & 0x3F))
            case 0x800..<0x10000:
                bytes.append(UInt8(0xE0 | scalar >> 12))
                bytes.append(UInt8(0x80 | (scalar >> 6) & 0x3F))
                bytes.append(UInt8(0x80 | scalar & 0x3F))
            default:
                bytes.append(UInt8(0xF0 | scalar >> 18))
                bytes.append(UInt8(0x80 | (scalar >> 12) & 0x3F))
                bytes.append(UInt8(0x80 | (scalar >> 6) & 0x3F))
                bytes.append(UInt8(0x80 | scalar & 0x3F))
            }
        }

        /// Checks the multi-byte UTF-8 sequence starting at `offset` (Unicode §3.9, table 3-7: no
        /// overlong forms, no surrogates, nothing above U+10FFFF) and returns the offset after it.
        func validateUTF8(at offset: Int) throws(JSONParseError) -> Int {
            let lead = base[offset]
            let length: Int
            var low: UInt8 = 0x80
            var high: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; high = 0x9F
            case 0xF0: length = 4; low = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; high = 0x8F
            default: throw error("invalid UTF-8", at: offset)
            }
            guard offset + length <= count else { throw error("invalid UTF-8", at: offset) }
            let second = base[offset + 1]
            guard second >= low && second <= high else { throw error("invalid UTF-8", at: offset) }
            var position = offset + 2
            while position < offset + length {
                guard base[position] & 0xC0 == 0x80 else { throw error("invalid UTF-8", at: offset) }
                position += 1
            }
            return offset + length
        }
        // MARK: Pull interface (for decoders reading a known shape without building `JSONValue`s)

        /// A member key: its bytes in the input when it has no escapes, else the decoded string.
        struct Key {
            let offset: Int
            let start: Int
            let end: Int
            let decoded: String?

            /// The position of the key among `names`, comparing UTF-8 bytes.
            func index(in names: [StaticString], _ base: UnsafeBufferPointer<UInt8>) -> Int? {
                if let decoded {
                    for (position, name) in names.enumerated() where decoded.utf8.elementsEqual(
                        UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)) {
                        return position
                    }
                    return nil
                }
                let length = end - start
                for (position, name) in names.enumerated() where name.utf8CodeUnitCount == length {
                    let bytes = name.utf8Start
                    var offset = 0
                    while offset < length && base[start + offset] == bytes[offset] { offset += 1 }
                    if offset == length { return position }
                }
                return nil
            }

            func string(_ base: UnsafeBufferPointer<UInt8>) -> String {
                decoded ?? String(decoding: UnsafeBufferPointer(rebasing: base[start..<end]), as: UTF8.self)
            }
        }

        @inline(__always)
        var current: UInt8? { index < count ? base[index] : nil }

        /// At `{` or `[`: enters the container.
        mutating func enterContainer() throws(JSONParseError) {
            try enter()
            index += 1
            skipWhitespace()
        }

        /// Moves to the next key of an object entered with `enterContainer` (true, at the key's quote) or past
        /// its closing brace (false).
        mutating func nextMember(first: inout Bool) throws(JSONParseError) -> Bool {
            if first {
                first = false
                if index < count && base[index] == closeBrace {
                    index += 1
                    depth -= 1
                    return false
                }
            } else {
                skipWhitespace()
                guard index < count else { throw error("unexpected end of input in an object", at: index) }
                let byte = base[index]
                index += 1
                if byte == closeBrace {
                    depth -= 1
                    return false
                }
                guard byte == comma else { throw error("unexpected \(describe(byte)), expected ',' or '}'", at: index - 1) }
                skipWhitespace()
            }
            guard index < count else { throw error("unexpected end of input in an object", at: index) }
            guard base[index] == quote else {
                throw error("unexpected \(describe(base[index])), expected a string key", at: index)
            }
            return true
        }

        /// Reads a member key and the colon after it; the cursor is then at the value.
        mutating func readKey() throws(JSONParseError) -> Key {
            let open = index
            let (position, escaped) = try scanString()
            let key: Key
            if escaped {
                key = Key(offset: open, start: 0, end: 0, decoded: try parseEscapedString(open: open, firstEscape: position))
            } else {
                key = Key(offset: open, start: open + 1, end: position, decoded: nil)
                index = position + 1
            }
            skipWhitespace()
            guard index < count, base[index] == colon else {
                throw error(index < count ? "unexpected \(describe(base[index])), expected ':'"
                                          : "unexpected end of input, expected ':'", at: index)
            }
            index += 1
            skipWhitespace()
            return key
        }

        /// Moves to the next element of an array entered with `enterContainer` (true) or past its closing
        /// bracket (false).
        mutating func nextElement(first: inout Bool) throws(JSONParseError) -> Bool {
            if first {
                first = false
                if index < count && base[index] == closeBracket {
                    index += 1
                    depth -= 1
                    return false
                }
                return true
            }
            skipWhitespace()
            guard index < count else { throw error("unexpected end of input in an array", at: index) }
            let byte = base[index]
            index += 1
            if byte == closeBracket {
                depth -= 1
                return false
            }
            guard byte == comma else { throw error("unexpected \(describe(byte)), expected ',' or ']'", at: index - 1) }
            skipWhitespace()
            return true
        }

        func duplicateKey(_ key: String, at offset: Int) -> JSONParseError {
            error("duplicate key \"\(key)\"", at: offset)
        }
    }
}
