/// A second, deliberately naive implementation of `PathNormalization.withBase`'s rules (its doc comment:
/// Istio BASE as Envoy 1.40 applies it), written from the rules rather than from the code: strings and a
/// segment stack instead of one pass over bytes. Slow; for the fuzzer's comparison only.
enum PathNormalizationModel {
    /// `path?query` normalized, fragment dropped; nil when refused.
    static func normalize(_ target: [UInt8]) -> [UInt8]? {
        guard target.first == UInt8(ascii: "/") else { return nil }  // origin form only
        let pathEnd = target.firstIndex { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? target.count
        var query: ArraySlice<UInt8> = []
        if pathEnd < target.count && target[pathEnd] == UInt8(ascii: "?") {
            let queryEnd = target[pathEnd...].firstIndex(of: UInt8(ascii: "#")) ?? target.count
            query = target[pathEnd..<queryEnd]  // with its `?`, raw
        }
        guard let decoded = decode(target[..<pathEnd]) else { return nil }
        return removeDots(decoded) + query
    }

    /// Percent-decoding of unreserved characters only, `\` to `/`, Chromium's escapes; nil on a byte
    /// Envoy's codec refuses, `%00`, or an invalid escape.
    static let unreserved = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8)
    static let escaped = Set("\"<>^`{|}".utf8)
    static let hex = Array("0123456789ABCDEF".utf8)

    static func decode(_ path: ArraySlice<UInt8>) -> [UInt8]? {
        var output: [UInt8] = []
        var bytes = path[...]
        while let byte = bytes.popFirst() {
            if byte <= 0x20 || byte >= 0x7F { return nil }
            if byte == UInt8(ascii: "\\") {
                output.append(UInt8(ascii: "/"))
            } else if escaped.contains(byte) {
                output += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            } else if byte == UInt8(ascii: "%") {
                guard bytes.count >= 2, let value = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16),
                      bytes.prefix(2).allSatisfy({ hex.contains($0) || (0x61...0x66).contains($0) })
                else { return nil }
                if value == 0 { return nil }
                output += unreserved.contains(value) ? [value] : [byte] + bytes.prefix(2)
                bytes = bytes.dropFirst(2)
            } else {
                output.append(byte)
            }
        }
        return output
    }

    /// RFC 3986 §5.2.4 with a stack of segments: `.` vanishes, `..` pops (never above the root), a final
    /// `.`/`..` leaves a trailing `/`, empty segments (`//`) stay.
    static func removeDots(_ path: [UInt8]) -> [UInt8] {
        var stack: [ArraySlice<UInt8>] = []
        let segments = path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst()
        var endsInDot = false
        for segment in segments {
            let isDot = segment.elementsEqual(".".utf8), isDotDot = segment.elementsEqual("..".utf8)
            endsInDot = isDot || isDotDot
            if isDotDot { _ = stack.popLast() } else if !isDot { stack.append(segment) }
        }
        var output: [UInt8] = []
        for segment in stack { output += [UInt8(ascii: "/")] + segment }
        if endsInDot || output.isEmpty { output.append(UInt8(ascii: "/")) }
        return output
    }
}
