import MeshAuthz
import Testing

struct JSONParserTests {
    struct Valid: Sendable, CustomTestStringConvertible {
        let input: String
        let expected: JSONValue
        var testDescription: String { input }
        init(_ input: String, _ expected: JSONValue) {
            self.input = input
            self.expected = expected
        }
    }

    static let valid: [Valid] = [
        Valid("null", .null),
        Valid("true", .bool(true)),
        Valid("false", .bool(false)),
        Valid(" \t\r\n 42 \n", .number(42)),
        Valid("0", .number(0)),
        Valid("-7", .number(-7)),
        Valid("3.25", .number(3.25)),
        Valid("1e2", .number(100)),
        Valid("1E+2", .number(100)),
        Valid("25e-1", .number(2.5)),
        Valid("-1.5e-3", .number(-0.0015)),
        Valid("0.1", .number(0.1)),
        Valid("123456789012345", .number(123_456_789_012_345)),
        Valid("9007199254740993", .number(9_007_199_254_740_992)),  // rounds to nearest, like any Double parser
        Valid("12345678901234567890", .number(1.2345678901234567e19)),
        Valid("1e308", .number(1e308)),
        Valid("1e-400", .number(0)),  // underflow is zero, not an error
        Valid("\"\"", .string("")),
        Valid("\"plain\"", .string("plain")),
        Valid(#""q\"b\\s\/n\nr\rt\tb\bf\f""#, .string("q\"b\\s/n\nr\rt\tb\u{8}f\u{C}")),
        Valid(#""\u0041\u00e9\u4E2D""#, .string("Aé中")),
        Valid(#""\u0000""#, .string("\u{0}")),
        Valid(#""\uD83D\uDE00""#, .string("😀")),
        Valid(#""\ud83d\ude00x""#, .string("😀x")),
        Valid(#""\uDBFF\uDFFF""#, .string("\u{10FFFF}")),
        Valid("\"héllo 中 😀\"", .string("héllo 中 😀")),
        Valid("\"a\u{7F}b\"", .string("a\u{7F}b")),  // DEL is not a control character for JSON
        Valid("[]", .array([])),
        Valid("[ 1 , \"x\" , [ ] , { } ]", .array([.number(1), .string("x"), .array([]), .object([:])])),
        Valid("{}", .object([:])),
        Valid(#"{"a":{"b":[true,null]},"c":"d"}"#,
              .object(["a": .object(["b": .array([.bool(true), .null])]), "c": .string("d")])),
        Valid(#"{"":1}"#, .object(["": .number(1)])),
        Valid(#"{"a":1,"A":2}"#, .object(["a": .number(1), "A": .number(2)])),  // keys are case-sensitive
        Valid(String(repeating: "[", count: 64) + String(repeating: "]", count: 64),
              (0..<63).reduce(JSONValue.array([])) { inner, _ in .array([inner]) }),
    ]

    @Test(arguments: valid)
    func parsesValid(_ test: Valid) throws {
        #expect(try JSONParser.parse(test.input) == test.expected)
        #expect(try JSONParser.parse(Array(test.input.utf8)) == test.expected)
    }

    @Test func negativeZeroKeepsItsSign() throws {
        guard case .number(let value) = try JSONParser.parse("-0") else {
            Issue.record("not a number")
            return
        }
        #expect(value == 0 && value.sign == .minus)
        guard case .number(let fraction) = try JSONParser.parse("-0.0") else { return }
        #expect(fraction.sign == .minus)
    }

    struct Invalid: Sendable, CustomTestStringConvertible {
        let input: [UInt8]
        let message: String
        let offset: Int?
        var testDescription: String { String(decoding: input, as: UTF8.self).debugDescription }
        init(_ input: String, _ message: String, at offset: Int? = nil) {
            self.input = Array(input.utf8)
            self.message = message
            self.offset = offset
        }
        init(bytes: [UInt8], _ message: String, at offset: Int? = nil) {
            self.input = bytes
            self.message = message
            self.offset = offset
        }
    }

    static let invalid: [Invalid] = [
        Invalid("", "empty document", at: 0),
        Invalid("   \n ", "empty document"),
        Invalid("nul", "expected null", at: 0),
        Invalid("True", "expected a value", at: 0),
        Invalid("tru e", "expected true"),
        Invalid("NaN", "expected a value"),
        Invalid("Infinity", "expected a value"),
        Invalid("-Infinity", "expected a digit"),
        Invalid("'a'", "expected a value"),
        Invalid("1 2", "after the JSON value", at: 2),
        Invalid("{} x", "after the JSON value", at: 3),
        Invalid("{}}", "after the JSON value", at: 2),
        Invalid("[1]]", "after the JSON value"),
        Invalid("\"a\"\u{0}", "after the JSON value"),
        Invalid("// c\n1", "expected a value"),
        Invalid("01", "leading zeros", at: 0),
        Invalid("-01", "leading zeros"),
        Invalid("+1", "expected a value"),
        Invalid(".5", "expected a value"),
        Invalid("1.", "after '.'"),
        Invalid("1.e3", "after '.'"),
        Invalid("1e", "exponent"),
        Invalid("1e+", "exponent"),
        Invalid("-", "expected a digit"),
        Invalid("0x10", "after the JSON value"),
        Invalid("1e400", "out of range", at: 0),
        Invalid("-1e400", "out of range"),
        Invalid(String(repeating: "9", count: 400), "out of range"),
        Invalid("\"abc", "unterminated string", at: 0),
        Invalid("\"abc\\", "unterminated string"),
        Invalid("\"a\nb\"", "control character", at: 2),
        Invalid("\"a\tb\"", "control character"),
        Invalid("\"\u{1F}\"", "control character"),
        Invalid(#""\x""#, "invalid escape"),
        Invalid(#""\'""#, "invalid escape"),
        Invalid(#""\u12""#, "4 hex digits"),
        Invalid(#""\u12G4""#, "4 hex digits"),
        Invalid(#""\uD800""#, "unpaired high surrogate"),
        Invalid(#""\uD800x""#, "unpaired high surrogate"),
        Invalid(#""\uD800\u0041""#, "unpaired high surrogate"),
        Invalid(#""\uD800\uD800""#, "unpaired high surrogate"),
        Invalid(#""\uDC00""#, "unpaired low surrogate"),
        Invalid(#""\uDFFF\uD800""#, "unpaired low surrogate"),
        Invalid(bytes: [0x22, 0xC0, 0x80, 0x22], "invalid UTF-8", at: 1),  // overlong NUL
        Invalid(bytes: [0x22, 0xE0, 0x80, 0xAF, 0x22], "invalid UTF-8"),  // overlong "/"
        Invalid(bytes: [0x22, 0xED, 0xA0, 0x80, 0x22], "invalid UTF-8"),  // encoded surrogate
        Invalid(bytes: [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], "invalid UTF-8"),  // above U+10FFFF
        Invalid(bytes: [0x22, 0xF5, 0x80, 0x80, 0x80, 0x22], "invalid UTF-8"),
        Invalid(bytes: [0x22, 0x80, 0x22], "invalid UTF-8"),  // lone continuation byte
        Invalid(bytes: [0x22, 0xC3, 0x22], "invalid UTF-8"),  // truncated sequence
        Invalid(bytes: [0x22, 0x5C, 0x6E, 0xFF, 0x22], "invalid UTF-8"),  // after an escape
        Invalid(bytes: [0xEF, 0xBB, 0xBF, 0x7B, 0x7D], "byte order mark", at: 0),
        Invalid(bytes: [0xFF], "expected a value"),
        Invalid("[", "end of input"),
        Invalid("[1", "end of input in an array"),
        Invalid("[1,]", "expected a value"),
        Invalid("[1 2]", "expected ',' or ']'", at: 3),
        Invalid("[,1]", "expected a value"),
        Invalid("{", "end of input in an object"),
        Invalid("{\"a\"}", "expected ':'"),
        Invalid("{\"a\" 1}", "expected ':'"),
        Invalid("{\"a\":}", "expected a value"),
        Invalid("{\"a\":1,}", "expected a string key"),
        Invalid("{\"a\":1 \"b\":2}", "expected ',' or '}'"),
        Invalid("{a:1}", "expected a string key", at: 1),
        Invalid("{1:1}", "expected a string key"),
        Invalid(#"{"a":1,"a":2}"#, "duplicate key \"a\"", at: 7),
        Invalid(#"{"a":1,"b":{"c":1,"c":1}}"#, "duplicate key \"c\""),
        Invalid(#"{"a":1,"\u0061":2}"#, "duplicate key \"a\""),  // duplicates after unescaping too
        // Keys are Swift strings, compared by canonical equivalence: "é" and "e\u0301" are one key.
        Invalid(#"{"e\u0301":1,"é":2}"#, "duplicate key"),
        Invalid(String(repeating: "[", count: 65) + String(repeating: "]", count: 65), "deeper than 64", at: 64),
        Invalid(String(repeating: "{\"a\":", count: 65) + "1" + String(repeating: "}", count: 65), "deeper than 64"),
        Invalid(String(repeating: "[", count: 100_000), "deeper than 64"),
    ]

    @Test(arguments: invalid)
    func rejectsInvalid(_ test: Invalid) {
        #expect {
            _ = try JSONParser.parse(test.input)
        } throws: { error in
            guard let error = error as? JSONParseError else { return false }
            if let offset = test.offset, error.offset != offset { return false }
            return error.message.contains(test.message)
        }
    }

    struct Position: Sendable, CustomTestStringConvertible {
        let input: String
        let offset: Int
        let line: Int
        let column: Int
        var testDescription: String { input.debugDescription }
    }

    static let positions: [Position] = [
        Position(input: "[1,\n 2,\n  x]", offset: 10, line: 3, column: 3),
        Position(input: "{\n\"a\": 1,\n\"a\": 2}", offset: 10, line: 3, column: 1),
        Position(input: "[\"é\", x]", offset: 7, line: 1, column: 7),  // columns count characters, not bytes
        Position(input: "\r\n[\r\n?", offset: 5, line: 3, column: 1),
    ]

    @Test(arguments: positions)
    func reportsLineAndColumn(_ test: Position) {
        do {
            _ = try JSONParser.parse(test.input)
            Issue.record("parsed")
        } catch {
            #expect(error.offset == test.offset)
            #expect(error.line == test.line)
            #expect(error.column == test.column)
            #expect(error.description.hasPrefix("line \(test.line), column \(test.column): "))
        }
    }

    @Test(arguments: valid)
    func writerOutputParsesBack(_ test: Valid) throws {
        let value = try JSONParser.parse(test.input)
        #expect(try JSONParser.parse(value.jsonBytes) == value)
    }

    @Test func largeDocument() throws {
        var text = "["
        for index in 0..<5000 {
            if index > 0 { text += "," }
            text += #"{"i":\#(index),"s":"value \#(index) \u00e9","a":[1.5,true,null]}"#
        }
        text += "]"
        guard case .array(let elements) = try JSONParser.parse(text) else {
            Issue.record("not an array")
            return
        }
        #expect(elements.count == 5000)
        #expect(elements[4999]["s"] == .string("value 4999 é"))
        #expect(elements[4999]["i"] == .number(4999))
    }
}
