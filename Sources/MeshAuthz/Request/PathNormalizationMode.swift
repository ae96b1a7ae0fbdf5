/// Istio's `meshConfig.pathNormalization.normalization` settings, as the sidecar's Envoy applies them
/// before authorization (istio.io/latest/docs/reference/config/security/normalization):
///
/// | mode | Envoy | `/public/..%2fadmin` | `/public//admin` |
/// |---|---|---|---|
/// | `none` | no normalization | `/public/..%2fadmin` | `/public//admin` |
/// | `base` (Istio's default) | `normalize_path` | `/public/..%2fadmin` | `/public//admin` |
/// | `merge-slashes` | + `merge_slashes` | `/public/..%2fadmin` | `/public/admin` |
/// | `decode-and-merge-slashes` | + `path_with_escaped_slashes_action: UNESCAPE_AND_FORWARD` | `/admin` | `/public/admin` |
///
/// Envoy's order (`ConnectionManagerUtility::maybeNormalizePath`): escaped slashes are unescaped first,
/// then the path is normalized, then slashes are merged. Under every mode the query is kept as is, the
/// fragment is dropped, and a target Envoy's codec refuses (controls, bytes ≥ 0x80, no leading `/`) or
/// that contains `%00` is refused.
///
/// Why `decode-and-merge-slashes` is the safe choice when a backend decodes `%2F`: under `base`,
/// `/public/..%2fadmin` is matched as a path under `/public/` (allowed by `ALLOW /public/*`, not denied by
/// `DENY /admin*`), and a backend that decodes `%2F` before resolving `..` serves `/admin`. Istio documents
/// the same gap; only decoding the slashes before normalizing closes it.
public enum PathNormalizationMode: String, CaseIterable, Sendable {
    case none
    case base
    case mergeSlashes = "merge-slashes"
    case decodeAndMergeSlashes = "decode-and-merge-slashes"
}

extension PathNormalization {
    /// Normalizes a raw target under `mode`; calls `body` with `path?query` (fragment dropped), a slice of
    /// `target` when nothing changes, or nil when the target is refused.
    @inlinable  // only this switch: the gateway path then makes one generic call (withBase), not two
    public static func with<R>(_ mode: PathNormalizationMode, _ target: UnsafeBufferPointer<UInt8>,
                               _ body: (UnsafeBufferPointer<UInt8>?) -> R) -> R {
        switch mode {
        case .base: return withBase(target, body)
        case .none, .mergeSlashes, .decodeAndMergeSlashes: return withOtherThanBase(mode, target, body)
        }
    }

    /// `with` for the modes other than `base`.
    public static func withOtherThanBase<R>(_ mode: PathNormalizationMode, _ target: UnsafeBufferPointer<UInt8>,
                                            _ body: (UnsafeBufferPointer<UInt8>?) -> R) -> R {
        switch mode {
        case .base:
            return withBase(target, body)
        case .none:
            guard let split = split(target) else { return body(nil) }
            let path = UnsafeBufferPointer(rebasing: target[..<split.pathEnd])
            if containsEncodedNUL(path) { return body(nil) }
            return body(UnsafeBufferPointer(rebasing: target[..<(split.queryStart != nil ? split.queryEnd : split.pathEnd)]))
        case .mergeSlashes:
            return withBase(target) { normalized in
                guard let normalized else { return body(nil) }
                return withMergedSlashes(normalized, body)
            }
        case .decodeAndMergeSlashes:
            guard let split = split(target) else { return body(nil) }
            guard hasEncodedSlash(UnsafeBufferPointer(rebasing: target[..<split.pathEnd])) else {
                return with(.mergeSlashes, target, body)
            }
            let decoded = decodingSlashes(target, pathEnd: split.pathEnd)
            return decoded.withUnsafeBufferPointer { with(.mergeSlashes, $0, body) }
        }
    }

    /// The String form of `with`: the normalized `path?query`, nil when refused.
    public static func normalize(_ target: String, _ mode: PathNormalizationMode) -> String? {
        var copy = target
        return copy.withUTF8 { bytes in with(mode, bytes) { $0.map { String(decoding: $0, as: UTF8.self) } } }
    }

    static func containsEncodedNUL(_ path: UnsafeBufferPointer<UInt8>) -> Bool {
        guard path.count >= 3 else { return false }
        for i in 0..<(path.count - 2)
        where path[i] == UInt8(ascii: "%") && path[i + 1] == UInt8(ascii: "0") && path[i + 2] == UInt8(ascii: "0") {
            return true
        }
        return false
    }

    static func hasEncodedSlash(_ path: UnsafeBufferPointer<UInt8>) -> Bool {
        guard path.count >= 3 else { return false }
        for i in 0..<(path.count - 2) where path[i] == UInt8(ascii: "%") && isEncodedSlash(path[i + 1], path[i + 2]) {
            return true
        }
        return false
    }

    /// `%2F`/`%2f` and `%5C`/`%5c` (the two Envoy unescapes).
    @inline(__always)
    static func isEncodedSlash(_ high: UInt8, _ low: UInt8) -> Bool {
        (high == UInt8(ascii: "2") && (low | 0x20) == UInt8(ascii: "f"))
            || (high == UInt8(ascii: "5") && (low | 0x20) == UInt8(ascii: "c"))
    }

    /// The target with `%2F` → `/` and `%5C` → `\` in its path part (once: `%252F` stays `%2F`-encoded).
    static func decodingSlashes(_ target: UnsafeBufferPointer<UInt8>, pathEnd: Int) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(target.count)
        var i = 0
        while i < pathEnd {
            if target[i] == UInt8(ascii: "%"), i + 2 < pathEnd, isEncodedSlash(target[i + 1], target[i + 2]) {
                output.append(target[i + 1] == UInt8(ascii: "2") ? UInt8(ascii: "/") : UInt8(ascii: "\\"))
                i += 3
            } else {
                output.append(target[i])
                i += 1
            }
        }
        output.append(contentsOf: target[pathEnd...])
        return output
    }

    /// Runs of `/` in the path part become one `/`; the query is untouched.
    static func withMergedSlashes<R>(_ target: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>?) -> R) -> R {
        var pathEnd = 0
        var doubled = false
        while pathEnd < target.count && target[pathEnd] != UInt8(ascii: "?") {
            if pathEnd > 0 && target[pathEnd] == UInt8(ascii: "/") && target[pathEnd - 1] == UInt8(ascii: "/") { doubled = true }
            pathEnd += 1
        }
        guard doubled else { return body(target) }
        var output: [UInt8] = []
        output.reserveCapacity(target.count)
        for i in 0..<pathEnd where !(target[i] == UInt8(ascii: "/") && output.last == UInt8(ascii: "/")) {
            output.append(target[i])
        }
        output.append(contentsOf: target[pathEnd...])
        return output.withUnsafeBufferPointer { body($0) }
    }
}
