/// A path value containing `{*}` or `{**}`: an Envoy URI template (istiod's `pathGenerator`).
/// `{*}` is one or more path characters without `/`; `{**}` is zero or more, `/` included; the
/// template must match the whole path, query and fragment removed.
public struct PathTemplate: Sendable, Hashable {
    public enum Token: Sendable, Hashable {
        case literal([UInt8])
        /// `{*}`
        case segment
        /// `{**}`
        case rest
    }

    public let tokens: [Token]

    public static func isTemplate(_ path: String) -> Bool { path.contains("{*}") || path.contains("{**}") }

    public init(_ template: String) {
        var tokens: [Token] = []
        var literal: [UInt8] = []
        let bytes = Array(template.utf8)
        var i = 0
        func flush() {
            if !literal.isEmpty { tokens.append(.literal(literal)); literal = [] }
        }
        while i < bytes.count {
            if bytes[i...].starts(with: Array("{**}".utf8)) {
                flush(); tokens.append(.rest); i += 4
            } else if bytes[i...].starts(with: Array("{*}".utf8)) {
                flush(); tokens.append(.segment); i += 3
            } else {
                literal.append(bytes[i]); i += 1
            }
        }
        flush()
        self.tokens = tokens
    }

    /// RFC 3986 pchar, as Envoy's template compiler allows inside a variable. Observed with Envoy
    /// 1.40: `=` and `*` are accepted, `[` is not.
    @inline(__always)
    static func isPathCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "%"),
             UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("),
             UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"),
             UInt8(ascii: "="), UInt8(ascii: ":"), UInt8(ascii: "@"):
            return true
        default:
            return false
        }
    }

    /// Whether the template matches the whole of `path` (already stripped of query and fragment).
    public func matches<C: Collection>(_ path: C) -> Bool where C.Element == UInt8 {
        let bytes = Array(path)
        return bytes.withUnsafeBufferPointer { match(tokenIndex: 0, $0, 0) }
    }

    private func match(tokenIndex: Int, _ path: UnsafeBufferPointer<UInt8>, _ position: Int) -> Bool {
        if tokenIndex == tokens.count { return position == path.count }
        switch tokens[tokenIndex] {
        case .literal(let literal):
            guard path.count - position >= literal.count else { return false }
            for k in 0..<literal.count where path[position + k] != literal[k] { return false }
            return match(tokenIndex: tokenIndex + 1, path, position + literal.count)
        case .segment, .rest:
            let allowsSlash = tokens[tokenIndex] == .rest
            var end = position
            // Try every possible length; the variable must be non-empty for `{*}`.
            if allowsSlash, match(tokenIndex: tokenIndex + 1, path, position) { return true }
            while end < path.count {
                let byte = path[end]
                guard Self.isPathCharacter(byte) || (allowsSlash && byte == UInt8(ascii: "/")) else { return false }
                end += 1
                if match(tokenIndex: tokenIndex + 1, path, end) { return true }
            }
            return false
        }
    }

    static let validLiteralCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$&'()+,;:@=")

    /// istiod's `CheckValidPathTemplate`: why this `paths` value would be rejected, or nil.
    public static func validationError(_ path: String) -> String? {
        let containsTemplate = isTemplate(path)
        var trimmed = Substring(path)
        while trimmed.hasPrefix("/") { trimmed = trimmed.dropFirst() }
        while trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        var foundRest = false
        for glob in trimmed.split(separator: "/", omittingEmptySubsequences: false) {
            if glob == "{*}" || glob == "{**}" {
                if foundRest { return "invalid path template \"\(path)\": {**} must be the last operator" }
                if glob == "{**}" { foundRest = true }
                continue
            }
            if glob.contains("{") || glob.contains("}") {
                return "invalid path template \"\(path)\": \"{\" and \"}\" are only allowed as a whole segment {*} or {**}"
            }
            if containsTemplate && !glob.allSatisfy({ validLiteralCharacters.contains($0) }) {
                return "invalid path template \"\(path)\": segment \"\(glob)\" has characters a template does not allow (\"*\" must be a whole {*} segment)"
            }
        }
        return nil
    }
}
