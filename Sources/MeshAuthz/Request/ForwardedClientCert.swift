#if canImport(Glibc)
import Glibc
#endif

/// Envoy's `x-forwarded-client-cert` (XFCC) header, parsed.
///
/// Format (Envoy docs, configuration/http/http_conn_man/headers: "x-forwarded-client-cert"): the value is
/// a comma-separated list of elements, one per proxy hop, each proxy appending its own at the end. An
/// element is a `;`-separated list of `Key=Value` pairs with the keys `By` (the SAN of the proxy's own
/// certificate: never the caller), `Hash`, `Cert`, `Chain`, `Subject`, `URI` and `DNS` (may repeat).
/// Keys are case-insensitive, values case-sensitive. A value containing `,`, `;` or `=` is double-quoted,
/// with `"` inside written as `\"`; Envoy always quotes `Subject`, `Cert` and `Chain`
/// (`source/common/http/conn_manager_utility.cc`, `mutateXfccRequestHeader`). Example with mTLS and
/// `set_current_client_cert_details: {uri: true}`: `By=spiffe://.../gw;Hash=ab12...;URI=spiffe://cluster.local/ns/a/sa/b`.
///
/// Parsing choices: spaces and tabs around elements, pairs and keys are ignored (proxies joining
/// several header lines add `", "`); inside quotes a backslash takes the next character literally when
/// scanning for the closing quote, and only `\"` is unescaped (a `Subject` in RFC 2253 form keeps its own
/// `\,` escapes). A header that does not follow the format (an unterminated quote, a pair without `=`,
/// text after a closing quote) is rejected as a whole by `init(header:)`; `principal(fromHeader:)` reads
/// only the last element, so that what precedes it (client-controlled with `APPEND_FORWARD`) cannot hide it.
public struct ForwardedClientCert: Sendable, Hashable {
    public struct Pair: Sendable, Hashable {
        public var key: String
        public var value: String
        public init(key: String, value: String) {
            self.key = key
            self.value = value
        }
    }

    /// One element per proxy hop, in header order: the last is the one the nearest proxy added.
    public var elements: [[Pair]]

    public init(elements: [[Pair]]) {
        self.elements = elements
    }

    /// Parses a header value; nil when it is malformed or empty.
    public init?(header: Substring) {
        var header = header
        guard let elements = header.withUTF8({ ForwardedClientCert.parseElements($0) }), !elements.isEmpty else {
            return nil
        }
        self.elements = elements
    }

    public init?(header: String) {
        self.init(header: header[...])
    }

    /// The values of `key` (case-insensitive) in element `index`, in order.
    public func values(_ key: String, ofElement index: Int) -> [String] {
        guard elements.indices.contains(index) else { return [] }
        return elements[index].filter { ForwardedClientCert.keyEquals($0.key, key) }.map(\.value)
    }

    /// The first non-empty `URI=` of element `index`, nil when it has none.
    public func uri(ofElement index: Int) -> String? {
        guard elements.indices.contains(index) else { return nil }
        for pair in elements[index] where ForwardedClientCert.keyEquals(pair.key, "URI") && !pair.value.isEmpty {
            return pair.value
        }
        return nil
    }

    /// The caller's identity: the `URI=` of the last element, the one the nearest proxy added about the
    /// peer it verified. Never a `By=` (that is the proxy's own identity), never an earlier element
    /// (anyone upstream of the nearest proxy, the client included, can write those). A certificate with
    /// several URI SANs (Envoy writes one `URI=` each, in certificate order) yields the first (`/ext_authz`
    /// refuses such a caller: see `hasSeveralURIs`); a SPIFFE SVID has exactly one. Nil when the last element has no non-empty `URI=` or when the header is
    /// malformed. Whether the header is believed at all (who sent it) is the caller's decision.
    public var principal: String? {
        guard !elements.isEmpty else { return nil }
        return uri(ofElement: elements.count - 1)
    }

    /// The principal of a raw header value, as `principal` would give it, but robust to what came before
    /// the last element: only the last element is located (scanning back from the end of the header to
    /// the first comma outside quotes) and parsed. With `forward_client_cert_details: APPEND_FORWARD`
    /// everything before that comma is the client's to write; were a malformed prefix (an unbalanced
    /// quote, say) able to make the whole header unparseable, a caller could shed its principal and slip
    /// past a DENY rule keyed on it.
    public static func principal(fromHeader header: Substring) -> String? {
        var header = header
        return header.withUTF8 { bytes in
            lastURI(bytes).map { $0.uri.value(in: $0.element) }
        }
    }

    /// `principal(fromHeader:)` on bytes: calls `body` with the principal as policies match it (with
    /// `spiffe://`, added when the `URI=` lacks it), nil when there is none. No copy in the usual case.
    /// When the last element names several distinct URI SANs, `severalURIs` is called instead: Envoy's RBAC
    /// matches a principal against every URI SAN of the peer (any may match a DENY rule), so a caller that
    /// judges one identity must not pick one (SPIFFE SVIDs carry exactly one).
    public static func withPrincipal<R>(fromHeader bytes: UnsafeBufferPointer<UInt8>, severalURIs: () -> R,
                                        _ body: (UnsafeBufferPointer<UInt8>?) -> R) -> R {
        guard let (element, uri, several) = lastURI(bytes) else { return body(nil) }
        if several { return severalURIs() }
        let raw = UnsafeBufferPointer(rebasing: element[uri.valueStart..<uri.valueEnd])
        if !uri.hasEscape && hasSPIFFEScheme(raw) { return body(raw) }
        let principal = CheckRequest.Peer.withSPIFFEScheme(uri.value(in: element))
        return Array(principal.utf8).withUnsafeBufferPointer { body($0) }
    }

    /// Whether the last element names more than one distinct URI SAN (see `withPrincipal`).
    public static func hasSeveralURIs(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        lastURI(bytes)?.several ?? false
    }

    /// The last element, its first non-empty `URI=` pair, and whether a later non-empty `URI=` differs from
    /// it (as written); nil when the element is malformed or has none. An empty `URI=` is skipped: it must
    /// not hide a later one. One pass over the element.
    @inline(__always)
    private static func lastURI(_ bytes: UnsafeBufferPointer<UInt8>)
        -> (element: UnsafeBufferPointer<UInt8>, uri: RawPair, several: Bool)? {
        guard let start = lastElementStart(bytes) else { return nil }
        let element = UnsafeBufferPointer(rebasing: bytes[start...])
        var uri: RawPair?
        var several = false
        let wellFormed = scanElement(element) { pair in
            guard pair.valueEnd > pair.valueStart, pair.keyIs("uri", in: element) else { return }
            guard let first = uri else {
                uri = pair
                return
            }
            if !several {
                several = !UnsafeBufferPointer(rebasing: element[first.valueStart..<first.valueEnd])
                    .elementsEqual(UnsafeBufferPointer(rebasing: element[pair.valueStart..<pair.valueEnd]))
            }
        }
        guard wellFormed, let uri else { return nil }
        return (element, uri, several)
    }

    public static func principal(fromHeader header: String) -> String? {
        principal(fromHeader: header[...])
    }

    @inline(__always)
    private static func hasSPIFFEScheme(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let scheme: StaticString = "spiffe://"
        guard bytes.count >= scheme.utf8CodeUnitCount else { return false }
        for i in 0..<scheme.utf8CodeUnitCount where bytes[i] != scheme.utf8Start[i] { return false }
        return true
    }

    // MARK: Parsing

    static func keyEquals(_ a: String, _ b: String) -> Bool {
        a.utf8.count == b.utf8.count && a.lowercased() == b.lowercased()
    }

    @inline(__always)
    private static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }

    /// Splits at commas outside quotes and parses each element; nil if any is malformed.
    static func parseElements(_ bytes: UnsafeBufferPointer<UInt8>) -> [[Pair]]? {
        var elements: [[Pair]] = []
        var start = 0
        var index = 0
        var quoted = false
        let count = bytes.count
        while index <= count {
            if index == count || (!quoted && bytes[index] == comma) {
                guard let pairs = parseElement(UnsafeBufferPointer(rebasing: bytes[start..<index])) else { return nil }
                elements.append(pairs)
                start = index + 1
            } else if bytes[index] == backslash && quoted {
                index += 1  // the escaped character cannot close the quote
            } else if bytes[index] == quote {
                quoted.toggle()
            }
            index += 1
        }
        return quoted ? nil : elements
    }

    /// Where the last element starts: after the last comma outside quotes, scanning backwards. A quote
    /// preceded by an odd number of backslashes is escaped. Nil when the quotes of the tail do not balance.
    static func lastElementStart(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        // The usual header has no quotes (no Subject, Cert or Chain): then the last comma is the boundary, and
        // libc's vectorized scans find it in a fraction of the byte loop below (~700 instructions a request).
        if lacks(quote, bytes) {
            var start = 0
            while case let found = next(comma, bytes, from: start), found < bytes.count { start = found + 1 }
            return start
        }
        var quoted = false
        var index = bytes.count - 1
        while index >= 0 {
            let byte = bytes[index]
            if byte == quote {
                var backslashes = 0
                while index - backslashes - 1 >= 0 && bytes[index - backslashes - 1] == backslash { backslashes += 1 }
                if backslashes % 2 == 0 { quoted.toggle() }
            } else if byte == comma && !quoted {
                return index + 1
            }
            index -= 1
        }
        return quoted ? nil : 0
    }

    /// One element as `Pair`s; nil when malformed (see `scanElement`).
    static func parseElement(_ bytes: UnsafeBufferPointer<UInt8>) -> [Pair]? {
        var pairs: [Pair] = []
        let wellFormed = scanElement(bytes) { pair in
            let key = String(decoding: UnsafeBufferPointer(rebasing: bytes[pair.keyStart..<pair.keyEnd]), as: UTF8.self)
            pairs.append(Pair(key: key, value: pair.value(in: bytes)))
        }
        return wellFormed ? pairs : nil
    }

    /// Byte ranges of one `Key=Value` pair; a quoted value's range is inside the quotes, still escaped.
    struct RawPair {
        var keyStart: Int
        var keyEnd: Int
        var valueStart: Int
        var valueEnd: Int
        var hasEscape: Bool

        /// Case-insensitive comparison of the key with a lower-case ASCII name.
        func keyIs(_ name: StaticString, in bytes: UnsafeBufferPointer<UInt8>) -> Bool {
            guard keyEnd - keyStart == name.utf8CodeUnitCount else { return false }
            let expected = name.utf8Start
            for offset in 0..<(keyEnd - keyStart) {
                var byte = bytes[keyStart + offset]
                if byte >= 0x41 && byte <= 0x5A { byte |= 0x20 }
                if byte != expected[offset] { return false }
            }
            return true
        }

        /// The value, with `\"` unescaped in a quoted value (other backslashes are kept).
        func value(in bytes: UnsafeBufferPointer<UInt8>) -> String {
            let raw = UnsafeBufferPointer(rebasing: bytes[valueStart..<valueEnd])
            guard hasEscape else { return String(decoding: raw, as: UTF8.self) }
            var unescaped: [UInt8] = []
            unescaped.reserveCapacity(raw.count)
            var index = 0
            while index < raw.count {
                if raw[index] == backslash && index + 1 < raw.count {
                    if raw[index + 1] != quote { unescaped.append(backslash) }
                    unescaped.append(raw[index + 1])
                    index += 2
                } else {
                    unescaped.append(raw[index])
                    index += 1
                }
            }
            return String(decoding: unescaped, as: UTF8.self)
        }
    }

    /// Scans one element: `Key=Value` pairs separated by `;`, calling `visit` for each. False when
    /// malformed (no `=`, an empty key, an unterminated quote, text after a closing quote, a quote inside
    /// an unquoted value, a bare comma, an empty pair).
    static func scanElement(_ bytes: UnsafeBufferPointer<UInt8>, _ visit: (RawPair) -> Void) -> Bool {
        var index = 0
        let count = bytes.count
        // Without a quote or a comma anywhere (the usual element: By, Hash, URI), an unquoted value ends at
        // the next `;` and nothing inside it can be malformed, so libc's vectorized scan finds its end
        // (about 800 instructions fewer a request than the byte loop for a SPIFFE element with its hash).
        let plain = Self.lacks(quote, bytes) && Self.lacks(comma, bytes)
        while true {
            while index < count && isSpace(bytes[index]) { index += 1 }
            let keyStart = index
            while index < count, bytes[index] != equals, bytes[index] != semicolon, bytes[index] != comma,
                  bytes[index] != quote {
                index += 1
            }
            var keyEnd = index
            while keyEnd > keyStart && isSpace(bytes[keyEnd - 1]) { keyEnd -= 1 }
            guard index < count, bytes[index] == equals, keyEnd > keyStart else { return false }
            index += 1  // =
            while index < count && isSpace(bytes[index]) { index += 1 }
            var pair = RawPair(keyStart: keyStart, keyEnd: keyEnd, valueStart: index, valueEnd: index, hasEscape: false)
            if index < count && bytes[index] == quote {
                index += 1
                pair.valueStart = index
                var closed = false
                while index < count {
                    let byte = bytes[index]
                    if byte == quote {
                        closed = true
                        break
                    }
                    if byte == backslash && index + 1 < count {
                        pair.hasEscape = true
                        index += 2
                        continue
                    }
                    index += 1
                }
                guard closed else { return false }
                pair.valueEnd = index
                index += 1  // closing quote
                while index < count && isSpace(bytes[index]) { index += 1 }
                guard index == count || bytes[index] == semicolon else { return false }
            } else {
                if plain {
                    index = Self.next(semicolon, bytes, from: index)
                } else {
                    while index < count, bytes[index] != semicolon {
                        if bytes[index] == quote || bytes[index] == comma { return false }
                        index += 1
                    }
                }
                var valueEnd = index
                while valueEnd > pair.valueStart && isSpace(bytes[valueEnd - 1]) { valueEnd -= 1 }
                pair.valueEnd = valueEnd
            }
            visit(pair)
            if index == count { return true }
            index += 1  // ;
        }
    }

    /// Whether `byte` is absent from `bytes`.
    @inline(__always)
    static func lacks(_ byte: UInt8, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        #if canImport(Glibc)
        guard let base = bytes.baseAddress else { return true }
        return memchr(base, Int32(byte), bytes.count) == nil
        #else
        return !bytes.contains(byte)
        #endif
    }

    /// The index of the first `byte` at or after `start`, `bytes.count` when there is none.
    @inline(__always)
    static func next(_ byte: UInt8, _ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        #if canImport(Glibc)
        guard start < bytes.count, let base = bytes.baseAddress,
              let found = memchr(base + start, Int32(byte), bytes.count - start) else { return bytes.count }
        return UnsafeRawPointer(base).distance(to: UnsafeRawPointer(found))
        #else
        return bytes[start...].firstIndex(of: byte) ?? bytes.count
        #endif
    }
}

private let comma = UInt8(ascii: ",")
private let semicolon = UInt8(ascii: ";")
private let equals = UInt8(ascii: "=")
private let quote = UInt8(ascii: "\"")
private let backslash = UInt8(ascii: "\\")
