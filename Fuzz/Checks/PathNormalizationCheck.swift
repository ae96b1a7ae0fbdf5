import MeshAuthz

/// `PathNormalization.base` / `withBase` on an arbitrary request target. Beyond not crashing, what a
/// policy's `paths` match relies on:
/// - a normalized path starts with `/` and holds no `.` or `..` segment (else `/public/../admin` could
///   match `/public/*`);
/// - normalizing is idempotent: the output normalized again is the output (a proxy or backend that
///   normalizes once more must see the path the policy saw);
/// - the result is what `PathNormalizationModel`, a slow transcription of the documented rules, gives;
/// - the byte form (`withBase`, the gateway path) and the String form (`base`, `/v1/check`) agree, on a
///   String and on a Substring that does not start at its base's first byte.
public enum PathNormalizationCheck {
    public static func check(_ input: UnsafeBufferPointer<UInt8>) -> [String] {
        var problems: [String] = []
        let bytes = PathNormalization.withBase(input) { $0.map(Array.init) }
        let model = PathNormalizationModel.normalize(Array(input))
        if bytes != model {
            problems.append("\(bytes.map(show) ?? "refused") but the model says \(model.map(show) ?? "refused") for \(show(input))")
        }
        if let bytes {
            problems += invariants(bytes, input: input)
            let again = bytes.withUnsafeBufferPointer { PathNormalization.withBase($0) { $0.map(Array.init) } }
            if again != bytes {
                problems.append("not idempotent: \(show(input)) -> \(show(bytes)) -> \(again.map(show) ?? "refused")")
            }
        }
        if let text = input.validUTF8 {
            let viaString = PathNormalization.base(text)
            let viaSubstring = PathNormalization.base(shifted(text))
            for (form, result) in [("String", viaString), ("Substring", viaSubstring)] {
                let formBytes = result.map { Array($0.pathWithQuery.utf8) }
                if formBytes != bytes {
                    problems.append("\(form) form \(formBytes.map(show) ?? "refused") != byte form \(bytes.map(show) ?? "refused") for \(show(input))")
                }
                if let result, result.path.utf8.contains(UInt8(ascii: "?")) {
                    problems.append("\(form) form path holds `?`: \(show(input))")
                }
            }
        }
        problems += modes(input, base: bytes)
        return problems
    }

    /// The other modes (`serve --path-normalization`), held to the rules `PathNormalizationMode` documents:
    /// `none` refuses what `base` refuses for the codec (and `%00`), else drops only the fragment;
    /// `merge-slashes` is `base` with runs of `/` merged in the path; `decode-and-merge-slashes` is that after
    /// `%2F`/`%5C` were decoded once. Each is idempotent, and the merging ones leave no `//` in the path.
    static func modes(_ input: UnsafeBufferPointer<UInt8>, base: [UInt8]?) -> [String] {
        var problems: [String] = []
        func run(_ mode: PathNormalizationMode, _ target: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
            PathNormalization.with(mode, target) { $0.map(Array.init) }
        }
        let merged = run(.mergeSlashes, input)
        if merged != base.map(mergeSlashes) {
            problems.append("merge-slashes \(merged.map(show) ?? "refused") != base merged \(base.map { show(mergeSlashes($0)) } ?? "refused") for \(show(input))")
        }
        // Decoding happens after the codec: a target that does not start with `/` is refused before (a decoded
        // `%2f` cannot make one acceptable).
        let decodedInput = decodeSlashesOnce(Array(input))
        let expectedDecoded = input.first != UInt8(ascii: "/") ? nil
            : decodedInput.withUnsafeBufferPointer { run(.base, $0) }.map(mergeSlashes)
        let decoded = run(.decodeAndMergeSlashes, input)
        if decoded != expectedDecoded {
            problems.append("decode-and-merge-slashes \(decoded.map(show) ?? "refused") != \(expectedDecoded.map(show) ?? "refused") for \(show(input))")
        }
        let none = run(.none, input)
        if let none, none.contains(UInt8(ascii: "#")) { problems.append("none kept a fragment: \(show(input))") }
        for (mode, output) in [(PathNormalizationMode.none, none), (.mergeSlashes, merged), (.decodeAndMergeSlashes, decoded)] {
            guard let output else { continue }
            let again = output.withUnsafeBufferPointer { run(mode, $0) }
            if again != output { problems.append("\(mode) not idempotent: \(show(input)) -> \(show(output)) -> \(again.map(show) ?? "refused")") }
            let path = output.split(separator: UInt8(ascii: "?"), maxSplits: 1, omittingEmptySubsequences: false)[0]
            if mode != .none, zip(path, path.dropFirst()).contains(where: { $0 == UInt8(ascii: "/") && $1 == UInt8(ascii: "/") }) {
                problems.append("\(mode) left `//`: \(show(input)) -> \(show(output))")
            }
            if path.count >= 3, (0..<(path.count - 2)).contains(where: { i in
                let p = Array(path)
                return p[i] == UInt8(ascii: "%") && p[i + 1] == UInt8(ascii: "0") && p[i + 2] == UInt8(ascii: "0")
            }) {
                problems.append("\(mode) kept %00: \(show(input))")
            }
        }
        return problems
    }

    /// Runs of `/` merged, in the path only.
    static func mergeSlashes(_ target: [UInt8]) -> [UInt8] {
        let queryAt = target.firstIndex(of: UInt8(ascii: "?")) ?? target.count
        var out: [UInt8] = []
        for byte in target[..<queryAt] where !(byte == UInt8(ascii: "/") && out.last == UInt8(ascii: "/")) { out.append(byte) }
        return out + target[queryAt...]
    }

    /// `%2F`/`%2f` to `/` and `%5C`/`%5c` to `\`, once, before the first `?` or `#`.
    static func decodeSlashesOnce(_ target: [UInt8]) -> [UInt8] {
        let end = target.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) ?? target.count
        var out: [UInt8] = []
        var i = 0
        while i < end {
            if target[i] == UInt8(ascii: "%"), i + 2 < end {
                let code = String(decoding: target[(i + 1)...(i + 2)], as: UTF8.self).lowercased()
                if code == "2f" || code == "5c" {
                    out.append(code == "2f" ? UInt8(ascii: "/") : UInt8(ascii: "\\"))
                    i += 3
                    continue
                }
            }
            out.append(target[i])
            i += 1
        }
        return out + target[end...]
    }

    /// Invariants of one normalized `path?query`.
    static func invariants(_ output: [UInt8], input: UnsafeBufferPointer<UInt8>) -> [String] {
        var problems: [String] = []
        let path = output.split(separator: UInt8(ascii: "?"), maxSplits: 1, omittingEmptySubsequences: false)[0]
        if path.first != UInt8(ascii: "/") {
            problems.append("does not start with `/`: \(show(input)) -> \(show(output))")
        }
        for segment in path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        where segment.elementsEqual(".".utf8) || segment.elementsEqual("..".utf8) {
            problems.append("dot segment left: \(show(input)) -> \(show(output))")
            break
        }
        if path.contains(where: { $0 < 0x21 || $0 >= 0x7F || $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "#") }) {
            problems.append("control, space, non-ASCII, `\\` or `#` left in the path: \(show(input)) -> \(show(output))")
        }
        return problems
    }
}

/// Bytes for a message: printable ASCII as is, the rest as `\xNN`.
func show<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
    var text = "\""
    for byte in bytes.prefix(300) {
        if byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\\") && byte != UInt8(ascii: "\"") {
            text.unicodeScalars.append(Unicode.Scalar(byte))
        } else {
            let hex = "0123456789ABCDEF".utf8.map { $0 }
            text += "\\x" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 15)]], as: UTF8.self)
        }
    }
    return text + "\""
}
