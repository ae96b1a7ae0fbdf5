/// A small JSON writer appending UTF-8 to a byte buffer, without Foundation.
///
/// Commas are placed automatically: call `key(_:)` before each member value of an object and the
/// value writers in sequence inside arrays. Strings are escaped as RFC 8259 requires (`"`, `\` and
/// the control characters U+0000–U+001F; `\n`, `\r`, `\t`, `\b`, `\f` in their short form, the
/// others as `\u00XX`); everything else, non-ASCII included, is copied as UTF-8.
public struct JSONWriter: Sendable {
    public private(set) var bytes: [UInt8]
    /// Whether the next member or element needs a comma before it.
    private var needsComma = false

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    // MARK: Structure

    public mutating func beginObject() {
        separate()
        bytes.append(0x7B)
        needsComma = false
    }

    public mutating func endObject() {
        bytes.append(0x7D)
        needsComma = true
    }

    public mutating func beginArray() {
        separate()
        bytes.append(0x5B)
        needsComma = false
    }

    public mutating func endArray() {
        bytes.append(0x5D)
        needsComma = true
    }

    /// An object member's key; the value written next is its value.
    public mutating func key(_ name: String) {
        separate()
        appendQuoted(name)
        bytes.append(0x3A)
        needsComma = false
    }

    /// An object member's key known at compile time and needing no escape (`"time"`): appended as is. For writers
    /// on a hot path (the decision log), where escaping a constant costs more than the rest of the member.
    public mutating func staticKey(_ name: StaticString) {
        separate()
        bytes.append(0x22)
        appendRaw(name)
        bytes.append(0x22)
        bytes.append(0x3A)
        needsComma = false
    }

    // MARK: Values

    /// A string value known at compile time and needing no escape (`"ALLOW"`), appended as is.
    public mutating func staticString(_ value: StaticString) {
        separate()
        bytes.append(0x22)
        appendRaw(value)
        bytes.append(0x22)
        needsComma = true
    }

    public mutating func string(_ value: String) {
        separate()
        appendQuoted(value)
        needsComma = true
    }

    public mutating func string(_ value: Substring) {
        separate()
        appendQuoted(value)
        needsComma = true
    }

    /// A string given as bytes (a header value, borrowed): escaped as any string; bytes that are not valid UTF-8
    /// become U+FFFD, so the output is always valid JSON text (a log line a shipper can parse).
    public mutating func string(bytes utf8: UnsafeBufferPointer<UInt8>) {
        separate()
        // One pass for the usual case, printable ASCII: copied in one piece.
        var plain = 0
        while plain < utf8.count && utf8[plain] >= 0x20 && utf8[plain] < 0x80 && utf8[plain] != 0x22 && utf8[plain] != 0x5C {
            plain += 1
        }
        bytes.append(0x22)
        if plain == utf8.count {
            bytes.append(contentsOf: utf8)
        } else if !utf8[plain...].contains(where: { $0 >= 0x80 }) {
            appendEscaped(utf8)
        } else {
            appendEscaped(String(decoding: utf8, as: UTF8.self))
        }
        bytes.append(0x22)
        needsComma = true
    }

    public mutating func optionalString(_ value: String?) {
        if let value { string(value) } else { null() }
    }

    public mutating func bool(_ value: Bool) {
        separate()
        if value {
            bytes.append(contentsOf: [0x74, 0x72, 0x75, 0x65])  // true
        } else {
            bytes.append(contentsOf: [0x66, 0x61, 0x6C, 0x73, 0x65])  // false
        }
        needsComma = true
    }

    public mutating func null() {
        separate()
        bytes.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C])
        needsComma = true
    }

    public mutating func number(_ value: Int) {
        separate()
        appendInteger(value)
        needsComma = true
    }

    /// Integral values within ±2^53 are written without a fraction (`100`, `-0`); other finite
    /// values in the shortest form that reads back the same (`0.1`, `1e+300`); NaN and infinities,
    /// which JSON cannot express, as `null`.
    public mutating func number(_ value: Double) {
        separate()
        if !value.isFinite {
            bytes.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C])
        } else if value.rounded(.towardZero) == value && abs(value) <= 9_007_199_254_740_992 {
            if value == 0 && value.sign == .minus { bytes.append(0x2D) }
            appendInteger(Int(value))
        } else {
            bytes.append(contentsOf: value.description.utf8)
        }
        needsComma = true
    }

    /// Any `JSONValue`; object members in key order so that the output is deterministic.
    public mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let flag): bool(flag)
        case .number(let numeric): number(numeric)
        case .string(let text): string(text)
        case .array(let elements):
            beginArray()
            for element in elements { self.value(element) }
            endArray()
        case .object(let members):
            beginObject()
            for name in members.keys.sorted() {
                key(name)
                self.value(members[name]!)
            }
            endObject()
        }
    }

    /// Bytes that already form one complete JSON value (e.g. an encoded sub-document).
    public mutating func rawValue(_ json: [UInt8]) {
        separate()
        bytes.append(contentsOf: json)
        needsComma = true
    }

    // MARK: Internals

    @inline(__always)
    private mutating func separate() {
        if needsComma { bytes.append(0x2C) }
    }

    mutating func appendInteger(_ value: Int) {
        if value < 0 { bytes.append(0x2D) }
        var magnitude = value.magnitude
        if magnitude < 10 {
            bytes.append(0x30 + UInt8(magnitude))
            return
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for the 20 digits of UInt64.max
        withUnsafeMutableBytes(of: &digits) { buffer in
            var position = buffer.count
            while magnitude > 0 {
                position -= 1
                buffer[position] = 0x30 + UInt8(magnitude % 10)
                magnitude /= 10
            }
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[position...]))
        }
    }

    // Fragment writers for fixed shapes (see `Decision.writeJSON`): no comma bookkeeping, the caller
    // writes the punctuation inside a container it opened with `beginObject`/`beginArray`.

    /// Appends a fragment of JSON text as is.
    @inline(__always)
    mutating func appendRaw(_ fragment: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: fragment.utf8Start, count: fragment.utf8CodeUnitCount))
    }

    mutating func appendQuoted(_ text: String) {
        bytes.append(0x22)
        appendEscaped(text)
        bytes.append(0x22)
    }

    mutating func appendQuoted(_ text: Substring) {
        bytes.append(0x22)
        var text = text
        text.withUTF8 { appendEscaped($0) }
        bytes.append(0x22)
    }

    /// The escaped content of a string, without the quotes.
    mutating func appendEscaped(_ text: String) {
        if let done: Void = text.utf8.withContiguousStorageIfAvailable({ appendEscaped($0) }) { return done }
        var text = text
        text.withUTF8 { appendEscaped($0) }
    }

    mutating func appendEscaped(_ utf8: UnsafeBufferPointer<UInt8>) {
        var runStart = 0
        var index = 0
        let count = utf8.count
        while true {
            while index < count && !needsEscape(utf8[index]) { index += 1 }
            if runStart < index { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index])) }
            guard index < count else { return }
            let byte = utf8[index]
            switch byte {
            case 0x22: bytes.append(contentsOf: [0x5C, 0x22])
            case 0x5C: bytes.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: bytes.append(contentsOf: [0x5C, 0x6E])  // \n
            case 0x0D: bytes.append(contentsOf: [0x5C, 0x72])  // \r
            case 0x09: bytes.append(contentsOf: [0x5C, 0x74])  // \t
            case 0x08: bytes.append(contentsOf: [0x5C, 0x62])  // \b
            case 0x0C: bytes.append(contentsOf: [0x5C, 0x66])  // \f
            default:
                let low = byte & 0x0F
                bytes.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, 0x30 + (byte >> 4), low < 10 ? 0x30 + low : 0x57 + low])
            }
            index += 1
            runStart = index
        }
    }
}

/// Bytes a JSON string cannot hold as they are: `"`, `\` and the controls U+0000–U+001F.
/// (Comparisons rather than a table: a global table costs a lazy-initialization check per call.)
@inline(__always)
private func needsEscape(_ byte: UInt8) -> Bool { byte < 0x20 || byte == 0x22 || byte == 0x5C }

extension JSONValue {
    /// The value serialized by `JSONWriter` (object keys sorted).
    public var jsonBytes: [UInt8] {
        var writer = JSONWriter(capacity: 64)
        writer.value(self)
        return writer.bytes
    }
}
