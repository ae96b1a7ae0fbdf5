/// Byte-level forms of Istio's value matchers for the compiled matcher. Envoy compares bytes, so do these:
/// no `String` comparison (which is Unicode-aware), no allocation.

/// Bytes read in place (a request's, the program's): the one name for them in every module.
public typealias Bytes = UnsafeBufferPointer<UInt8>

/// A run of bytes in the compiled set's byte arena.
struct ByteRun: Sendable, Hashable {
    var start: UInt32
    var count: UInt32
    static let empty = ByteRun(start: 0, count: 0)
}

/// An immutable array in one allocation, for the hot path: reading an element is a load, with no
/// reference counting and no bounds check (indices come from the compiler, which built the arrays).
/// Aligned to a cache line, so that an element of 64 or 128 bytes occupies whole lines.
final class Frozen<Element: BitwiseCopyable>: @unchecked Sendable {
    // Written only in `init`; afterwards read-only, so sharing it between threads is safe.
    let base: UnsafeMutablePointer<Element>
    let count: Int

    init(_ elements: [Element]) {
        count = elements.count
        let stride = MemoryLayout<Element>.stride
        base = UnsafeMutableRawPointer.allocate(byteCount: max(elements.count, 1) * stride,
                                                alignment: max(64, MemoryLayout<Element>.alignment))
            .bindMemory(to: Element.self, capacity: max(elements.count, 1))
        elements.withUnsafeBufferPointer { source in
            if let address = source.baseAddress { base.initialize(from: address, count: elements.count) }
        }
    }

    deinit { base.deallocate() }

    // Indices come from the compiled tables themselves; debug builds (the tests) check them.
    @inline(__always) subscript(_ i: Int) -> Element {
        assert(i >= 0 && i < count, "Frozen index out of bounds")
        return base[i]
    }
    @inline(__always) subscript(_ i: UInt32) -> Element { self[Int(i)] }
    @inline(__always) subscript(_ i: Int32) -> Element { self[Int(i)] }

    @inline(__always)
    func slice(_ start: UInt32, _ end: UInt32) -> UnsafeBufferPointer<Element> {
        assert(start <= end && Int(end) <= count, "Frozen slice out of bounds")
        return UnsafeBufferPointer(start: base + Int(start), count: Int(end &- start))
    }
}

typealias ByteArena = Frozen<UInt8>

extension Frozen where Element == UInt8 {
    @inline(__always)
    func bytes(_ run: ByteRun) -> Bytes {
        Bytes(start: base + Int(run.start), count: Int(run.count))
    }
}

/// Collects byte runs while compiling; `freeze` makes the arena. Runs are appended in compile order (not
/// shared between rules), so the bytes one bucket's rules compare against sit together in memory.
struct ByteArenaBuilder {
    var bytes: [UInt8] = []

    mutating func add<S: Sequence>(_ sequence: S) -> ByteRun where S.Element == UInt8 {
        let start = bytes.count
        bytes.append(contentsOf: sequence)
        return ByteRun(start: UInt32(start), count: UInt32(bytes.count - start))
    }

    func freeze() -> ByteArena { ByteArena(bytes) }
}

/// A fast non-cryptographic hash of bytes (lookups only: tables are built from policies, never from requests).
@inline(__always)
func hashBytes(_ bytes: Bytes, seed: UInt64) -> UInt64 {
    var h = seed ^ (UInt64(bytes.count) &* 0x9E37_79B9_7F4A_7C15)
    guard let base = bytes.baseAddress else { return h }
    let raw = UnsafeRawPointer(base)
    let count = bytes.count
    @inline(__always) func mix(_ word: UInt64) {
        h = (h ^ word) &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 29
    }
    if count >= 8 {
        var i = 0
        while i + 8 <= count {
            mix(raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            i += 8
        }
        // The last 8 bytes again, overlapping: no byte loop for the tail.
        if i < count { mix(raw.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)) }
    } else if count >= 4 {
        let low = UInt64(raw.loadUnaligned(as: UInt32.self))
        let high = UInt64(raw.loadUnaligned(fromByteOffset: count - 4, as: UInt32.self))
        mix(low | high << 32)
    } else if count > 0 {
        mix(UInt64(base[0]) | UInt64(base[count >> 1]) << 8 | UInt64(base[count - 1]) << 16)
    }
    h = (h ^ (h >> 33)) &* 0xFF51_AFD7_ED55_8CCD
    return h ^ (h >> 33)
}

/// Index of the first `?` or `#` in `bytes` (its count when there is none), eight bytes at a time.
@inline(__always)
func queryStart(_ bytes: Bytes) -> Int {
    guard let base = bytes.baseAddress else { return 0 }
    let raw = UnsafeRawPointer(base)
    let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
    var i = 0
    while i + 8 <= bytes.count {
        let word = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        let q = word ^ (ones &* 0x3F), f = word ^ (ones &* 0x23)
        // A zero byte in q or f marks a `?` or `#`.
        if ((q &- ones) & ~q | (f &- ones) & ~f) & highs != 0 { break }
        i += 8
    }
    while i < bytes.count && base[i] != UInt8(ascii: "?") && base[i] != UInt8(ascii: "#") { i += 1 }
    return i
}

@inline(__always)
func combineHash(_ a: UInt64, _ b: UInt64) -> UInt64 {
    var h = (a ^ ((b << 23) | (b >> 41))) &* 0xC4CE_B9FE_1A85_EC53
    h ^= h >> 32
    return h
}

@inline(__always)
func asciiLower(_ byte: UInt8) -> UInt8 {
    byte &- 65 < 26 ? byte | 0x20 : byte
}

extension UnsafeBufferPointer where Element == UInt8 {
    @inline(__always)
    func equals(_ other: Bytes) -> Bool {
        guard count == other.count else { return false }
        if count == 0 { return true }
        return memcmpBytes(baseAddress!, other.baseAddress!, count)
    }

    @inline(__always)
    func hasPrefix(_ prefix: Bytes) -> Bool {
        guard count >= prefix.count else { return false }
        if prefix.count == 0 { return true }
        return memcmpBytes(baseAddress!, prefix.baseAddress!, prefix.count)
    }

    @inline(__always)
    func hasSuffix(_ suffix: Bytes) -> Bool {
        guard count >= suffix.count else { return false }
        if suffix.count == 0 { return true }
        return memcmpBytes(baseAddress! + (count - suffix.count), suffix.baseAddress!, suffix.count)
    }

    /// ASCII case-insensitive forms (`other` is already lower-case).
    @inline(__always)
    func equalsLowered(_ lower: Bytes, at offset: Int) -> Bool {
        for k in 0..<lower.count where asciiLower(self[offset + k]) != lower[k] { return false }
        return true
    }
}

@inline(__always)
func memcmpBytes(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ count: Int) -> Bool {
    var i = 0
    while i + 8 <= count {
        if UnsafeRawPointer(a + i).loadUnaligned(as: UInt64.self) != UnsafeRawPointer(b + i).loadUnaligned(as: UInt64.self) {
            return false
        }
        i += 8
    }
    while i < count {
        if a[i] != b[i] { return false }
        i += 1
    }
    return true
}

let spiffeScheme: [UInt8] = Array("spiffe://".utf8)

/// Whether `value` starts with `spiffe://`: one 8-byte compare and one byte.
@inline(__always)
func hasSPIFFEScheme(_ value: Bytes) -> Bool {
    guard value.count >= 9, let base = value.baseAddress else { return false }
    // "spiffe:/" little-endian.
    return UnsafeRawPointer(base).loadUnaligned(as: UInt64.self) == 0x2F3A_6566_6669_7073 && base[8] == UInt8(ascii: "/")
}

/// Istio's string forms (istiod's `StringMatcher`, `StringMatcherWithPrefix`, `HeaderMatcher`, `HostMatcher`).
enum StringPattern {
    enum Kind: UInt8, Sendable {
        case exact, prefix, suffix
        /// `*x` on a principal: `spiffe://`, then anything, then `x` (the regex `spiffe://.*x`).
        case schemeSuffix
        /// `*` in most fields: present and non-empty.
        case nonEmpty
        /// `*` in header-backed fields (methods, hosts, headers): present, possibly empty.
        case present
    }

    /// Whether `value` matches `pattern` in `form`; `lowered`: compare ASCII case-insensitively, the
    /// pattern being stored lower-case (hosts).
    @inline(__always)
    static func matches(_ form: Kind, lowered: Bool, _ pattern: Bytes, _ value: Bytes) -> Bool {
        switch form {
        case .exact:
            if lowered { return value.count == pattern.count && value.equalsLowered(pattern, at: 0) }
            return value.equals(pattern)
        case .prefix:
            if lowered { return value.count >= pattern.count && value.equalsLowered(pattern, at: 0) }
            return value.hasPrefix(pattern)
        case .suffix:
            if lowered { return value.count >= pattern.count && value.equalsLowered(pattern, at: value.count - pattern.count) }
            return value.hasSuffix(pattern)
        case .schemeSuffix:
            guard value.count >= 9 + pattern.count, hasSPIFFEScheme(value) else { return false }
            return value.hasSuffix(pattern)
        case .nonEmpty: return value.count > 0
        case .present: return true
        }
    }
}

/// A `CIDR` with its mask applied once (written into the program; see `CIDR.contains` for the test).
struct IPBlock: Sendable, Hashable {
    let isV4: Bool
    let maskHigh: UInt64
    let maskLow: UInt64
    let high: UInt64
    let low: UInt64

    init(_ cidr: CIDR) {
        let (maskHigh, maskLow) = CIDR.mask(cidr.prefixLength)
        self.isV4 = cidr.address.isV4
        self.maskHigh = maskHigh
        self.maskLow = maskLow
        self.high = cidr.address.high & maskHigh
        self.low = cidr.address.low & maskLow
    }
}

enum ByteMatching {
    /// `PathTemplate.matches`, over bytes: every token in turn, backtracking over the variable lengths.
    /// `token` is where the first remaining token is written (`ProgramBuilder`), `remaining` their number.
    static func template(_ token: ProgramWords, _ remaining: Int, _ path: Bytes, _ position: Int) -> Bool {
        if remaining == 0 { return position == path.count }
        let header = token[0]
        guard let kind = TemplateTokenKind.decode(header & 0xFF) else { corrupt("template token", header & 0xFF) }
        let allowsSlash: Bool
        switch kind {
        case .literal:
            let count = Int(header >> 8)
            guard path.count - position >= count else { return false }
            if count > 0, !memcmpBytes(path.baseAddress! + position, token.bytes(1, count).baseAddress!, count) {
                return false
            }
            return template(token.advanced(by: 1 + (count + 3) / 4), remaining - 1, path, position + count)
        case .segment: allowsSlash = false
        case .rest: allowsSlash = true
        }
        let next = token.advanced(by: 1)
        if allowsSlash, template(next, remaining - 1, path, position) { return true }
        var end = position
        while end < path.count {
            let byte = path[end]
            guard PathTemplate.isPathCharacter(byte) || (allowsSlash && byte == UInt8(ascii: "/")) else { return false }
            end += 1
            if template(next, remaining - 1, path, end) { return true }
        }
        return false
    }

    /// Full match where each `*` of the pattern is any run of bytes (`.*`).
    static func glob(_ pattern: Bytes, _ value: Bytes) -> Bool {
        let star = UInt8(ascii: "*")
        var pi = 0, vi = 0, starP = -1, starV = 0
        while vi < value.count {
            if pi < pattern.count && pattern[pi] == star {
                starP = pi; starV = vi; pi += 1
            } else if pi < pattern.count && pattern[pi] == value[vi] {
                pi += 1; vi += 1
            } else if starP >= 0 {
                pi = starP + 1; starV += 1; vi = starV
            } else {
                return false
            }
        }
        while pi < pattern.count && pattern[pi] == star { pi += 1 }
        return pi == pattern.count
    }

    /// `serviceAccounts`: `spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?`, segment by segment after the scheme.
    static func serviceAccount(namespace: Bytes, name: Bytes, _ principal: Bytes) -> Bool {
        guard principal.count > 9, hasSPIFFEScheme(principal) else { return false }
        let rest = Bytes(rebasing: principal[9...])
        var segments = 1
        for byte in rest where byte == UInt8(ascii: "/") { segments += 1 }
        guard segments >= 5 else { return false }
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: segments + 1) { bounds -> Bool in
            // Segment i is rest[bounds[i] ..< bounds[i+1] - 1] (the slash excluded).
            var n = 0
            bounds[0] = 0
            for (i, byte) in rest.enumerated() where byte == UInt8(ascii: "/") {
                n += 1
                bounds[n] = i + 1
            }
            bounds[segments] = rest.count + 1
            @inline(__always) func segment(_ i: Int) -> Bytes {
                Bytes(rebasing: rest[bounds[i]..<(bounds[i + 1] - 1)])
            }
            @inline(__always) func isWord(_ i: Int, _ a: UInt8, _ b: UInt8) -> Bool {
                let s = segment(i)
                return s.count == 2 && s[0] == a && s[1] == b
            }
            for nsIndex in 1..<(segments - 1) where isWord(nsIndex, UInt8(ascii: "n"), UInt8(ascii: "s")) && segment(nsIndex + 1).equals(namespace) {
                // `.+` before `/ns/`: not a single empty segment.
                if nsIndex == 1 && segment(0).isEmpty { continue }
                var saIndex = nsIndex + 2
                while saIndex < segments - 1 {
                    // `(.+/|)`: nothing, or something non-empty then a slash.
                    let gapOK = !(saIndex == nsIndex + 3 && segment(nsIndex + 2).isEmpty)
                    if gapOK && isWord(saIndex, UInt8(ascii: "s"), UInt8(ascii: "a")) && segment(saIndex + 1).equals(name) {
                        // `(/.+)?`: nothing after, or a slash then something non-empty.
                        let afterOK = saIndex + 2 == segments || !(saIndex + 3 == segments && segment(segments - 1).isEmpty)
                        if afterOK { return true }
                    }
                    saIndex += 1
                }
            }
            return false
        }
    }

    /// The trust domain of a principal: between `spiffe://` and the next `/`; nil when there is none.
    static func trustDomain(_ principal: Bytes) -> Bytes? {
        guard hasSPIFFEScheme(principal) else { return nil }
        var i = 9
        while i < principal.count {
            if principal[i] == UInt8(ascii: "/") { return Bytes(rebasing: principal[9..<i]) }
            i += 1
        }
        return nil
    }

    /// Calls `body` with each space-separated non-empty word of `text` (Envoy's space-delimited claims).
    static func words(_ text: Bytes, _ body: (Bytes) -> Bool) -> Bool {
        var start = 0
        var i = 0
        while i <= text.count {
            if i == text.count || text[i] == UInt8(ascii: " ") {
                if i > start, body(Bytes(rebasing: text[start..<i])) { return true }
                start = i + 1
            }
            i += 1
        }
        return false
    }
}

extension String {
    /// The UTF-8 bytes, without copying when the string is native (it always is on Linux).
    @inline(__always)
    func withBytes<R>(_ body: (Bytes) -> R) -> R {
        if let result = utf8.withContiguousStorageIfAvailable(body) { return result }
        let copy = Array(utf8)
        return copy.withUnsafeBufferPointer(body)
    }
}
