/// Rules compiled into flat arrays of checks: the exact predicate a candidate rule must pass. A rule is
/// `from` (any clause) AND `to` (any clause) AND `when` (every check); a clause is a `Source` or an
/// `Operation` (every check); a check is one attribute against positive and negative matchers.

/// What a check reads from the request.
enum Attribute: Sendable, Hashable {
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
    /// `request.headers[name]` for an ordinary name: `CompiledPolicySet.headerNames[i]`.
    case header(UInt32)
    /// `request.headers[:authority]` or `[host]`: the host, else the header of that name (`headerNames[i]`).
    case authorityHeader(UInt32)
    /// `request.headers[:path]`: the raw path, query included.
    case rawPath
    /// `request.auth.claims[...]`: `CompiledPolicySet.claimPaths[i]`.
    case claim(UInt32)
    /// Never present (`experimental.envoy.filters.*`: no request carries Envoy metadata).
    case absent
}

enum Matcher: Sendable, Hashable {
    case string(StringPattern)
    /// `templateTokens[start ..< start + count]`
    case template(start: UInt32, count: UInt32)
    /// `namespaces`: `*/ns/<value>/*` as a glob over the principal.
    case namespaceGlob(ByteRun)
    case serviceAccount(namespace: ByteRun, name: ByteRun)
    /// `trustDomains` other than `*`: the pattern applies to the trust domain of a `spiffe://` principal.
    case trustDomain(StringPattern)
    case requestPrincipal(issuer: StringPattern, subject: StringPattern)
    case ip(IPBlock)
    /// `ports` and `destination.port`; an unparsable condition value is nil (and compares as Swift does).
    case port(Int?)
    case never
}

struct FieldCheck: Sendable {
    var attribute: Attribute
    /// `matchers[positiveStart ..< negativeStart]` must have a match (when non-empty),
    /// `matchers[negativeStart ..< end]` must have none.
    var positiveStart: UInt32
    var negativeStart: UInt32
    var end: UInt32
}

/// `checks[start ..< end]`, all of which must hold.
struct Clause: Sendable {
    var start: UInt32
    var end: UInt32
}

struct CompiledRule: Sendable {
    /// `clauses[fromStart ..< fromEnd]`: sources, any one (none: any source).
    var fromStart: UInt32
    var fromEnd: UInt32
    /// `clauses[toStart ..< toEnd]`: operations, any one (none: any operation).
    var toStart: UInt32
    var toEnd: UInt32
    /// `checks[whenStart ..< whenEnd]`: conditions, all.
    var whenStart: UInt32
    var whenEnd: UInt32
}

/// Builds the flat arrays.
struct RuleCompiler {
    var arena = ByteArenaBuilder()
    var matchers: [Matcher] = []
    var checks: [FieldCheck] = []
    var clauses: [Clause] = []
    var rules: [CompiledRule] = []
    var templateTokens: [TemplateToken] = []
    var headerNames: [String] = []
    var claimPaths: [[String]] = []
    private var headerIndex: [String: UInt32] = [:]
    private var claimIndex: [[String]: UInt32] = [:]
    private var templateIndex: [String: Matcher] = [:]

    mutating func compile(_ rule: Rule, policyNamespace: String) -> UInt32 {
        let fromStart = UInt32(clauses.count)
        for source in rule.from { clauses.append(compile(source, policyNamespace: policyNamespace)) }
        let fromEnd = UInt32(clauses.count)
        for operation in rule.to { clauses.append(compile(operation)) }
        let toEnd = UInt32(clauses.count)
        let whenStart = UInt32(checks.count)
        // Cheap checks first: the order of an AND does not change its value.
        for condition in rule.when.sorted(by: { Self.cost($0.key) < Self.cost($1.key) }) {
            compile(condition, policyNamespace: policyNamespace)
        }
        rules.append(CompiledRule(fromStart: fromStart, fromEnd: fromEnd, toStart: fromEnd, toEnd: toEnd,
                                  whenStart: whenStart, whenEnd: UInt32(checks.count)))
        return UInt32(rules.count - 1)
    }

    private static func cost(_ key: ConditionKey) -> Int {
        switch key {
        case .destinationPort, .sourceIP, .remoteIP, .destinationIP: return 0
        case .sourcePrincipal, .connectionSNI, .sourceTrustDomain, .requestAuthPrincipal: return 1
        case .sourceNamespace, .sourceServiceAccount, .requestHeader: return 2
        default: return 3
        }
    }

    private mutating func addCheck(_ attribute: Attribute, _ values: [String], _ negated: [String], _ make: (inout RuleCompiler, String) -> Matcher) {
        guard !values.isEmpty || !negated.isEmpty else { return }
        let positiveStart = UInt32(matchers.count)
        for value in values { matchers.append(make(&self, value)) }
        let negativeStart = UInt32(matchers.count)
        for value in negated { matchers.append(make(&self, value)) }
        checks.append(FieldCheck(attribute: attribute, positiveStart: positiveStart, negativeStart: negativeStart,
                                 end: UInt32(matchers.count)))
    }

    private mutating func compile(_ source: Source, policyNamespace: String) -> Clause {
        let start = UInt32(checks.count)
        addCheck(.principal, source.principals, source.notPrincipals) { $0.principalMatcher($1) }
        addCheck(.principal, source.namespaces, source.notNamespaces) { $0.namespaceMatcher($1) }
        addCheck(.principal, source.serviceAccounts, source.notServiceAccounts) {
            $0.serviceAccountMatcher($1, policyNamespace: policyNamespace)
        }
        addCheck(.principal, source.trustDomains, source.notTrustDomains) { $0.trustDomainMatcher($1) }
        addCheck(.requestPrincipal, source.requestPrincipals, source.notRequestPrincipals) { $0.requestPrincipalMatcher($1) }
        addCheck(.sourceIP, source.ipBlocks.map(\.text), source.notIpBlocks.map(\.text)) { _, text in
            CIDR(text).map { .ip(IPBlock($0)) } ?? .never
        }
        addCheck(.remoteIP, source.remoteIpBlocks.map(\.text), source.notRemoteIpBlocks.map(\.text)) { _, text in
            CIDR(text).map { .ip(IPBlock($0)) } ?? .never
        }
        return Clause(start: start, end: UInt32(checks.count))
    }

    private mutating func compile(_ operation: Operation) -> Clause {
        let start = UInt32(checks.count)
        // Ports and methods are the cheapest to reject on.
        addCheck(.port, operation.ports.map(String.init), operation.notPorts.map(String.init)) { _, text in .port(Int(text)) }
        addCheck(.method, operation.methods, operation.notMethods) { .string(StringPattern.compile($1, star: .present, &$0.arena)) }
        addCheck(.path, operation.paths, operation.notPaths) { $0.pathMatcher($1) }
        addCheck(.host, operation.hosts, operation.notHosts) {
            .string(StringPattern.compile($1, star: .present, lowered: true, &$0.arena))
        }
        return Clause(start: start, end: UInt32(checks.count))
    }

    private mutating func compile(_ condition: Condition, policyNamespace: String) {
        let values = condition.values, negated = condition.notValues
        switch condition.key {
        case .requestHeader(let name):
            // Pseudo-headers read the request line, as `CheckRequest.HTTP.header(named:)` says.
            let attribute: Attribute
            switch name {
            case ":authority", "host": attribute = .authorityHeader(headerID(name))
            case ":method": attribute = .method
            case ":path": attribute = .rawPath
            default: attribute = .header(headerID(name))
            }
            addCheck(attribute, values, negated) { .string(StringPattern.compile($1, star: .present, &$0.arena)) }
        case .sourceIP, .remoteIP, .destinationIP:
            let attribute: Attribute = condition.key == .sourceIP ? .sourceIP : condition.key == .remoteIP ? .remoteIP : .destinationIP
            addCheck(attribute, values, negated) { _, text in CIDR(text).map { .ip(IPBlock($0)) } ?? .never }
        case .sourceNamespace:
            addCheck(.principal, values, negated) { $0.namespaceMatcher($1) }
        case .sourcePrincipal:
            addCheck(.principal, values, negated) { $0.principalMatcher($1) }
        case .sourceServiceAccount:
            addCheck(.principal, values, negated) { $0.serviceAccountMatcher($1, policyNamespace: policyNamespace) }
        case .sourceTrustDomain:
            addCheck(.principal, values, negated) { $0.trustDomainMatcher($1) }
        case .requestAuthPrincipal:
            addCheck(.requestPrincipal, values, negated) { $0.requestPrincipalMatcher($1) }
        case .requestAuthAudiences:
            addCheck(.claim(claimID(["aud"])), values, negated) { .string(StringPattern.compile($1, star: .nonEmpty, &$0.arena)) }
        case .requestAuthPresenter:
            addCheck(.claim(claimID(["azp"])), values, negated) { .string(StringPattern.compile($1, star: .nonEmpty, &$0.arena)) }
        case .requestAuthClaims(let path):
            addCheck(.claim(claimID(path)), values, negated) { .string(StringPattern.compile($1, star: .nonEmpty, &$0.arena)) }
        case .destinationPort:
            addCheck(.port, values, negated) { _, text in .port(Int(text)) }
        case .connectionSNI:
            addCheck(.sni, values, negated) { .string(StringPattern.compile($1, star: .nonEmpty, &$0.arena)) }
        case .experimentalEnvoyFilter:
            addCheck(.absent, values, negated) { _, _ in .never }
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

    // MARK: Matchers, one per field (§6–§8 of the reference)

    mutating func principalMatcher(_ value: String) -> Matcher {
        .string(StringPattern.compile(value, star: .nonEmpty, scheme: spiffeScheme, &arena))
    }

    mutating func namespaceMatcher(_ value: String) -> Matcher {
        .namespaceGlob(arena.add(Array("*/ns/".utf8) + Array(value.utf8) + Array("/*".utf8)))
    }

    mutating func serviceAccountMatcher(_ value: String, policyNamespace: String) -> Matcher {
        let parts = value.split(separator: "/", maxSplits: 1)
        let (ns, sa) = parts.count == 2 ? (String(parts[0]), String(parts[1])) : (policyNamespace, value)
        return .serviceAccount(namespace: arena.add(ns.utf8), name: arena.add(sa.utf8))
    }

    mutating func trustDomainMatcher(_ value: String) -> Matcher {
        if value == "*" { return .string(StringPattern(kind: .nonEmpty, lowered: false, run: .empty)) }
        return .trustDomain(StringPattern.compile(value, star: .nonEmpty, &arena))
    }

    /// istiod's `requestPrincipalGenerator`: the value split at its last `/` into issuer and subject.
    mutating func requestPrincipalMatcher(_ value: String) -> Matcher {
        let star = UInt8(ascii: "*")
        let bytes = Array(value.utf8)
        let slash = bytes.lastIndex(of: UInt8(ascii: "/"))
        let issuer = slash.map { Array(bytes[..<$0]) } ?? bytes
        let subject = slash.map { Array(bytes[($0 + 1)...]) } ?? []
        func pattern(_ kind: StringPattern.Kind, _ text: [UInt8]) -> StringPattern {
            StringPattern(kind: kind, lowered: false, run: arena.add(text))
        }
        let any = StringPattern(kind: .nonEmpty, lowered: false, run: .empty)
        if bytes == [star] { return .requestPrincipal(issuer: any, subject: any) }
        if bytes.first == star {
            if slash != nil {
                let issuerPattern = issuer == [star] ? any : pattern(.suffix, Array(issuer.dropFirst()))
                return .requestPrincipal(issuer: issuerPattern, subject: pattern(.exact, subject))
            }
            return .requestPrincipal(issuer: any, subject: pattern(.suffix, Array(bytes.dropFirst())))
        }
        if bytes.last == star {
            if slash != nil {
                let subjectPattern = subject == [star] ? any : pattern(.prefix, Array(subject.dropLast()))
                return .requestPrincipal(issuer: pattern(.exact, issuer), subject: subjectPattern)
            }
            return .requestPrincipal(issuer: pattern(.prefix, Array(bytes.dropLast())), subject: any)
        }
        return .requestPrincipal(issuer: pattern(.exact, issuer), subject: pattern(.exact, subject))
    }

    mutating func pathMatcher(_ value: String) -> Matcher {
        guard PathTemplate.isTemplate(value) else { return .string(StringPattern.compile(value, star: .nonEmpty, &arena)) }
        if let known = templateIndex[value] { return known }
        let start = UInt32(templateTokens.count)
        for token in PathTemplate(value).tokens {
            switch token {
            case .literal(let bytes): templateTokens.append(TemplateToken(kind: .literal, run: arena.add(bytes)))
            case .segment: templateTokens.append(TemplateToken(kind: .segment, run: .empty))
            case .rest: templateTokens.append(TemplateToken(kind: .rest, run: .empty))
            }
        }
        let matcher = Matcher.template(start: start, count: UInt32(templateTokens.count) - start)
        templateIndex[value] = matcher
        return matcher
    }
}
