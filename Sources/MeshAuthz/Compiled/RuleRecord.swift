/// Rules compiled into a *program*: one contiguous record per rule, the rules of a bucket one after the
/// other, pattern bytes inline. Confirming a bucket's candidates is then a walk over a few consecutive cache
/// lines rather than a chase through separate arrays. `ProgramBuilder` writes records; `RuleChecker.swift`
/// reads them, through the views below (named fields, never `program[record + 4]`).
///
/// Record of a rule (32-bit words; offsets relative to the record, `RuleRecord.Word`):
///
///     [0] category      [1] rank          [2] global rule index   [3] length of the record
///     [4] `to` clauses  [5] `from` clauses [6] offset of `from`    [7] offset of `when`
///     [8] `when` checks  [9, 10] address of the rule's `Decision.Details` (set by `CompiledPolicySet.init`)
///     then the `to` clauses, the `from` clauses, the `when` checks
///
/// A rule is `to` (any clause, none = any) AND `from` (any clause) AND `when` (every check). A clause (a
/// Source or an Operation) is `[check count, length]` then its checks, all of which must hold. A check is
/// `[attribute, attribute argument, positive count, negative count, length]` then its matchers: a positive
/// one must match (when there are any) and no negative one may. A matcher is `[kind | form << 8 | lowered
/// << 16 | extra << 24, length, ...]`, its bytes padded to whole words.
///
/// Every enum below is read back with an exhaustive switch; a word that is not one of its cases stops the
/// process (`corrupt(_:)`) rather than being taken as "no match", which in a `notX` field would allow.

/// What a check reads from the request (`FieldSpec.attribute`; read by `CompiledTables.holds`).
enum Attribute: UInt32 {
    /// The peer principal, only on an mTLS connection.
    case principal
    /// The path, query and fragment removed.
    case path
    case method
    case host
    case sni
    case port
    case sourceIP
    case remoteIP
    case destinationIP
    /// The JWT's issuer and subject.
    case requestPrincipal
    /// `request.headers[name]` for an ordinary name (argument: `headerNames` index).
    case header
    /// `request.headers[:authority]` or `[host]`: the host, else the header of that name.
    case authorityHeader
    /// `request.headers[:path]`: the raw path, query included.
    case rawPath
    /// `request.auth.claims[...]` (argument: `claimPaths` index).
    case claim
    /// Never present (`experimental.envoy.filters.*`: no request carries Envoy metadata).
    case absent
}

enum MatcherKind: UInt32 {
    /// Istio's string forms (`StringPattern.Kind` in the form byte).
    case string
    /// `[token count]`, then per token `[kind | byte count << 8]` and its bytes.
    case template
    /// `namespaces`: `*/ns/<value>/*` as a glob over the principal.
    case namespaceGlob
    /// `trustDomains` other than `*`: a string form over the trust domain of a `spiffe://` principal.
    case trustDomain
    /// `[namespace byte count, name byte count]`, then both.
    case serviceAccount
    /// Form byte: the issuer's form, extra byte: the subject's; `[issuer count, subject count]`, then both.
    case requestPrincipal
    /// Extra byte: IPv4; then mask and address, four 64-bit words.
    case ip
    /// Extra byte: whether there is a value; then the value as 64 bits.
    case port
    /// Matches nothing (an unparsable CIDR, an attribute no request has).
    case never
}

enum RuleCategory: UInt32, Sendable {
    case allow, deny, custom, audit
    /// Any action, in a dry-run policy: reported, never enforced.
    case dryRun
}

enum TemplateTokenKind: UInt32 {
    case literal, segment, rest
}

/// An enum written into program words as its raw value, which is its case index (`0 ... last`, one byte in
/// memory). Reading one back is a bounds check and a bit cast, inline: `init?(rawValue:)` is an out-of-line
/// call, and the checker decodes several words per check of every candidate rule (~230 instructions a
/// request). `CompiledLayoutTests` checks that `decode` equals `init?(rawValue:)` for every byte value.
protocol ProgramCode: RawRepresentable, Equatable where RawValue: FixedWidthInteger {
    /// The case with the largest raw value.
    static var last: Self { get }
}

extension ProgramCode {
    @inline(__always) static func decode(_ raw: UInt32) -> Self? {
        guard raw <= UInt32(truncatingIfNeeded: last.rawValue) else { return nil }
        return unsafeBitCast(UInt8(truncatingIfNeeded: raw), to: Self.self)
    }
}

extension Attribute: ProgramCode { static var last: Attribute { .absent } }
extension MatcherKind: ProgramCode { static var last: MatcherKind { .never } }
extension RuleCategory: ProgramCode { static var last: RuleCategory { .dryRun } }
extension TemplateTokenKind: ProgramCode { static var last: TemplateTokenKind { .rest } }
extension StringPattern.Kind: ProgramCode { static var last: StringPattern.Kind { .present } }

/// A compiled program that does not decode is a bug in this module, never something a request can cause:
/// stop (as Envoy's matcher construction panics on an unknown kind) instead of guessing an answer.
func corrupt(_ what: StaticString, _ value: UInt32) -> Never {
    preconditionFailure("corrupt compiled program: \(what) \(value)")
}

/// The frozen program: immutable raw memory, read by word and by byte.
final class Program: @unchecked Sendable {
    // Written only in `init`; afterwards read-only, so sharing it between threads is safe.
    let base: UnsafeMutableRawPointer
    let wordCount: Int

    init(_ words: [UInt32]) {
        wordCount = words.count
        base = .allocate(byteCount: max(words.count, 1) * 4, alignment: 16)
        words.withUnsafeBytes { base.copyMemory(from: $0.baseAddress!, byteCount: words.count * 4) }
        base.bindMemory(to: UInt8.self, capacity: max(words.count, 1) * 4)
    }

    deinit { base.deallocate() }

    // Record offsets come from the program itself; debug builds (the tests) check them.
    @inline(__always) subscript(_ word: Int) -> UInt32 {
        assert(word >= 0 && word < wordCount, "Program word out of bounds")
        return base.load(fromByteOffset: word &* 4, as: UInt32.self)
    }

    /// The record starting at word `offset`.
    @inline(__always) func record(_ offset: Int) -> RuleRecord {
        assert(offset >= 0 && offset + RuleRecord.Word.headerCount <= wordCount
               && offset + Int(self[offset + RuleRecord.Word.length]) <= wordCount, "rule record out of bounds")
        return RuleRecord(offset: offset, words: ProgramWords(base + offset &* 4))
    }
}

/// Words from a position in the program: the one reader the record views share.
struct ProgramWords {
    let start: UnsafeRawPointer

    @inline(__always) init(_ start: UnsafeRawPointer) { self.start = start }

    @inline(__always) subscript(_ word: Int) -> UInt32 { start.load(fromByteOffset: word &* 4, as: UInt32.self) }

    @inline(__always) func int64(_ word: Int) -> UInt64 { start.loadUnaligned(fromByteOffset: word &* 4, as: UInt64.self) }

    @inline(__always) func bytes(_ word: Int, _ count: Int) -> Bytes {
        Bytes(start: (start + word &* 4).assumingMemoryBound(to: UInt8.self), count: count)
    }

    @inline(__always) func advanced(by words: Int) -> ProgramWords { ProgramWords(start + words &* 4) }
}

/// One rule's record.
struct RuleRecord {
    /// Word offsets of the header fields; `ProgramBuilder` writes them, the views read them.
    enum Word {
        static let category = 0, rank = 1, ruleIndex = 2, length = 3
        static let toClauses = 4, fromClauses = 5, fromOffset = 6, whenOffset = 7, whenChecks = 8
        /// Two words: the address of the rule's `Decision.Details`.
        static let details = 9
        static let headerCount = 11
    }

    /// Word offset of the record in the program (what candidate lists and verdicts hold).
    let offset: Int
    let words: ProgramWords

    @inline(__always) var category: RuleCategory {
        let raw = words[Word.category]
        guard let category = RuleCategory.decode(raw) else { corrupt("rule category", raw) }
        return category
    }
    /// The rule's position in Envoy's order of rule ids: the least matching one is reported.
    @inline(__always) var rank: UInt32 { words[Word.rank] }
    /// The rule's global index (evaluation order).
    @inline(__always) var ruleIndex: UInt32 { words[Word.ruleIndex] }
    @inline(__always) var length: Int { Int(words[Word.length]) }
    @inline(__always) var toClauseCount: Int { Int(words[Word.toClauses]) }
    @inline(__always) var fromClauseCount: Int { Int(words[Word.fromClauses]) }
    @inline(__always) var firstToClause: ClauseRecord { ClauseRecord(words: words.advanced(by: Word.headerCount)) }
    @inline(__always) var firstFromClause: ClauseRecord { ClauseRecord(words: words.advanced(by: Int(words[Word.fromOffset]))) }
    @inline(__always) var whenCheckCount: Int { Int(words[Word.whenChecks]) }
    @inline(__always) var firstWhenCheck: CheckRecord { CheckRecord(words: words.advanced(by: Int(words[Word.whenOffset]))) }
    /// The `Decision.Details` of the rule (kept alive by the compiled set).
    @inline(__always) var details: UnsafeRawPointer { UnsafeRawPointer(bitPattern: UInt(words.int64(Word.details)))! }
}

/// A Source or an Operation: all of its checks must hold.
struct ClauseRecord {
    let words: ProgramWords
    @inline(__always) var checkCount: Int { Int(words[0]) }
    @inline(__always) var firstCheck: CheckRecord { CheckRecord(words: words.advanced(by: 2)) }
    @inline(__always) var next: ClauseRecord { ClauseRecord(words: words.advanced(by: Int(words[1]))) }
}

/// One field of a clause, or one `when` condition.
struct CheckRecord {
    let words: ProgramWords
    @inline(__always) var attribute: Attribute {
        let raw = words[0]
        guard let attribute = Attribute.decode(raw) else { corrupt("attribute", raw) }
        return attribute
    }
    /// `headerNames` or `claimPaths` index, for the attributes that take one.
    @inline(__always) var argument: Int { Int(words[1]) }
    @inline(__always) var positiveCount: Int { Int(words[2]) }
    @inline(__always) var negativeCount: Int { Int(words[3]) }
    @inline(__always) var firstMatcher: MatcherRecord { MatcherRecord(words: words.advanced(by: 5)) }
    @inline(__always) var next: CheckRecord { CheckRecord(words: words.advanced(by: Int(words[4]))) }
}

/// One value of a field, compiled.
struct MatcherRecord {
    let words: ProgramWords
    @inline(__always) var kind: MatcherKind {
        let raw = words[0] & 0xFF
        guard let kind = MatcherKind.decode(raw) else { corrupt("matcher kind", raw) }
        return kind
    }
    @inline(__always) var form: StringPattern.Kind { Self.pattern((words[0] >> 8) & 0xFF) }
    @inline(__always) var isLowered: Bool { words[0] & 0x1_0000 != 0 }
    @inline(__always) var extra: UInt32 { words[0] >> 24 }
    /// The extra byte read as a string form (the subject's, in a request-principal matcher).
    @inline(__always) var extraForm: StringPattern.Kind { Self.pattern(extra) }
    @inline(__always) subscript(_ word: Int) -> UInt32 { words[word] }
    @inline(__always) func int64(_ word: Int) -> UInt64 { words.int64(word) }
    @inline(__always) func bytes(_ word: Int, _ count: Int) -> Bytes { words.bytes(word, count) }
    @inline(__always) var next: MatcherRecord { MatcherRecord(words: words.advanced(by: Int(words[1]))) }

    @inline(__always) private static func pattern(_ raw: UInt32) -> StringPattern.Kind {
        guard let kind = StringPattern.Kind.decode(raw) else { corrupt("string form", raw) }
        return kind
    }
}
