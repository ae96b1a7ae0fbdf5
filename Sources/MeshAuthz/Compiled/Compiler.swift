/// Builds the structures of a `CompiledPolicySet` from a `PolicySet`.
struct Compiler {
    let set: PolicySet
    let options: CompileOptions
    var program = ProgramBuilder()
    var arena = ByteArenaBuilder()
    var ruleCategories: [RuleCategory] = []
    var ruleRanks: [UInt32] = []
    var ruleIDs: [RuleID] = []
    var ruleActions: [Action] = []
    var ruleReasons: [String] = []
    var pool = PoolBuilder()
    var buckets: [BucketHot] = []
    var indices: [IndexHot] = []
    var portEntries: [PortEntry] = []
    var scopes: [ScopeHot] = []
    var groups: [GroupHot] = []
    var groupLabels: [LabelRuns] = []
    var namespaceTable: [NamespaceSlot] = []
    var labelTable: [LabelSlot] = []
    var peers: [PeerHot] = []
    var peerPorts: [PeerPort] = []
    var rootScope: Int32 = -1
    /// The hash of each scope's namespace name (`namespaceSeed`): label slots are filed under it.
    var namespaceHashes: [UInt64] = []
    var meshModeRaw = MTLSModeCode.permissive
    var meshDecidedBy: Int32 = -1
    var meshWideReason: Int32 = -1
    var maxGroupsPerSlot = 0
    var defaultDenyReasons: [String] = []
    /// Global rule indices of each policy.
    private var policyRules: [[UInt32]] = []
    /// Policy ordinal and rule index of each global rule.
    private var ruleOwners: [(policy: Int, index: Int)] = []

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
        for (ordinal, policy) in set.authorizationPolicies.enumerated() {
            var indices: [UInt32] = []
            let category: RuleCategory
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
            for index in policy.rules.indices {
                let global = UInt32(ruleIDs.count)
                let id = policy.ruleID(index)
                switch category {
                case .allow: ruleReasons.append(DecisionReasons.allow(rule: id))
                case .deny: ruleReasons.append(DecisionReasons.deny(rule: id))
                case .custom: ruleReasons.append(DecisionReasons.custom(rule: id, provider: policy.provider ?? "?"))
                case .audit, .dryRun: ruleReasons.append("")
                }
                ruleCategories.append(category)
                ruleIDs.append(id)
                ruleActions.append(policy.action)
                ruleOwners.append((ordinal, index))
                indices.append(global)
            }
            policyRules.append(indices)
        }
        // Envoy reports the least matching rule in the order of its id text.
        let order = ruleIDs.indices.sorted { ruleIDs[$0].description < ruleIDs[$1].description }
        ruleRanks = Array(repeating: 0, count: ruleIDs.count)
        for (rank, index) in order.enumerated() { ruleRanks[index] = UInt32(rank) }
    }

    // MARK: PeerAuthentication

    private mutating func compilePeerAuthentications() {
        for peer in set.peerAuthentications {
            let start = UInt32(peerPorts.count)
            for (port, mode) in peer.portLevel.sorted(by: { $0.key < $1.key }) {
                peerPorts.append(PeerPort(port: port, modeRaw: MTLSModeCode.code(mode)))
            }
            peers.append(PeerHot(modeRaw: MTLSModeCode.code(peer.mode), portsStart: start, portsEnd: UInt32(peerPorts.count)))
        }
        if let mesh = set.peerAuthentications.firstIndex(where: { $0.id.namespace == set.options.rootNamespace && $0.isNamespaceWide }) {
            (meshModeRaw, meshDecidedBy) = apply((meshModeRaw, meshDecidedBy), Int32(mesh))
        }
    }

    /// A level's mode overrides the inherited one unless it is UNSET.
    private func apply(_ resolution: (UInt8, Int32), _ peer: Int32) -> (UInt8, Int32) {
        let mode = set.peerAuthentications[Int(peer)].mode
        return mode == .unset ? resolution : (MTLSModeCode.code(mode), peer)
    }

    // MARK: Scopes, buckets and the label table

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

    private struct SlotKey: Hashable {
        var scope: Int32
        var key: String
        var value: String
    }

    private func enforcedAllow(_ policies: [UInt32]) -> [UInt32] {
        policies.filter {
            let policy = set.authorizationPolicies[Int($0)]
            return policy.action == .allow && !policy.dryRun
        }
    }

    private mutating func reason(_ allowPolicies: [UInt32]) -> Int32 {
        guard !allowPolicies.isEmpty else { return -1 }
        let ids = Array(Set(allowPolicies)).sorted().map { set.authorizationPolicies[Int($0)].id }
        defaultDenyReasons.append(DecisionReasons.defaultDeny(allowPolicies: ids))
        return Int32(defaultDenyReasons.count - 1)
    }

    private mutating func buildScopes() {
        let root = set.options.rootNamespace
        var drafts: [String: ScopeDraft] = [:]
        for (ordinal, policy) in set.authorizationPolicies.enumerated() {
            let namespace = policy.id.namespace
            var draft = drafts[namespace] ?? ScopeDraft()
            if !policy.targetRefs.isEmpty {
                var names: [String] = []
                for ref in policy.targetRefs where ref.group == "gateway.networking.k8s.io" && ref.kind == "Gateway" && !names.contains(ref.name) {
                    names.append(ref.name)
                }
                for name in names { draft.gateways[name, default: []].append(UInt32(ordinal)) }
            } else if let selector = policy.selector, !selector.isEmpty {
                let key = selector.map { LabelPair(key: $0.key, value: $0.value) }.sorted()
                draft.groups[key, default: ([], -1)].policies.append(UInt32(ordinal))
            } else {
                draft.wide.append(UInt32(ordinal))
            }
            drafts[namespace] = draft
        }
        for (ordinal, peer) in set.peerAuthentications.enumerated() {
            let namespace = peer.id.namespace
            var draft = drafts[namespace] ?? ScopeDraft()
            if peer.isNamespaceWide {
                if draft.namespacePeerAuth < 0 { draft.namespacePeerAuth = Int32(ordinal) }
            } else {
                let key = peer.selector!.map { LabelPair(key: $0.key, value: $0.value) }.sorted()
                if (draft.groups[key]?.peerAuth ?? -1) < 0 { draft.groups[key, default: ([], -1)].peerAuth = Int32(ordinal) }
            }
            drafts[namespace] = draft
        }
        let rootWideAllow = enforcedAllow(drafts[root]?.wide ?? [])
        meshWideReason = reason(rootWideAllow)
        var slots: [SlotKey: (groups: [UInt32], gateway: Int32, gatewayReason: Int32)] = [:]
        var namespaceSlots: [(String, Int32)] = []
        for namespace in drafts.keys.sorted() {
            let draft = drafts[namespace]!
            let scopeID = Int32(scopes.count)
            if namespace == root { rootScope = scopeID }
            namespaceSlots.append((namespace, scopeID))
            namespaceHashes.append(Array(namespace.utf8).withUnsafeBufferPointer { hashBytes($0, seed: namespaceSeed) })
            var resolution = (meshModeRaw, meshDecidedBy)
            if draft.namespacePeerAuth >= 0 { resolution = apply(resolution, draft.namespacePeerAuth) }
            let wideAllow = (namespace == root ? [] : rootWideAllow) + enforcedAllow(draft.wide)
            let wide = makeBucket(draft.wide)
            scopes.append(ScopeHot(wideBucket: wide, wide: wide >= 0 ? buckets[Int(wide)] : .empty, modeRaw: resolution.0,
                                   decidedBy: resolution.1, wideReason: reason(wideAllow), keyFilter: 0))
            for (name, policies) in draft.gateways.sorted(by: { $0.key < $1.key }) {
                let key = SlotKey(scope: scopeID, key: gatewayNameLabel, value: name)
                slots[key, default: ([], -1, -1)].gateway = makeBucket(policies)
                let gatewayAllow = enforcedAllow(policies)
                slots[key]!.gatewayReason = gatewayAllow.isEmpty ? -1 : reason(wideAllow + gatewayAllow)
            }
            // File each selector under its rarest label, so a lookup confirms few groups.
            var frequency: [LabelPair: Int] = [:]
            for labels in draft.groups.keys { for label in labels { frequency[label, default: 0] += 1 } }
            for (labels, content) in draft.groups.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
                let filedUnder = labels.min { (frequency[$0]!, $0) < (frequency[$1]!, $1) }!
                let othersStart = UInt32(groupLabels.count)
                for label in labels where label != filedUnder {
                    groupLabels.append(LabelRuns(key: arena.add(label.key.utf8), value: arena.add(label.value.utf8)))
                }
                let groupAllow = enforcedAllow(content.policies)
                let bucket = makeBucket(content.policies)
                groups.append(GroupHot(bucket: bucket, body: bucket >= 0 ? buckets[Int(bucket)] : .empty, peerAuth: content.peerAuth,
                                       othersStart: othersStart, othersEnd: UInt32(groupLabels.count),
                                       reason: groupAllow.isEmpty ? -1 : reason(wideAllow + groupAllow)))
                slots[SlotKey(scope: scopeID, key: filedUnder.key, value: filedUnder.value), default: ([], -1, -1)]
                    .groups.append(UInt32(groups.count - 1))
            }
        }
        for key in slots.keys {
            let keyHash = Array(key.key.utf8).withUnsafeBufferPointer { hashBytes($0, seed: labelKeySeed) }
            scopes[Int(key.scope)].keyFilter |= 1 << (keyHash >> 58)
        }
        buildNamespaceTable(namespaceSlots)
        buildLabelTable(slots)
    }

    private mutating func buildNamespaceTable(_ entries: [(String, Int32)]) {
        var capacity = 8
        while capacity < entries.count * 2 { capacity <<= 1 }
        namespaceTable = Array(repeating: .empty, count: capacity)
        for (name, scope) in entries {
            let hash = namespaceHashes[Int(scope)]
            var i = Int(truncatingIfNeeded: hash) & (capacity - 1)
            while namespaceTable[i].scope >= 0 { i = (i + 1) & (capacity - 1) }
            namespaceTable[i] = NamespaceSlot(name: Array(name.utf8), hash: hash, scope: scope, data: scopes[Int(scope)], arena: &arena)
        }
    }

    private mutating func buildLabelTable(_ slots: [SlotKey: (groups: [UInt32], gateway: Int32, gatewayReason: Int32)]) {
        var capacity = 8
        while capacity < slots.count * 2 { capacity <<= 1 }
        let emptyGroup = GroupHot(bucket: -1, body: .empty, peerAuth: -1, othersStart: 0, othersEnd: 0, reason: -1)
        let empty = LabelSlot(hash: 0, scope: -1, isInline: false, keyCount: 0, valueCount: 0, text: (0, 0, 0, 0),
                              firstGroupIndex: -1, firstGroup: emptyGroup, groupsStart: 0,
                              groupsEnd: 0, gatewayBucket: -1, gateway: .empty, gatewayReason: -1)
        labelTable = Array(repeating: empty, count: capacity)
        for (key, content) in slots.sorted(by: { ($0.key.scope, $0.key.key, $0.key.value) < ($1.key.scope, $1.key.key, $1.key.value) }) {
            let keyBytes = Array(key.key.utf8), valueBytes = Array(key.value.utf8)
            let labelHash = combineHash(keyBytes.withUnsafeBufferPointer { hashBytes($0, seed: labelKeySeed) },
                                        valueBytes.withUnsafeBufferPointer { hashBytes($0, seed: labelValueSeed) })
            let hash = labelSlotHash(labelHash, namespaceHash: namespaceHashes[Int(key.scope)])
            maxGroupsPerSlot = max(maxGroupsPerSlot, content.groups.count)
            var slot = empty
            slot.hash = hash
            slot.scope = key.scope
            if keyBytes.count + valueBytes.count <= LabelSlot.inlineCapacity {
                slot.isInline = true
                slot.keyCount = UInt8(keyBytes.count)
                slot.valueCount = UInt8(valueBytes.count)
                withUnsafeMutableBytes(of: &slot.text) { raw in
                    raw.copyBytes(from: keyBytes + valueBytes)
                }
            } else {
                slot.key = arena.add(keyBytes)
                slot.value = arena.add(valueBytes)
            }
            if let first = content.groups.first {
                slot.firstGroupIndex = Int32(first)
                slot.firstGroup = groups[Int(first)]
            }
            (slot.groupsStart, slot.groupsEnd) = pool.list(content.groups.dropFirst())
            slot.gatewayBucket = content.gateway
            slot.gateway = content.gateway >= 0 ? buckets[Int(content.gateway)] : .empty
            slot.gatewayReason = content.gatewayReason
            var i = Int(truncatingIfNeeded: hash) & (capacity - 1)
            while labelTable[i].scope >= 0 { i = (i + 1) & (capacity - 1) }
            labelTable[i] = slot
        }
    }

    /// -1 when there are no policies.
    private mutating func makeBucket(_ policies: [UInt32]) -> Int32 {
        guard !policies.isEmpty else { return -1 }
        let sorted = policies.sorted()
        // The bucket's rule records, one after the other (a policy in two gateway buckets gets two copies).
        let programStart = UInt32(program.words.count)
        var records: [(global: UInt32, offset: UInt32)] = []
        for ordinal in sorted {
            let policy = set.authorizationPolicies[Int(ordinal)]
            for global in policyRules[Int(ordinal)] {
                let rule = policy.rules[ruleOwners[Int(global)].index]
                let offset = program.emit(rule, policyNamespace: policy.id.namespace, category: ruleCategories[Int(global)],
                                          rank: ruleRanks[Int(global)], global: global)
                records.append((global, offset))
            }
        }
        let programEnd = UInt32(program.words.count)
        let (allowStart, allowEnd) = pool.list(enforcedAllow(sorted))
        var index: Int32 = -1
        if records.count > options.indexThreshold {
            indices.append(makeIndex(records))
            index = Int32(indices.count - 1)
        }
        buckets.append(BucketHot(programStart: programStart, programEnd: programEnd, allowStart: allowStart, allowEnd: allowEnd,
                                 index: index))
        return Int32(buckets.count - 1)
    }

    // MARK: Candidate index of a bucket

    private enum Dimension: Int, Hashable {
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

    /// The fields on which `rule` can be filed: it can only match when the request's attribute matches one
    /// of the keys (a superset: candidates are confirmed afterwards).
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
        var forward = TrieBuilder()
        var backward = TrieBuilder()
        var present: [UInt32] = []

        mutating func add(_ key: Key, _ rule: UInt32) {
            switch key {
            case .exact(let bytes): forward.insert(bytes, prefix: false, id: rule)
            case .prefix(let bytes): forward.insert(bytes, prefix: true, id: rule)
            case .suffix(let bytes): backward.insert(bytes.reversed(), prefix: true, id: rule)
            case .present: present.append(rule)
            case .port: break
            }
        }

        func freeze(into pool: inout PoolBuilder) -> StringIndexHot {
            let (presentStart, presentEnd) = pool.list(Array(Set(present)).sorted())
            return StringIndexHot(forward: forward.freeze(into: &pool), backward: backward.freeze(into: &pool),
                                  presentStart: presentStart, presentEnd: presentEnd)
        }
    }

    /// Candidate lists hold record offsets.
    private mutating func makeIndex(_ records: [(global: UInt32, offset: UInt32)]) -> IndexHot {
        let ruleOptions = records.map { record -> [Option] in
            let (policy, index) = ruleOwners[Int(record.global)]
            return options(set.authorizationPolicies[policy].rules[index])
        }
        // How many rules share each key: the expected number of candidates it brings.
        var frequency: [Dimension: [Key: Int]] = [:]
        for optionsOfRule in ruleOptions {
            for option in optionsOfRule {
                for key in option.keys { frequency[option.dimension, default: [:]][key, default: 0] += 1 }
            }
        }
        let everything = records.count
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
        var strings: [Dimension: StringIndexBuilder] = [:]
        var ports: [Int: [UInt32]] = [:]
        for (position, record) in records.enumerated() {
            let global = record.offset
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
        func freeze(_ dimension: Dimension) -> StringIndexHot {
            strings[dimension]?.freeze(into: &pool) ?? .unused
        }
        let (alwaysStart, alwaysEnd) = pool.list(always)
        let principal = freeze(.principal), path = freeze(.path), host = freeze(.host), method = freeze(.method)
        let portsStart = UInt32(portEntries.count)
        for (port, list) in ports.sorted(by: { $0.key < $1.key }) {
            let (start, end) = pool.list(Array(Set(list)).sorted())
            portEntries.append(PortEntry(port: port, start: start, end: end))
        }
        return IndexHot(alwaysStart: alwaysStart, alwaysEnd: alwaysEnd, principal: principal, path: path, host: host,
                        method: method, portsStart: portsStart, portsEnd: UInt32(portEntries.count))
    }
}
