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
        return problems
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
