/// Builds the tables of a `CompiledPolicySet` from a `PolicySet` (`Compiler.compile`): rules into records
/// (`ProgramBuilder`), policies into buckets by the workloads they apply to, buckets into the hash tables
/// (Slots.swift), big buckets into candidate indices (Compiler+Index.swift).
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
    var buckets: [Bucket] = []
    var indices: [CandidateIndex] = []
    var portEntries: [PortEntry] = []
    var scopes: [Scope] = []
    var groups: [SelectorGroup] = []
    var groupLabels: [LabelRuns] = []
    var namespaceTable: [NamespaceSlot] = []
    var labelTable: [LabelSlot] = []
    var peers: [PeerEntry] = []
    var peerPorts: [PeerPort] = []
    var rootScope: Int32 = -1
    /// The hash of each scope's namespace name (`namespaceSeed`): label slots are filed under it.
    var namespaceHashes: [UInt64] = []
    var meshMode = MTLSMode.permissive
    var meshDecidedBy: Int32 = -1
    var meshWideReason: Int32 = -1
    var maxGroupsPerSlot = 0
    var defaultDenyReasons: [String] = []
    /// Global rule indices of each policy.
    private var policyRules: [[UInt32]] = []
    /// Policy ordinal and rule index (within the policy) of each rule, by global rule index.
    var ruleOwners: [(policy: Int, index: Int)] = []

    private init(_ set: PolicySet, options: CompileOptions) {
        self.set = set
        self.options = options
    }

    static func compile(_ set: PolicySet, options: CompileOptions) -> CompiledTables {
        var compiler = Compiler(set, options: options)
        compiler.compileRules()
        compiler.compilePeerAuthentications()
        compiler.buildScopes()
        return compiler.finish()
    }

    /// The immutable tables: the answers' objects built once, and their addresses linked into the records.
    private func finish() -> CompiledTables {
        let ruleDetails = zip(ruleIDs, ruleReasons).map { Decision.Details(reason: $1, rule: $0) }
        let defaultDenyDetails = defaultDenyReasons.map { Decision.Details(reason: $0) }
        let root = rootScope >= 0 ? scopes[Int(rootScope)] : Scope.none
        return CompiledTables(
            policyIDs: set.authorizationPolicies.map(\.id), ruleIDs: ruleIDs, ruleActions: ruleActions,
            ruleCategories: ruleCategories, ruleDetails: ruleDetails,
            peerDetails: set.peerAuthentications.map { Decision.Details(reason: DecisionReasons.strictPlaintext(decidedBy: $0.id)) },
            strictDetailsDefault: Decision.Details(reason: DecisionReasons.strictPlaintext(decidedBy: nil)),
            defaultDenyDetails: defaultDenyDetails,
            defaultDenyAddresses: Frozen(defaultDenyDetails.map { UnsafeRawPointer(Unmanaged.passUnretained($0).toOpaque()) }),
            noAllowPolicyDetails: Decision.Details(reason: DecisionReasons.noAllowPolicy),
            headerNames: program.headerNames, claimPaths: program.claimPaths,
            program: Program(linkDetails(ruleDetails)), arena: arena.freeze(), lists: Frozen(pool.lists),
            tries: TriePools(nodes: Frozen(pool.nodes), labels: Frozen(pool.labels)),
            buckets: Frozen(buckets), indices: Frozen(indices), portEntries: Frozen(portEntries), scopes: Frozen(scopes),
            groups: Frozen(groups), groupLabels: Frozen(groupLabels), namespaceTable: Frozen(namespaceTable),
            labelTable: Frozen(labelTable), peers: Frozen(peers), peerPorts: Frozen(peerPorts),
            rootScope: rootScope, rootNamespaceHash: rootScope >= 0 ? namespaceHashes[Int(rootScope)] : 0, rootScopeData: root,
            anyScopeKeys: scopes.reduce(0) { $0 | $1.keyFilter },
            meshMode: meshMode, meshDecidedBy: meshDecidedBy, meshWideReason: meshWideReason, maxGroupsPerSlot: maxGroupsPerSlot)
    }

    /// Writes into each rule record the address of its rule's `Decision.Details`, so that the answer is
    /// found from the record just confirmed (in cache) rather than from a separate array (a miss).
    private func linkDetails(_ details: [Decision.Details]) -> [UInt32] {
        var words = program.words
        for bucket in buckets {
            var record = Int(bucket.programStart)
            while record < Int(bucket.programEnd) {
                let address = UInt64(UInt(bitPattern: Unmanaged.passUnretained(details[Int(words[record + RuleRecord.Word.ruleIndex])]).toOpaque()))
                words[record + RuleRecord.Word.details] = UInt32(truncatingIfNeeded: address)
                words[record + RuleRecord.Word.details + 1] = UInt32(truncatingIfNeeded: address >> 32)
                record += Int(words[record + RuleRecord.Word.length])
            }
        }
        return words
    }

    // MARK: Rules

    mutating func compileRules() {
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
                let ruleIndex = UInt32(ruleIDs.count)
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
                indices.append(ruleIndex)
            }
            policyRules.append(indices)
        }
        // Envoy reports the least matching rule in the order of its id text.
        let order = ruleIDs.indices.sorted { ruleIDs[$0].description < ruleIDs[$1].description }
        ruleRanks = Array(repeating: 0, count: ruleIDs.count)
        for (rank, index) in order.enumerated() { ruleRanks[index] = UInt32(rank) }
    }

    // MARK: PeerAuthentication

    mutating func compilePeerAuthentications() {
        for peer in set.peerAuthentications {
            let start = UInt32(peerPorts.count)
            for (port, mode) in peer.portLevel.sorted(by: { $0.key < $1.key }) {
                peerPorts.append(PeerPort(port: port, mode: mode))
            }
            peers.append(PeerEntry(mode: peer.mode, portsStart: start, portsEnd: UInt32(peerPorts.count)))
        }
        if let mesh = set.peerAuthentications.firstIndex(where: { $0.id.namespace == set.options.rootNamespace && $0.isNamespaceWide }) {
            (meshMode, meshDecidedBy) = apply((meshMode, meshDecidedBy), Int32(mesh))
        }
    }

    /// A level's mode overrides the inherited one unless it is UNSET.
    private func apply(_ resolution: (MTLSMode, Int32), _ peer: Int32) -> (MTLSMode, Int32) {
        let mode = set.peerAuthentications[Int(peer)].mode
        return mode == .unset ? resolution : (mode, peer)
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

    mutating func buildScopes() {
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
            var resolution = (meshMode, meshDecidedBy)
            if draft.namespacePeerAuth >= 0 { resolution = apply(resolution, draft.namespacePeerAuth) }
            let wideAllow = (namespace == root ? [] : rootWideAllow) + enforcedAllow(draft.wide)
            let wide = makeBucket(draft.wide)
            scopes.append(Scope(wideBucket: wide, wide: wide >= 0 ? buckets[Int(wide)] : .empty, mode: resolution.0,
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
                groups.append(SelectorGroup(bucket: bucket, body: bucket >= 0 ? buckets[Int(bucket)] : .empty, peerAuth: content.peerAuth,
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
        let empty = LabelSlot(hash: 0, scope: -1, isInline: false, keyCount: 0, valueCount: 0, text: (0, 0, 0, 0),
                              firstGroupIndex: -1, firstGroup: .empty, groupsStart: 0,
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
        var records: [(ruleIndex: UInt32, offset: UInt32)] = []
        for ordinal in sorted {
            let policy = set.authorizationPolicies[Int(ordinal)]
            for ruleIndex in policyRules[Int(ordinal)] {
                let rule = policy.rules[ruleOwners[Int(ruleIndex)].index]
                let offset = program.emit(rule, policyNamespace: policy.id.namespace, category: ruleCategories[Int(ruleIndex)],
                                          rank: ruleRanks[Int(ruleIndex)], ruleIndex: ruleIndex)
                records.append((ruleIndex, offset))
            }
        }
        let programEnd = UInt32(program.words.count)
        let (allowStart, allowEnd) = pool.list(enforcedAllow(sorted))
        var index: Int32 = -1
        if records.count > options.indexThreshold {
            indices.append(makeIndex(records))
            index = Int32(indices.count - 1)
        }
        buckets.append(Bucket(programStart: programStart, programEnd: programEnd, allowStart: allowStart, allowEnd: allowEnd,
                                 index: index))
        return Int32(buckets.count - 1)
    }
}
