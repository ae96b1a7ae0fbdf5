/// A `PolicySet` compiled for fast decisions: the same answers as `ReferenceEvaluator` (same stage, rule,
/// reason and reports), at a cost that depends on the request and on the policies that apply to its
/// workload, not on the size of the set.
///
/// Layout:
/// - Policies are grouped into *buckets* of policies that apply to exactly the same workloads: the
///   namespace-wide policies of a namespace, the policies of one namespace sharing one selector, and the
///   `targetRefs` policies of one Gateway. A namespace's *scope* finds its buckets for a workload with one
///   hash lookup per selector label key (selectors are indexed by their rarest label).
/// - A request is decided from at most a few buckets: the root namespace's and the workload namespace's.
///   In a bucket with more than `CompileOptions.indexThreshold` rules, candidate rules come from tries over
///   the principal, path, host and method (exact and prefix forms in a forward trie, suffix forms in a
///   reversed one, `*` in a presence list) and a port table; each rule is indexed under its most selective
///   field. Every candidate is then confirmed by its compiled predicate (`CompiledRule`), which also covers
///   the `notX` fields and `when` conditions.
/// - The reported rule is the least rule id (by its text, as Envoy orders its RBAC map) among matching rules
///   of the deciding action; dry-run and AUDIT reports list every matching rule in policy order.
///
/// Immutable after `init`, so one instance can be shared by any number of threads.
public final class CompiledPolicySet: Sendable {
    public let policySet: PolicySet
    public let options: CompileOptions

    // Policies and rules. A rule's global index is its position in evaluation order (policy order, then
    // rule index), which is also the order of dry-run and AUDIT reports.
    let policyIDs: [ResourceID]
    let rules: [RuleEntry]
    let compiledRules: [CompiledRule]
    let clauses: [Clause]
    let checks: [FieldCheck]
    let matchers: [Matcher]
    let templateTokens: [TemplateToken]
    let headerNames: [String]
    let claimPaths: [[String]]
    let arena: ByteArena

    // Which buckets apply to a workload.
    let scopeIndex: [String: Int32]
    let scopes: [Scope]
    let rootScope: Int32
    let buckets: [Bucket]

    // PeerAuthentication.
    let peerAuths: [PeerEntry]
    let meshResolution: Resolution
    let strictReasonDefault: String

    public convenience init(_ set: PolicySet) { self.init(set, options: CompileOptions()) }

    public init(_ set: PolicySet, options: CompileOptions) {
        var compiler = Compiler(set, options: options)
        compiler.run()
        self.policySet = set
        self.options = options
        self.policyIDs = set.authorizationPolicies.map(\.id)
        self.rules = compiler.rules
        self.compiledRules = compiler.ruleCompiler.rules
        self.clauses = compiler.ruleCompiler.clauses
        self.checks = compiler.ruleCompiler.checks
        self.matchers = compiler.ruleCompiler.matchers
        self.templateTokens = compiler.ruleCompiler.templateTokens
        self.headerNames = compiler.ruleCompiler.headerNames
        self.claimPaths = compiler.ruleCompiler.claimPaths
        self.arena = compiler.ruleCompiler.arena.freeze()
        self.scopeIndex = compiler.scopeIndex
        self.scopes = compiler.scopes
        self.rootScope = compiler.scopeIndex[set.options.rootNamespace] ?? -1
        self.buckets = compiler.buckets
        self.peerAuths = compiler.peerAuths
        self.meshResolution = compiler.meshResolution
        self.strictReasonDefault = DecisionReasons.strictPlaintext(decidedBy: nil)
    }

    /// Sizes of what was built, for benchmarks and `/readyz`-style summaries.
    public var statistics: Statistics {
        var indexed = 0, trieBytes = 0
        for bucket in buckets {
            guard let index = bucket.index else { continue }
            indexed += 1
            for strings in [index.principal, index.path, index.method, index.host] {
                if let strings { trieBytes += strings.forward.footprint + strings.backward.footprint + strings.present.count * 4 }
            }
        }
        return Statistics(policies: policyIDs.count, rules: rules.count, scopes: scopes.count, buckets: buckets.count,
                          indexedBuckets: indexed, checks: checks.count, matchers: matchers.count,
                          arenaBytes: arena.count, trieBytes: trieBytes)
    }

    public struct Statistics: Sendable, Hashable {
        public let policies: Int
        public let rules: Int
        public let scopes: Int
        public let buckets: Int
        public let indexedBuckets: Int
        public let checks: Int
        public let matchers: Int
        public let arenaBytes: Int
        public let trieBytes: Int
    }

    // MARK: Deciding

    public func evaluate(_ request: CheckRequest) -> Decision {
        let workloadScope: Int32 = request.destination.namespace.flatMap { scopeIndex[$0] } ?? -1
        // Step 1: PeerAuthentication. Mesh and namespace levels are precomputed per scope.
        var resolution = workloadScope >= 0 ? scopes[Int(workloadScope)].resolution : meshResolution
        if workloadScope >= 0 && scopes[Int(workloadScope)].hasWorkloadPeerAuths {
            var first = Int32.max
            forEachMatchingGroup(scopes[Int(workloadScope)], request.destination.labels) { group in
                if group.peerAuth >= 0 && group.peerAuth < first { first = group.peerAuth }
            }
            if first != .max {
                let peer = peerAuths[Int(first)]
                if peer.mode != .unset { resolution = Resolution(mode: peer.mode, decidedBy: first) }
                if let port = request.destination.port, let portMode = peer.portLevel[port], portMode != .unset {
                    resolution = Resolution(mode: portMode, decidedBy: first)
                }
            }
        }
        if resolution.mode == .strict && !request.source.isMTLS {
            let reason = resolution.decidedBy >= 0 ? peerAuths[Int(resolution.decidedBy)].strictReason : strictReasonDefault
            return Decision(allowed: false, stage: .peerAuthentication, reason: reason, mtlsMode: .strict)
        }
        // Steps 2-6: the buckets of the workload, candidates from each, confirmed.
        return RequestView.with(request) { view in
            var verdicts = Verdicts()
            forEachApplicableBucket(request, workloadScope) { bucket in
                collect(bucket, view, request, &verdicts)
            }
            return decide(verdicts, request, workloadScope, resolution.mode)
        }
    }

    @inline(__always)
    private func forEachMatchingGroup(_ scope: Scope, _ labels: [String: String], _ body: (SelectorGroup) -> Void) {
        for selectorKey in scope.selectorKeys {
            guard let value = labels[selectorKey.key], let groups = selectorKey.groupsByValue[value] else { continue }
            for id in groups {
                let group = scope.groups[Int(id)]
                var selected = true
                for k in 0..<group.otherKeys.count where labels[group.otherKeys[k]] != group.otherValues[k] {
                    selected = false
                    break
                }
                if selected { body(group) }
            }
        }
    }

    /// Every bucket whose policies apply to the request's workload (§2): each at most once.
    @inline(__always)
    private func forEachApplicableBucket(_ request: CheckRequest, _ workloadScope: Int32, _ body: (Int32) -> Void) {
        let labels = request.destination.labels
        if rootScope >= 0 {
            let scope = scopes[Int(rootScope)]
            if scope.wideBucket >= 0 { body(scope.wideBucket) }
            forEachMatchingGroup(scope, labels) { if $0.bucket >= 0 { body($0.bucket) } }
        }
        guard workloadScope >= 0 else { return }
        let scope = scopes[Int(workloadScope)]
        if workloadScope != rootScope {
            if scope.wideBucket >= 0 { body(scope.wideBucket) }
            forEachMatchingGroup(scope, labels) { if $0.bucket >= 0 { body($0.bucket) } }
        }
        // targetRefs: only Gateway-API gateways, only from their own namespace.
        if !scope.gatewayBuckets.isEmpty, let gateway = labels[gatewayNameLabel], let bucket = scope.gatewayBuckets[gateway] {
            body(bucket)
        }
    }

    /// The matching rules of one bucket, folded into `verdicts`.
    @inline(__always)
    private func collect(_ bucketID: Int32, _ view: RequestView, _ request: CheckRequest, _ verdicts: inout Verdicts) {
        let bucket = buckets[Int(bucketID)]
        if !bucket.allowPolicies.isEmpty { verdicts.hasAllowPolicy = true }
        guard let index = bucket.index else {
            for rule in bucket.rules { consider(rule, view, request, &verdicts) }
            return
        }
        for rule in index.always { consider(rule, view, request, &verdicts) }
        if let strings = index.principal, let value = view.principal {
            strings.lookup(value, lowered: false) { for rule in $0 { consider(rule, view, request, &verdicts) } }
        }
        if let strings = index.path, let value = view.path {
            strings.lookup(value, lowered: false) { for rule in $0 { consider(rule, view, request, &verdicts) } }
        }
        if let strings = index.host, let value = view.host {
            strings.lookup(value, lowered: true) { for rule in $0 { consider(rule, view, request, &verdicts) } }
        }
        if let strings = index.method, let value = view.method {
            strings.lookup(value, lowered: false) { for rule in $0 { consider(rule, view, request, &verdicts) } }
        }
        if !index.ports.isEmpty, let port = view.port, let list = index.ports[port] {
            for rule in list { consider(rule, view, request, &verdicts) }
        }
    }

    @inline(__always)
    private func consider(_ rule: UInt32, _ view: RequestView, _ request: CheckRequest, _ verdicts: inout Verdicts) {
        let entry = rules[Int(rule)]
        switch entry.category {
        case .allow:
            if entry.rank < verdicts.allowRank && matches(rule, view, request) { verdicts.allow = rule; verdicts.allowRank = entry.rank }
        case .deny:
            if entry.rank < verdicts.denyRank && matches(rule, view, request) { verdicts.deny = rule; verdicts.denyRank = entry.rank }
        case .custom:
            if entry.rank < verdicts.customRank && matches(rule, view, request) { verdicts.custom = rule; verdicts.customRank = entry.rank }
        case .audit, .dryRun:
            if matches(rule, view, request) { verdicts.reports.append(rule) }
        }
    }

    private func decide(_ verdicts: Verdicts, _ request: CheckRequest, _ workloadScope: Int32, _ mode: MTLSMode) -> Decision {
        var dryRun: [Decision.Report] = []
        var audit: [Decision.Report] = []
        if !verdicts.reports.isEmpty {
            // A rule can be a candidate twice (two of its values matched): report it once, in policy order.
            var previous: UInt32? = nil
            for rule in verdicts.reports.sorted() where rule != previous {
                previous = rule
                let entry = rules[Int(rule)]
                if entry.category == .dryRun {
                    dryRun.append(Decision.Report(action: entry.action, rule: entry.ruleID))
                } else {
                    audit.append(Decision.Report(action: .audit, rule: entry.ruleID))
                }
            }
        }
        func decision(_ allowed: Bool, _ stage: Decision.Stage, _ reason: String, _ rule: RuleID? = nil) -> Decision {
            Decision(allowed: allowed, stage: stage, reason: reason, rule: rule, mtlsMode: mode, dryRun: dryRun, audit: audit)
        }
        if verdicts.custom != .max {
            let entry = rules[Int(verdicts.custom)]
            return decision(false, .custom, entry.reason, entry.ruleID)
        }
        if verdicts.deny != .max {
            let entry = rules[Int(verdicts.deny)]
            return decision(false, .denyPolicy, entry.reason, entry.ruleID)
        }
        if !verdicts.hasAllowPolicy { return decision(true, .noAllowPolicy, DecisionReasons.noAllowPolicy) }
        if verdicts.allow != .max {
            let entry = rules[Int(verdicts.allow)]
            return decision(true, .allowPolicy, entry.reason, entry.ruleID)
        }
        // Default deny: name the ALLOW policies that apply, in evaluation order.
        var allowPolicies: [UInt32] = []
        forEachApplicableBucket(request, workloadScope) { allowPolicies += buckets[Int($0)].allowPolicies }
        allowPolicies.sort()
        return decision(false, .defaultDeny, DecisionReasons.defaultDeny(allowPolicies: allowPolicies.map { policyIDs[Int($0)] }))
    }

    // MARK: Confirming a candidate rule

    @inline(__always)
    func matches(_ ruleIndex: UInt32, _ view: RequestView, _ request: CheckRequest) -> Bool {
        let rule = compiledRules[Int(ruleIndex)]
        var c = rule.whenStart
        while c < rule.whenEnd {
            if !holds(checks[Int(c)], view, request) { return false }
            c += 1
        }
        return anyClause(rule.toStart, rule.toEnd, view, request) && anyClause(rule.fromStart, rule.fromEnd, view, request)
    }

    @inline(__always)
    private func anyClause(_ start: UInt32, _ end: UInt32, _ view: RequestView, _ request: CheckRequest) -> Bool {
        if start == end { return true }
        var i = start
        clauses: while i < end {
            let clause = clauses[Int(i)]
            i += 1
            var c = clause.start
            while c < clause.end {
                if !holds(checks[Int(c)], view, request) { continue clauses }
                c += 1
            }
            return true
        }
        return false
    }

    /// One field: a positive matcher must match (when there are any) and no negative one may.
    private func holds(_ check: FieldCheck, _ view: RequestView, _ request: CheckRequest) -> Bool {
        switch check.attribute {
        case .principal: return holds(check) { matches($0, view.principal) }
        case .path: return holds(check) { matches($0, view.path) }
        case .method: return holds(check) { matches($0, view.method) }
        case .host: return holds(check) { matches($0, view.host) }
        case .sni: return holds(check) { matches($0, view.sni) }
        case .port: return holds(check) { if case .port(let p) = $0 { p == view.port } else { false } }
        case .sourceIP: return holds(check) { matches($0, view.sourceIP) }
        case .remoteIP: return holds(check) { matches($0, view.remoteIP) }
        case .destinationIP: return holds(check) { matches($0, view.destinationIP) }
        case .requestPrincipal:
            return holds(check) { matcher in
                guard case .requestPrincipal(let issuer, let subject) = matcher,
                      let issuerBytes = view.issuer, let subjectBytes = view.subject else { return false }
                return issuer.matches(issuerBytes, arena) && subject.matches(subjectBytes, arena)
            }
        case .header(let id):
            guard let value = request.request.header(named: headerNames[Int(id)]) else { return holds(check) { _ in false } }
            return value.withBytes { bytes in holds(check) { matches($0, bytes) } }
        case .claim(let id):
            return holdsClaim(check, claimPaths[Int(id)], view, request)
        case .absent:
            return holds(check) { _ in false }
        }
    }

    @inline(__always)
    private func holds(_ check: FieldCheck, _ match: (Matcher) -> Bool) -> Bool {
        if check.positiveStart < check.negativeStart {
            var found = false
            for m in check.positiveStart..<check.negativeStart where match(matchers[Int(m)]) {
                found = true
                break
            }
            if !found { return false }
        }
        for m in check.negativeStart..<check.end where match(matchers[Int(m)]) { return false }
        return true
    }

    @inline(__always)
    private func matches(_ matcher: Matcher, _ value: Bytes?) -> Bool {
        guard let value else { return false }
        switch matcher {
        case .string(let pattern): return pattern.matches(value, arena)
        case .template(let start, let count):
            return templateTokens.withUnsafeBufferPointer { tokens in
                ByteMatching.template(UnsafeBufferPointer(rebasing: tokens[Int(start)..<Int(start + count)]), value, arena)
            }
        case .namespaceGlob(let run): return ByteMatching.glob(arena.bytes(run), value)
        case .serviceAccount(let namespace, let name):
            return ByteMatching.serviceAccount(namespace: arena.bytes(namespace), name: arena.bytes(name), value)
        case .trustDomain(let pattern):
            guard let domain = ByteMatching.trustDomain(value) else { return false }
            return pattern.matches(domain, arena)
        case .requestPrincipal, .ip, .port, .never: return false
        }
    }

    @inline(__always)
    private func matches(_ matcher: Matcher, _ ip: IPAddress?) -> Bool {
        guard let ip, case .ip(let block) = matcher else { return false }
        return block.contains(ip)
    }

    /// `request.auth.claims[...]` (and audiences, presenter): the claim as Envoy's jwt_authn publishes it.
    private func holdsClaim(_ check: FieldCheck, _ path: [String], _ view: RequestView, _ request: CheckRequest) -> Bool {
        if let claims = request.request.claims {
            guard var value = claims[path[0]] else { return holds(check) { _ in false } }
            for key in path.dropFirst() {
                guard let next = value[key] else { return holds(check) { _ in false } }
                value = next
            }
            switch value {
            case .string(let text):
                let split = path.count == 1 && (path[0] == "scope" || path[0] == "permission")
                return text.withBytes { bytes in
                    holds(check) { matcher in
                        split ? ByteMatching.words(bytes) { matches(matcher, $0) } : matches(matcher, bytes)
                    }
                }
            case .array(let items):
                return holds(check) { matcher in
                    items.contains { item in
                        if case .string(let text) = item { return text.withBytes { matches(matcher, $0) } }
                        return false
                    }
                }
            default:
                return holds(check) { _ in false }
            }
        }
        // No claims but a request principal: Envoy's payload then holds only `iss` and `sub`.
        guard request.source.requestPrincipal != nil, path.count == 1 else { return holds(check) { _ in false } }
        let value: Bytes? = path[0] == "iss" ? view.issuer : path[0] == "sub" ? view.subject : nil
        return holds(check) { matches($0, value) }
    }
}

public struct CompileOptions: Sendable, Hashable {
    /// A bucket with more rules than this gets tries; a smaller one is scanned rule by rule (tests use 0 to
    /// exercise the tries everywhere).
    public var indexThreshold: Int

    public init(indexThreshold: Int = 12) {
        self.indexThreshold = indexThreshold
    }
}

// MARK: Compiled structures

struct RuleEntry: Sendable {
    enum Category: UInt8, Sendable {
        case allow, deny, custom, audit
        /// Any action, in a dry-run policy: reported, never enforced.
        case dryRun
    }

    var category: Category
    var action: Action
    /// Position of the rule id in Envoy's order (the id text).
    var rank: UInt32
    var policy: UInt32
    var ruleID: RuleID
    /// The decision's reason when this rule decides (ALLOW, DENY, CUSTOM).
    var reason: String
}

struct Bucket: Sendable {
    /// Global rule indices, ascending.
    var rules: [UInt32]
    /// Enforced ALLOW policies (ordinals, ascending): step 5 needs to know whether any applies.
    var allowPolicies: [UInt32]
    var index: BucketIndex?
}

struct BucketIndex: Sendable {
    /// Rules with no indexable field: always candidates.
    var always: [UInt32]
    var principal: StringIndex?
    var path: StringIndex?
    var host: StringIndex?
    var method: StringIndex?
    var ports: [Int: [UInt32]]
}

/// Candidate rules by one string attribute.
struct StringIndex: Sendable {
    /// Exact and prefix keys.
    var forward: ByteTrie
    /// Suffix keys, reversed.
    var backward: ByteTrie
    /// Rules asking only that the attribute be present (`*`).
    var present: [UInt32]

    @inline(__always)
    func lookup(_ value: Bytes, lowered: Bool, _ emit: (UnsafeBufferPointer<UInt32>) -> Void) {
        if !present.isEmpty { present.withUnsafeBufferPointer(emit) }
        if !forward.isEmpty { forward.lookup(value, reversed: false, lowered: lowered, emit) }
        if !backward.isEmpty { backward.lookup(value, reversed: true, lowered: lowered, emit) }
    }
}

struct Scope: Sendable {
    var namespace: String
    /// Namespace-wide policies (mesh-wide in the root namespace).
    var wideBucket: Int32 = -1
    var selectorKeys: [SelectorKey] = []
    var groups: [SelectorGroup] = []
    /// `targetRefs` Gateway policies by gateway name.
    var gatewayBuckets: [String: Int32] = [:]
    /// Mesh level then this namespace's level.
    var resolution: Resolution
    var hasWorkloadPeerAuths = false
}

struct SelectorKey: Sendable {
    var key: String
    var groupsByValue: [String: [UInt32]]
}

/// Policies of one namespace with one selector (AuthorizationPolicy bucket and first PeerAuthentication).
struct SelectorGroup: Sendable {
    /// The selector's labels other than the one it is indexed by.
    var otherKeys: [String]
    var otherValues: [String]
    var bucket: Int32 = -1
    var peerAuth: Int32 = -1
}

struct Resolution: Sendable {
    var mode: MTLSMode
    /// PeerAuthentication ordinal, -1 for the PERMISSIVE default.
    var decidedBy: Int32
}

struct PeerEntry: Sendable {
    var mode: MTLSMode
    var portLevel: [Int: MTLSMode]
    var strictReason: String
}

struct Verdicts {
    var custom = UInt32.max, customRank = UInt32.max
    var deny = UInt32.max, denyRank = UInt32.max
    var allow = UInt32.max, allowRank = UInt32.max
    var reports: [UInt32] = []
    var hasAllowPolicy = false
}

/// The request fields the matcher reads, as bytes, parsed once per decision.
struct RequestView {
    var principal: Bytes?
    var path: Bytes?
    var method: Bytes?
    var host: Bytes?
    var sni: Bytes?
    var issuer: Bytes?
    var subject: Bytes?
    var port: Int?
    var sourceIP: IPAddress?
    var remoteIP: IPAddress?
    var destinationIP: IPAddress?

    /// Copies the strings into one temporary buffer (on the stack when small) and calls `body`.
    @inline(__always)
    static func with<R>(_ request: CheckRequest, _ body: (RequestView) -> R) -> R {
        let principal = request.source.authenticatedPrincipal
        let path = request.request.path
        let method = request.request.method
        let host = request.request.host
        let sni = request.connection.sni
        let jwt = request.source.requestPrincipal
        var claimIssuer: String? = nil, claimSubject: String? = nil
        if jwt == nil, let claims = request.request.claims {
            claimIssuer = claims["iss"]?.stringValue
            claimSubject = claims["sub"]?.stringValue
        }
        @inline(__always) func size(_ s: String?) -> Int { s?.utf8.count ?? 0 }
        let total = size(principal) + size(path) + size(method) + size(host) + size(sni) + size(jwt)
            + size(claimIssuer) + size(claimSubject)
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(total, 1)) { buffer in
            var offset = 0
            @inline(__always) func put(_ s: String?) -> Bytes? {
                guard let s else { return nil }
                let start = offset
                let written = s.withBytes { bytes -> Int in
                    if let source = bytes.baseAddress, bytes.count > 0 {
                        (buffer.baseAddress! + start).initialize(from: source, count: bytes.count)
                    }
                    return bytes.count
                }
                offset += written
                return Bytes(start: buffer.baseAddress! + start, count: written)
            }
            var view = RequestView()
            view.principal = put(principal)
            if let full = put(path) {
                var end = 0
                while end < full.count && full[end] != UInt8(ascii: "?") && full[end] != UInt8(ascii: "#") { end += 1 }
                view.path = Bytes(rebasing: full[..<end])
            }
            view.method = put(method)
            view.host = put(host)
            view.sni = put(sni)
            if let text = put(jwt) {
                // `iss/sub`, split at the last `/`.
                if let slash = text.lastIndex(of: UInt8(ascii: "/")) {
                    view.issuer = Bytes(rebasing: text[..<slash])
                    view.subject = Bytes(rebasing: text[(slash + 1)...])
                } else {
                    view.issuer = text
                }
            } else {
                view.issuer = put(claimIssuer)
                view.subject = put(claimSubject)
            }
            view.port = request.destination.port
            view.sourceIP = request.source.ip
            view.remoteIP = request.source.effectiveRemoteIP
            view.destinationIP = request.destination.ip
            return body(view)
        }
    }
}
