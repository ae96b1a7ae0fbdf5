/// Rules compiled into a *program*: one contiguous record per rule, the rules of a bucket one after the
/// other, pattern bytes inline. Confirming a bucket's candidates is then a walk over a few consecutive cache
/// lines rather than a chase through separate arrays.
///
/// Record of a rule (32-bit words; offsets relative to the record):
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

/// What a check reads from the request.
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
    case never
}

enum RuleCategory: UInt32, Sendable {
    case allow, deny, custom, audit
    /// Any action, in a dry-run policy: reported, never enforced.
    case dryRun
}

/// Words of a record before its clauses.
let recordHeaderWords = 11
/// Where a record holds its rule's `Decision.Details` address (two words).
let recordDetailsWord = 9

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

    @inline(__always) func int64(_ word: Int) -> UInt64 {
        assert(word >= 0 && word + 1 < wordCount, "Program double word out of bounds")
        return base.loadUnaligned(fromByteOffset: word &* 4, as: UInt64.self)
    }

    /// The `Decision.Details` of the rule whose record starts at `record` (kept alive by the compiled set).
    @inline(__always)
    func details(_ record: Int) -> UnsafeRawPointer {
        UnsafeRawPointer(bitPattern: UInt(int64(record + recordDetailsWord)))!
    }

    @inline(__always)
    func bytes(_ word: Int, _ count: Int) -> Bytes {
        Bytes(start: (base + word &* 4).assumingMemoryBound(to: UInt8.self), count: count)
    }
}

/// Emits rule records.
struct ProgramBuilder {
    var words: [UInt32] = []
    var headerNames: [String] = []
    var claimPaths: [[String]] = []
    private var headerIndex: [String: UInt32] = [:]
    private var claimIndex: [[String]: UInt32] = [:]

    /// Appends the record of `rule`; returns its offset.
    mutating func emit(_ rule: Rule, policyNamespace: String, category: RuleCategory, rank: UInt32, global: UInt32) -> UInt32 {
        let start = words.count
        words += [category.rawValue, rank, global, 0, UInt32(rule.to.count), UInt32(rule.from.count), 0, 0, UInt32(rule.when.count), 0, 0]
        for operation in rule.to { emitClause { $0.emit(operation) } }
        words[start + 6] = UInt32(words.count - start)
        for source in rule.from { emitClause { $0.emit(source, policyNamespace: policyNamespace) } }
        words[start + 7] = UInt32(words.count - start)
        // Cheap checks first: the order of an AND does not change its value.
        for condition in rule.when.sorted(by: { Self.cost($0.key) < Self.cost($1.key) }) {
            emit(condition, policyNamespace: policyNamespace)
        }
        words[start + 3] = UInt32(words.count - start)
        return UInt32(start)
    }

    private static func cost(_ key: ConditionKey) -> Int {
        switch key {
        case .destinationPort, .sourceIP, .remoteIP, .destinationIP: return 0
        case .sourcePrincipal, .connectionSNI, .sourceTrustDomain, .requestAuthPrincipal: return 1
        case .sourceNamespace, .sourceServiceAccount, .requestHeader: return 2
        default: return 3
        }
    }

    /// A clause whose check count is not known until its checks are emitted.
    private mutating func emitClause(_ body: (inout ProgramBuilder) -> Int) {
        let start = words.count
        words += [0, 0]
        let checks = body(&self)
        words[start] = UInt32(checks)
        words[start + 1] = UInt32(words.count - start)
    }

    /// Returns 1 when a check was emitted (a field with values), 0 otherwise.
    @discardableResult
    private mutating func check(_ attribute: Attribute, argument: UInt32 = 0, _ values: [String], _ negated: [String],
                                _ matcher: (inout ProgramBuilder, String) -> Void) -> Int {
        guard !values.isEmpty || !negated.isEmpty else { return 0 }
        let start = words.count
        words += [attribute.rawValue, argument, UInt32(values.count), UInt32(negated.count), 0]
        for value in values + negated { matcher(&self, value) }
        words[start + 4] = UInt32(words.count - start)
        return 1
    }

    private mutating func emit(_ operation: Operation) -> Int {
        // Ports and methods are the cheapest to reject on.
        check(.port, operation.ports.map(String.init), operation.notPorts.map(String.init)) { $0.port(Int($1)) }
            + check(.method, operation.methods, operation.notMethods) { $0.string($1, star: .present) }
            + check(.path, operation.paths, operation.notPaths) { $0.path($1) }
            + check(.host, operation.hosts, operation.notHosts) { $0.string($1, star: .present, lowered: true) }
    }

    private mutating func emit(_ source: Source, policyNamespace: String) -> Int {
        check(.principal, source.principals, source.notPrincipals) { $0.principal($1) }
            + check(.principal, source.namespaces, source.notNamespaces) { $0.namespace($1) }
            + check(.principal, source.serviceAccounts, source.notServiceAccounts) { $0.serviceAccount($1, policyNamespace) }
            + check(.principal, source.trustDomains, source.notTrustDomains) { $0.trustDomain($1) }
            + check(.requestPrincipal, source.requestPrincipals, source.notRequestPrincipals) { $0.requestPrincipal($1) }
            + check(.sourceIP, source.ipBlocks.map(\.text), source.notIpBlocks.map(\.text)) { $0.ip($1) }
            + check(.remoteIP, source.remoteIpBlocks.map(\.text), source.notRemoteIpBlocks.map(\.text)) { $0.ip($1) }
    }

    private mutating func emit(_ condition: Condition, policyNamespace: String) {
        let values = condition.values, negated = condition.notValues
        switch condition.key {
        case .requestHeader(let name):
            // Pseudo-headers read the request line, as `CheckRequest.HTTP.header(named:)` does.
            switch name {
            case ":authority", "host": check(.authorityHeader, argument: headerID(name), values, negated) { $0.string($1, star: .present) }
            case ":method": check(.method, values, negated) { $0.string($1, star: .present) }
            case ":path": check(.rawPath, values, negated) { $0.string($1, star: .present) }
            default: check(.header, argument: headerID(name), values, negated) { $0.string($1, star: .present) }
            }
        case .sourceIP: check(.sourceIP, values, negated) { $0.ip($1) }
        case .remoteIP: check(.remoteIP, values, negated) { $0.ip($1) }
        case .destinationIP: check(.destinationIP, values, negated) { $0.ip($1) }
        case .sourceNamespace: check(.principal, values, negated) { $0.namespace($1) }
        case .sourcePrincipal: check(.principal, values, negated) { $0.principal($1) }
        case .sourceServiceAccount: check(.principal, values, negated) { $0.serviceAccount($1, policyNamespace) }
        case .sourceTrustDomain: check(.principal, values, negated) { $0.trustDomain($1) }
        case .requestAuthPrincipal: check(.requestPrincipal, values, negated) { $0.requestPrincipal($1) }
        case .requestAuthAudiences: check(.claim, argument: claimID(["aud"]), values, negated) { $0.string($1, star: .nonEmpty) }
        case .requestAuthPresenter: check(.claim, argument: claimID(["azp"]), values, negated) { $0.string($1, star: .nonEmpty) }
        case .requestAuthClaims(let path): check(.claim, argument: claimID(path), values, negated) { $0.string($1, star: .nonEmpty) }
        case .destinationPort: check(.port, values, negated) { $0.port(Int($1)) }
        case .connectionSNI: check(.sni, values, negated) { $0.string($1, star: .nonEmpty) }
        case .experimentalEnvoyFilter: check(.absent, values, negated) { builder, _ in builder.matcher(.never) }
        }
    }

    private mutating func headerID(_ name: String) -> UInt32 {
        if let id = headerIndex[name] { return id }
        headerNames.append(name)
        headerIndex[name] = UInt32(headerNames.count - 1)
        return UInt32(headerNames.count - 1)
    }

    private mutating func claimID(_ path: [String]) -> UInt32 {
        if let id = claimIndex[path] { return id }
        claimPaths.append(path)
        claimIndex[path] = UInt32(claimPaths.count - 1)
        return UInt32(claimPaths.count - 1)
    }

    // MARK: Matchers

    private mutating func append(bytes: [UInt8]) {
        var word: UInt32 = 0
        for (i, byte) in bytes.enumerated() {
            word |= UInt32(byte) << (UInt32(i % 4) * 8)
            if i % 4 == 3 { words.append(word); word = 0 }
        }
        if bytes.count % 4 != 0 { words.append(word) }
    }

    /// `[header, length, extra words..., bytes...]`
    private mutating func matcher(_ kind: MatcherKind, form: UInt32 = 0, lowered: Bool = false, extra: UInt32 = 0,
                                  _ counts: [UInt32] = [], _ byteRuns: [[UInt8]] = []) {
        let start = words.count
        words += [kind.rawValue | form << 8 | (lowered ? 1 : 0) << 16 | extra << 24, 0]
        words += counts
        for run in byteRuns { append(bytes: run) }
        words[start + 1] = UInt32(words.count - start)
    }

    /// istiod's string forms: `*` alone, a leading `*` (suffix), a trailing `*` (prefix), or exact. `star` is
    /// what a lone `*` means in this field; `scheme` is prepended to exact and prefix forms (principals:
    /// `spiffe://`) and turns the suffix form into `schemeSuffix`.
    static func pattern(_ value: String, star: StringPattern.Kind, scheme: [UInt8] = [], lowered: Bool = false)
        -> (StringPattern.Kind, [UInt8]) {
        var bytes = Array(value.utf8)
        if lowered { bytes = bytes.map(asciiLower) }
        if bytes == [UInt8(ascii: "*")] { return (star, []) }
        if bytes.first == UInt8(ascii: "*") { return (scheme.isEmpty ? .suffix : .schemeSuffix, Array(bytes.dropFirst())) }
        if bytes.last == UInt8(ascii: "*") { return (.prefix, scheme + bytes.dropLast()) }
        return (.exact, scheme + bytes)
    }

    mutating func string(_ value: String, star: StringPattern.Kind, scheme: [UInt8] = [], lowered: Bool = false) {
        let (form, bytes) = Self.pattern(value, star: star, scheme: scheme, lowered: lowered)
        matcher(.string, form: UInt32(form.rawValue), lowered: lowered && form != star, [UInt32(bytes.count)], [bytes])
    }

    mutating func principal(_ value: String) { string(value, star: .nonEmpty, scheme: spiffeScheme) }

    mutating func namespace(_ value: String) {
        let glob = Array("*/ns/".utf8) + Array(value.utf8) + Array("/*".utf8)
        matcher(.namespaceGlob, [UInt32(glob.count)], [glob])
    }

    mutating func serviceAccount(_ value: String, _ policyNamespace: String) {
        let parts = value.split(separator: "/", maxSplits: 1)
        let (ns, sa) = parts.count == 2 ? (String(parts[0]), String(parts[1])) : (policyNamespace, value)
        let nsBytes = Array(ns.utf8), saBytes = Array(sa.utf8)
        // Two runs, each padded to whole words.
        let start = words.count
        words += [MatcherKind.serviceAccount.rawValue, 0, UInt32(nsBytes.count), UInt32(saBytes.count)]
        append(bytes: nsBytes)
        append(bytes: saBytes)
        words[start + 1] = UInt32(words.count - start)
    }

    mutating func trustDomain(_ value: String) {
        if value == "*" {
            matcher(.string, form: UInt32(StringPattern.Kind.nonEmpty.rawValue), [0])
            return
        }
        let (form, bytes) = Self.pattern(value, star: .nonEmpty)
        matcher(.trustDomain, form: UInt32(form.rawValue), [UInt32(bytes.count)], [bytes])
    }

    /// istiod's `requestPrincipalGenerator`: the value split at its last `/` into issuer and subject.
    mutating func requestPrincipal(_ value: String) {
        let star = UInt8(ascii: "*")
        let bytes = Array(value.utf8)
        let slash = bytes.lastIndex(of: UInt8(ascii: "/"))
        let issuer = slash.map { Array(bytes[..<$0]) } ?? bytes
        let subject = slash.map { Array(bytes[($0 + 1)...]) } ?? []
        typealias Form = (StringPattern.Kind, [UInt8])
        let any: Form = (.nonEmpty, [])
        var forms: (Form, Form)
        if bytes == [star] {
            forms = (any, any)
        } else if bytes.first == star {
            if slash != nil {
                forms = (issuer == [star] ? any : (.suffix, Array(issuer.dropFirst())), (.exact, subject))
            } else {
                forms = (any, (.suffix, Array(bytes.dropFirst())))
            }
        } else if bytes.last == star {
            if slash != nil {
                forms = ((.exact, issuer), subject == [star] ? any : (.prefix, Array(subject.dropLast())))
            } else {
                forms = ((.prefix, Array(bytes.dropLast())), any)
            }
        } else {
            forms = ((.exact, issuer), (.exact, subject))
        }
        let start = words.count
        words += [MatcherKind.requestPrincipal.rawValue | UInt32(forms.0.0.rawValue) << 8 | UInt32(forms.1.0.rawValue) << 24, 0,
                  UInt32(forms.0.1.count), UInt32(forms.1.1.count)]
        append(bytes: forms.0.1)
        append(bytes: forms.1.1)
        words[start + 1] = UInt32(words.count - start)
    }

    mutating func ip(_ text: String) {
        guard let cidr = CIDR(text) else { return matcher(.never) }
        let block = IPBlock(cidr)
        var values: [UInt32] = []
        for value in [block.maskHigh, block.maskLow, block.high, block.low] {
            values += [UInt32(truncatingIfNeeded: value), UInt32(truncatingIfNeeded: value >> 32)]
        }
        matcher(.ip, extra: block.isV4 ? 1 : 0, values)
    }

    mutating func port(_ value: Int?) {
        let bits = UInt64(bitPattern: Int64(value ?? 0))
        matcher(.port, extra: value == nil ? 0 : 1, [UInt32(truncatingIfNeeded: bits), UInt32(truncatingIfNeeded: bits >> 32)])
    }

    mutating func path(_ value: String) {
        guard PathTemplate.isTemplate(value) else { return string(value, star: .nonEmpty) }
        let tokens = PathTemplate(value).tokens
        let start = words.count
        words += [MatcherKind.template.rawValue, 0, UInt32(tokens.count)]
        for token in tokens {
            switch token {
            case .literal(let bytes):
                words.append(TemplateTokenKind.literal.rawValue | UInt32(bytes.count) << 8)
                append(bytes: bytes)
            case .segment: words.append(TemplateTokenKind.segment.rawValue)
            case .rest: words.append(TemplateTokenKind.rest.rawValue)
            }
        }
        words[start + 1] = UInt32(words.count - start)
    }
}

enum TemplateTokenKind: UInt32 {
    case literal, segment, rest
}
