/// Envoy compares strings byte for byte and folds case only in ASCII. Swift's `==`, `hasPrefix` and
/// `lowercased()` are Unicode-aware (`"\u{212A}" == "K"`, a decomposed `é` equals a composed one),
/// so the reference evaluator compares through these instead.
extension StringProtocol {
    func bytesEqual<Other: StringProtocol>(_ other: Other) -> Bool {
        // Byte-equal strings are canonically equal, so Swift's (fast) `==` rules out nearly every
        // mismatch and the byte comparison only confirms.
        self == other && utf8.elementsEqual(other.utf8)
    }

    func bytesHavePrefix<Other: StringProtocol>(_ prefix: Other) -> Bool { utf8.starts(with: prefix.utf8) }

    func bytesHaveSuffix<Other: StringProtocol>(_ suffix: Other) -> Bool {
        utf8.count >= suffix.utf8.count && utf8.reversed().starts(with: suffix.utf8.reversed())
    }

    /// The bytes before the first `byte`, or all of them.
    func bytesBefore(_ byte: UInt8) -> String {
        String(decoding: utf8.prefix { $0 != byte }, as: UTF8.self)
    }

    /// Split at the last `byte` (issuer/subject), as Go's `strings.LastIndex` does.
    func bytesSplitAtLast(_ byte: UInt8) -> (before: String, after: String)? {
        let bytes = Array(utf8)
        guard let at = bytes.lastIndex(of: byte) else { return nil }
        return (String(decoding: bytes[..<at], as: UTF8.self), String(decoding: bytes[(at + 1)...], as: UTF8.self))
    }

    /// The fields between `byte`s, empty ones kept.
    func bytesSplit(_ byte: UInt8) -> [String] {
        Array(utf8).split(separator: byte, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    }

    /// `A`–`Z` folded to `a`–`z`; every other byte kept.
    var asciiLowercased: String {
        guard utf8.contains(where: { $0 &- 65 < 26 }) else { return String(self) }
        return String(decoding: utf8.map { $0 &- 65 < 26 ? $0 | 0x20 : $0 }, as: UTF8.self)
    }
}
