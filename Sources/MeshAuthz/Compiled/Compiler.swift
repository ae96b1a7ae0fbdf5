/// Builds the structures of a `CompiledPolicySet` from a `PolicySet`.
struct Compiler {
    let set: PolicySet
    let options: CompileOptions
    var ruleCompiler = RuleCompiler()
    var rules: [RuleEntry] = []
    /// Global rule indices of each policy.
    var policyRules: [[UInt32]] = []
    var scopeIndex: [String: Int32] = [:]
    var scopes: [Scope] = []
    var buckets: [Bucket] = []
    var peerAuths: [PeerEntry] = []
    var meshResolution = Resolution(mode: .permissive, decidedBy: -1)

    init(_ set: PolicySet, options: CompileOptions) {
        self.set = set
        self.options = options
    }

    mutating func run() {
        compileRules()
        compilePeerAuthentications()
        buildScopes()
    }

    // MARK: Rules

    private mutating func compileRules() {
        var ids: [RuleID] = []
        for (ordinal, policy) in set.authorizationPolicies.enumerated() {
            var indices: [UInt32] = []
            let category: RuleEntry.Category
            if policy.dryRun {
                category = .dryRun
            } else {
                switch policy.action {
                case .allow: category = .allow
                case .deny: category = .deny
                case .custom: category = .custom
                case .audit: category = .audit
                }
            }
            for (index, rule) in policy.rules.enumerated() {
                let compiled = ruleCompiler.compile(rule, policyNamespace: policy.id.namespace)
                precondition(Int(compiled) == rules.count)
                let id = policy.ruleID(index)
                let reason: String
                switch category {
                case .allow: reason = DecisionReasons.allow(rule: id)
                case .deny: reason = DecisionReasons.deny(rule: id)
                case .custom: reason = DecisionReasons.custom(rule: id, provider: policy.provider ?? "?")
                case .audit, .dryRun: reason = ""
                }
                rules.append(RuleEntry(category: category, action: policy.action, rank: 0, policy: UInt32(ordinal),
                                       ruleID: id, reason: reason))
                ids.append(id)
                indices.append(compiled)
            }
            policyRules.append(indices)
        }
        // Envoy reports the least matching rule in the order of its id text.
        let order = ids.indices.sorted { ids[$0].description < ids[$1].description }
        for (rank, index) in order.enumerated() { rules[index].rank = UInt32(rank) }
    }

    // MARK: PeerAuthentication

    private mutating func compilePeerAuthentications() {
        for peer in set.peerAuthentications {
            peerAuths.append(PeerEntry(mode: peer.mode, portLevel: peer.portLevel,
                                       strictReason: DecisionReasons.strictPlaintext(decidedBy: peer.id)))
        }
        if let mesh = set.peerAuthentications.firstIndex(where: { $0.id.namespace == set.options.rootNamespace && $0.isNamespaceWide }) {
            meshResolution = apply(meshResolution, Int32(mesh))
        }
    }

    private func apply(_ resolution: Resolution, _ peer: Int32) -> Resolution {
        let mode = set.peerAuthentications[Int(peer)].mode
        return mode == .unset ? resolution : Resolution(mode: mode, decidedBy: peer)
    }

    // MARK: Scopes and buckets

    private struct LabelPair: Hashable, Comparable {
        var key: String
        var value: String
        static func < (a: LabelPair, b: LabelPair) -> Bool { (a.key, a.value) < (b.key, b.value) }
    }

    private struct ScopeDraft {
        var wide: [UInt32] = []
        var groups: [[LabelPair]: (policies: [UInt32], peerAuth: Int32)] = [:]
        var gateways: [String: [UInt32]] = [:]
        var namespacePeerAuth: Int32 = -1
    }

    private mutating func buildScopes() {
        var drafts: [String: ScopeDraft] = [:]
        var namespaces: [String] = []
        func touch(_ namespace: String) {
            if drafts[namespace] == nil {
                drafts[namespace] = ScopeDraft()
                namespaces.append(namespace)
            }
        }
        for (ordinal, policy) in set.authorizationPolicies.enumerated() {
            let namespace = policy.id.namespace
            touch(namespace)
            if !policy.targetRefs.isEmpty {
                var names: [String] = []
                for ref in policy.targetRefs where ref.group == "gateway.networking.k8s.io" && ref.kind == "Gateway" && !names.contains(ref.name) {
                    names.append(ref.name)
                }
                for name in names { drafts[namespace]!.gateways[name, default: []].append(UInt32(ordinal)) }
            } else if let selector = policy.selector, !selector.isEmpty {
                let key = selector.map { LabelPair(key: $0.key, value: $0.value) }.sorted()
                drafts[namespace]!.groups[key, default: ([], -1)].policies.append(UInt32(ordinal))
            } else {
                drafts[namespace]!.wide.append(UInt32(ordinal))
            }
        }
        for (ordinal, peer) in set.peerAuthentications.enumerated() {
            let namespace = peer.id.namespace
            touch(namespace)
            if peer.isNamespaceWide {
                if drafts[namespace]!.namespacePeerAuth < 0 { drafts[namespace]!.namespacePeerAuth = Int32(ordinal) }
            } else {
                let key = peer.selector!.map { LabelPair(key: $0.key, value: $0.value) }.sorted()
                if drafts[namespace]!.groups[key]?.peerAuth ?? -1 < 0 {
                    drafts[namespace]!.groups[key, default: ([], -1)].peerAuth = Int32(ordinal)
                }
            }
        }
        for namespace in namespaces.sorted() {
            let draft = drafts[namespace]!
            var resolution = meshResolution
            if draft.namespacePeerAuth >= 0 { resolution = apply(resolution, draft.namespacePeerAuth) }
            var scope = Scope(namespace: namespace, resolution: resolution)
            scope.wideBucket = makeBucket(draft.wide)
            for (name, policies) in draft.gateways.sorted(by: { $0.key < $1.key }) {
                scope.gatewayBuckets[name] = makeBucket(policies)
            }
            // Index each selector by its rarest label, so a lookup confirms few groups.
            var frequency: [LabelPair: Int] = [:]
            for labels in draft.groups.keys { for label in labels { frequency[label, default: 0] += 1 } }
            var byKey: [String: [String: [UInt32]]] = [:]
            for (labels, content) in draft.groups.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
                let indexLabel = labels.min { (frequency[$0]!, $0) < (frequency[$1]!, $1) }!
                let others = labels.filter { $0 != indexLabel }
                var group = SelectorGroup(otherKeys: others.map(\.key), otherValues: others.map(\.value))
                group.bucket = makeBucket(content.policies)
                group.peerAuth = content.peerAuth
                if content.peerAuth >= 0 { scope.hasWorkloadPeerAuths = true }
                scope.groups.append(group)
                byKey[indexLabel.key, default: [:]][indexLabel.value, default: []].append(UInt32(scope.groups.count - 1))
            }
            scope.selectorKeys = byKey.sorted { $0.key < $1.key }.map { SelectorKey(key: $0.key, groupsByValue: $0.value) }
            scopeIndex[namespace] = Int32(scopes.count)
            scopes.append(scope)
        }
    }

    /// -1 when there are no policies.
    private mutating func makeBucket(_ policies: [UInt32]) -> Int32 {
        guard !policies.isEmpty else { return -1 }
        let sorted = policies.sorted()
        var bucketRules: [UInt32] = []
        var allow: [UInt32] = []
        for ordinal in sorted {
            bucketRules += policyRules[Int(ordinal)]
            let policy = set.authorizationPolicies[Int(ordinal)]
            if policy.action == .allow && !policy.dryRun { allow.append(ordinal) }
        }
        var bucket = Bucket(rules: bucketRules, allowPolicies: allow, index: nil)
        if bucketRules.count > options.indexThreshold { bucket.index = makeIndex(bucketRules) }
        buckets.append(bucket)
        return Int32(buckets.count - 1)
    }

    // MARK: Candidate index of a bucket

    private enum Dimension: Int, Hashable, CaseIterable {
        case principal, path, host, method, port
    }

    private enum Key: Hashable {
        case exact([UInt8])
        case prefix([UInt8])
        /// Not reversed yet.
        case suffix([UInt8])
        case present
        case port(Int)
    }

    private struct Option {
        var dimension: Dimension
        var keys: [Key]
    }

    /// The fields on which `rule` can be indexed: a rule can only match if the request's attribute
    /// matches one of the keys (a superset: the candidate is confirmed afterwards).
    private func options(_ rule: Rule) -> [Option] {
        var result: [Option] = []
        if !rule.from.isEmpty && rule.from.allSatisfy({ !$0.principals.isEmpty }) {
            result.append(Option(dimension: .principal, keys: rule.from.flatMap(\.principals).map(principalKey)))
        }
        for condition in rule.when where condition.key == .sourcePrincipal && !condition.values.isEmpty {
            result.append(Option(dimension: .principal, keys: condition.values.map(principalKey)))
        }
        if !rule.to.isEmpty {
            if rule.to.allSatisfy({ !$0.paths.isEmpty }) {
                result.append(Option(dimension: .path, keys: rule.to.flatMap(\.paths).map(pathKey)))
            }
            if rule.to.allSatisfy({ !$0.hosts.isEmpty }) {
                result.append(Option(dimension: .host, keys: rule.to.flatMap(\.hosts).map { stringKey($0, lowered: true) }))
            }
            if rule.to.allSatisfy({ !$0.methods.isEmpty }) {
                result.append(Option(dimension: .method, keys: rule.to.flatMap(\.methods).map { stringKey($0, lowered: false) }))
            }
            if rule.to.allSatisfy({ !$0.ports.isEmpty }) {
                result.append(Option(dimension: .port, keys: rule.to.flatMap(\.ports).map(Key.port)))
            }
        }
        return result.map { Option(dimension: $0.dimension, keys: Array(Set($0.keys))) }
    }

    private func principalKey(_ value: String) -> Key {
        let bytes = Array(value.utf8)
        if bytes == [UInt8(ascii: "*")] { return .present }
        if bytes.first == UInt8(ascii: "*") { return .suffix(Array(bytes.dropFirst())) }
        if bytes.last == UInt8(ascii: "*") { return .prefix(spiffeScheme + bytes.dropLast()) }
        return .exact(spiffeScheme + bytes)
    }

    private func pathKey(_ value: String) -> Key {
        guard PathTemplate.isTemplate(value) else { return stringKey(value, lowered: false) }
        // A template starting with a literal can only match paths starting with it.
        if case .literal(let bytes)? = PathTemplate(value).tokens.first { return .prefix(bytes) }
        return .prefix([])
    }

    private func stringKey(_ value: String, lowered: Bool) -> Key {
        var bytes = Array(value.utf8)
        if lowered { bytes = bytes.map(asciiLower) }
        if bytes == [UInt8(ascii: "*")] { return .present }
        if bytes.first == UInt8(ascii: "*") { return .suffix(Array(bytes.dropFirst())) }
        if bytes.last == UInt8(ascii: "*") { return .prefix(Array(bytes.dropLast())) }
        return .exact(bytes)
    }

    private struct StringIndexBuilder {
        var forward = ByteTrie.Builder()
        var backward = ByteTrie.Builder()
        var present: [UInt32] = []
        var used = false

        mutating func add(_ key: Key, _ rule: UInt32) {
            used = true
            switch key {
            case .exact(let bytes): forward.insert(bytes, prefix: false, id: rule)
            case .prefix(let bytes): forward.insert(bytes, prefix: true, id: rule)
            case .suffix(let bytes): backward.insert(bytes.reversed(), prefix: true, id: rule)
            case .present: present.append(rule)
            case .port: break
            }
        }

        func freeze() -> StringIndex? {
            guard used else { return nil }
            return StringIndex(forward: forward.freeze(), backward: backward.freeze(), present: present.sorted())
        }
    }

    private func makeIndex(_ bucketRules: [UInt32]) -> BucketIndex {
        let ruleOptions = bucketRules.map { global -> [Option] in
            let entry = rules[Int(global)]
            let policy = set.authorizationPolicies[Int(entry.policy)]
            return options(policy.rules[entry.ruleID.index])
        }
        // How many rules share each key: the expected number of candidates it brings.
        var frequency: [Dimension: [Key: Int]] = [:]
        for optionsOfRule in ruleOptions {
            for option in optionsOfRule {
                for key in option.keys { frequency[option.dimension, default: [:]][key, default: 0] += 1 }
            }
        }
        let everything = bucketRules.count
        func cost(_ option: Option) -> Int {
            option.keys.reduce(0) { total, key in
                switch key {
                case .present: return total + everything
                case .prefix(let bytes) where bytes.count <= 1: return total + everything
                case .suffix, .prefix: return total + frequency[option.dimension]![key]! + 1
                case .exact, .port: return total + frequency[option.dimension]![key]!
                }
            }
        }
        var always: [UInt32] = []
        var strings = [Dimension: StringIndexBuilder]()
        var ports: [Int: [UInt32]] = [:]
        for (position, global) in bucketRules.enumerated() {
            var best: Option? = nil
            var bestCost = Int.max
            for option in ruleOptions[position] {
                let c = cost(option)
                if c < bestCost { best = option; bestCost = c }
            }
            guard let best, bestCost < everything || options.indexThreshold == 0 else {
                always.append(global)
                continue
            }
            for key in best.keys {
                if case .port(let port) = key {
                    ports[port, default: []].append(global)
                } else {
                    strings[best.dimension, default: StringIndexBuilder()].add(key, global)
                }
            }
        }
        return BucketIndex(always: always, principal: strings[.principal]?.freeze(), path: strings[.path]?.freeze(),
                           host: strings[.host]?.freeze(), method: strings[.method]?.freeze(),
                           ports: ports.mapValues { $0.sorted() })
    }
}
