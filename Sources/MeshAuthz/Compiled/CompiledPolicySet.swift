import Synchronization

/// A `PolicySet` compiled for fast decisions: the same answers as `ReferenceEvaluator` (same stage, rule,
/// reason and reports), at a cost that depends on the request and on the policies that apply to its
/// workload, not on the size of the set.
///
/// Layout:
/// - Policies are grouped into *buckets* of policies that apply to exactly the same workloads: the
///   namespace-wide policies of a namespace, the policies of one namespace sharing one selector, and the
///   `targetRefs` policies of one Gateway. A hash table keyed by (namespace, label key, label value) finds
///   a workload's selector groups and gateway bucket from its labels (each selector is filed under its
///   rarest label, then checked in full).
/// - A request is decided from the few buckets that apply: the root namespace's and the workload
///   namespace's. In a bucket with more than `CompileOptions.indexThreshold` rules, candidate rules come
///   from tries over the principal, path, host and method (exact and prefix forms in a forward trie, suffix
///   forms in a reversed one, `*` in a presence list) and a port table; each rule is filed under its most
///   selective field. Every candidate is then confirmed by its compiled predicate, which also covers the
///   `notX` fields and `when` conditions: a record in the *program* (CompiledRules.swift), where a bucket's
///   rules lie one after the other with their pattern bytes inline, so confirming them reads consecutive
///   memory instead of chasing indices through separate arrays.
/// - The reported rule is the least rule id (by its text, as Envoy orders its RBAC map) among matching rules
///   of the deciding action; dry-run and AUDIT reports list every matching rule in policy order.
/// - Reason texts are built once at compile time (`DecisionReasons`), each with its rule id in one shared
///   `Decision.Details` object, so a decision allocates nothing but the reports it returns (and a
///   default-deny text in rare layouts) and retains one object. The request is read in place, as bytes
///   copied once into a stack buffer; no Foundation, no regular expressions, no String comparison.
/// - At 10,000 policies the tables are far larger than the caches: the loads a decision needs are issued as
///   early as their addresses are known (label slots with the namespace slot, rule records once the
///   buckets are known, the answer's object while matching), so that the misses overlap (Slots.swift).
///
/// Immutable after `init`: one instance can be shared by any number of threads without locks.
public final class CompiledPolicySet: Sendable {
    public let policySet: PolicySet
    public let options: CompileOptions

    // Cold: what a Decision carries.
    let policyIDs: [ResourceID]
    let ruleIDs: [RuleID]
    let ruleActions: [Action]
    /// What a decision by this rule says besides its verdict (id and reason), built once: a decision
    /// retains this one object rather than copying strings. The rule records hold their addresses, so this
    /// array is what keeps the objects alive.
    let ruleDetails: [Decision.Details]
    let headerNames: [String]
    let claimPaths: [[String]]
    /// Likewise for the other stages: a STRICT PeerAuthentication's refusal (by PeerAuthentication, and
    /// without one), the precomputed default-deny texts, no ALLOW policy.
    let peerDetails: [Decision.Details]
    let strictDetailsDefault: Decision.Details
    let defaultDenyDetails: [Decision.Details]
    /// Their addresses (the array above keeps the objects alive), to ask for an object's cache line before
    /// it is known to be needed.
    let defaultDenyAddresses: Frozen<UnsafeRawPointer>
    let noAllowPolicyDetails: Decision.Details

    /// A rule's global index is its position in evaluation order (policy order, then rule index), which is
    /// also the order of dry-run and AUDIT reports.
    let ruleCategories: [RuleCategory]

    // Hot: plain values in frozen buffers.
    let program: Program
    let arena: ByteArena
    let lists: Frozen<UInt32>
    let tries: TriePools
    let buckets: Frozen<BucketHot>
    let indices: Frozen<IndexHot>
    let portEntries: Frozen<PortEntry>
    let scopes: Frozen<ScopeHot>
    let groups: Frozen<GroupHot>
    let groupLabels: Frozen<LabelRuns>
    let namespaceTable: Frozen<NamespaceSlot>
    let labelTable: Frozen<LabelSlot>
    let peers: Frozen<PeerHot>
    let peerPorts: Frozen<PeerPort>
    let rootScope: Int32
    let rootNamespaceHash: UInt64
    /// Bit `keyHash >> 58` of every label key any scope's selector groups or gateways are filed under.
    let anyScopeKeys: UInt64
    let rootScopeData: ScopeHot
    let meshModeRaw: UInt8
    let meshDecidedBy: Int32
    let meshWideReason: Int32
    let maxGroupsPerSlot: Int

    public convenience init(_ set: PolicySet) { self.init(set, options: CompileOptions()) }

    public init(_ set: PolicySet, options: CompileOptions) {
        var c = Compiler(set, options: options)
        c.run()
        policySet = set
        self.options = options
        policyIDs = set.authorizationPolicies.map(\.id)
        ruleIDs = c.ruleIDs
        ruleActions = c.ruleActions
        ruleDetails = zip(c.ruleIDs, c.ruleReasons).map { Decision.Details(reason: $1, rule: $0) }
        headerNames = c.program.headerNames
        claimPaths = c.program.claimPaths
        peerDetails = set.peerAuthentications.map { Decision.Details(reason: DecisionReasons.strictPlaintext(decidedBy: $0.id)) }
        strictDetailsDefault = Decision.Details(reason: DecisionReasons.strictPlaintext(decidedBy: nil))
        defaultDenyDetails = c.defaultDenyReasons.map { Decision.Details(reason: $0) }
        defaultDenyAddresses = Frozen(defaultDenyDetails.map { UnsafeRawPointer(Unmanaged.passUnretained($0).toOpaque()) })
        noAllowPolicyDetails = Decision.Details(reason: DecisionReasons.noAllowPolicy)
        ruleCategories = c.ruleCategories
        program = Program(Self.linkDetails(c.program.words, c.buckets, ruleDetails))
        arena = c.arena.freeze()
        lists = Frozen(c.pool.lists)
        tries = TriePools(nodes: Frozen(c.pool.nodes), labels: Frozen(c.pool.labels))
        buckets = Frozen(c.buckets)
        indices = Frozen(c.indices)
        portEntries = Frozen(c.portEntries)
        scopes = Frozen(c.scopes)
        groups = Frozen(c.groups)
        groupLabels = Frozen(c.groupLabels)
        namespaceTable = Frozen(c.namespaceTable)
        labelTable = Frozen(c.labelTable)
        peers = Frozen(c.peers)
        peerPorts = Frozen(c.peerPorts)
        rootScope = c.rootScope
        rootNamespaceHash = c.rootScope >= 0 ? c.namespaceHashes[Int(c.rootScope)] : 0
        anyScopeKeys = c.scopes.reduce(0) { $0 | $1.keyFilter }
        rootScopeData = c.rootScope >= 0 ? c.scopes[Int(c.rootScope)] : .none
        meshModeRaw = c.meshModeRaw
        meshDecidedBy = c.meshDecidedBy
        meshWideReason = c.meshWideReason
        maxGroupsPerSlot = c.maxGroupsPerSlot
    }

    /// Writes into each rule record the address of its rule's `Decision.Details`, so that the answer is
    /// found from the record just confirmed (in cache) rather than from a separate array (a miss).
    private static func linkDetails(_ words: [UInt32], _ buckets: [BucketHot], _ details: [Decision.Details]) -> [UInt32] {
        var words = words
        for bucket in buckets {
            var record = Int(bucket.programStart)
            while record < Int(bucket.programEnd) {
                let address = UInt64(UInt(bitPattern: Unmanaged.passUnretained(details[Int(words[record + 2])]).toOpaque()))
                words[record + recordDetailsWord] = UInt32(truncatingIfNeeded: address)
                words[record + recordDetailsWord + 1] = UInt32(truncatingIfNeeded: address >> 32)
                record += Int(words[record + 3])
            }
        }
        return words
    }

    /// Sizes of what was built, for benchmarks and summaries.
    public var statistics: Statistics {
        var indexed = 0
        for b in 0..<buckets.count where buckets[b].index >= 0 { indexed += 1 }
        let bytes = program.wordCount * 4 + arena.count + lists.count * 4
            + tries.nodes.count * MemoryLayout<TrieNode>.stride + tries.labels.count
            + labelTable.count * MemoryLayout<LabelSlot>.stride + groups.count * MemoryLayout<GroupHot>.stride
            + buckets.count * MemoryLayout<BucketHot>.stride + scopes.count * MemoryLayout<ScopeHot>.stride
            + namespaceTable.count * MemoryLayout<NamespaceSlot>.stride
        return Statistics(policies: policyIDs.count, rules: ruleIDs.count, scopes: scopes.count, buckets: buckets.count,
                          indexedBuckets: indexed, trieNodes: tries.nodes.count, programBytes: program.wordCount * 4,
                          hotBytes: bytes)
    }

    public struct Statistics: Sendable, Hashable {
        public let policies: Int
        public let rules: Int
        public let scopes: Int
        public let buckets: Int
        public let indexedBuckets: Int
        public let trieNodes: Int
        /// Bytes of the rule records.
        public let programBytes: Int
        /// Bytes of everything the decision path reads (reason texts and rule ids not included).
        public let hotBytes: Int
    }

    // MARK: Deciding

    public func evaluate(_ request: CheckRequest) -> Decision {
        // The request is read in place through a pointer: closures capture the pointer, never a copy of the
        // request (a copy retains a dozen strings and dictionaries), and only stored fields are read. The
        // layers below return a plain `Outcome`; the Decision is built once, here.
        let outcome = withUnsafePointer(to: request) { request in
            RequestView.with(request, scratch: 3 + request.pointee.destination.labels.count * 2 * max(1, maxGroupsPerSlot)) {
                decide($0, $1)
            }
        }
        return decision(outcome)
    }

    /// A gateway's request, read in place as bytes; `outcome` names the answer when it depends on the
    /// decision alone (see `OutcomeKey`), nil when it carries reports or a reason built for this request.
    public func evaluate(_ request: GatewayRequest) -> (decision: Decision, outcome: OutcomeKey?) {
        let labelCount = WorkloadLabels.maxCount(request.workload)
        let outcome = RequestView.with(request, labelCapacity: labelCount, scratch: 3 + labelCount * 2 * max(1, maxGroupsPerSlot)) {
            decide($0, $1)
        }
        return (decision(outcome), outcomeNumber(outcome))
    }

    /// How many distinct answers without reports the set can give: every `OutcomeKey` it returns is
    /// below this.
    public var outcomeCount: Int { (2 + peerDetails.count + ruleDetails.count + defaultDenyDetails.count) * 4 }

    private func outcomeNumber(_ outcome: Outcome) -> OutcomeKey? {
        guard outcome.reports.isEmpty else { return nil }
        let index = Int(outcome.index)
        let kind: Int
        switch outcome.stage {
        case .noAllowPolicy: kind = 0
        case .peerAuthentication: kind = 1 + (index + 1)
        case .custom, .denyPolicy, .allowPolicy: kind = 2 + peerDetails.count + index
        case .defaultDeny:
            guard index >= 0 else { return nil }
            kind = 2 + peerDetails.count + ruleDetails.count + index
        case .notReady, .requestAuthentication:  // never an engine's outcome (authentication runs before)
            return nil
        }
        return OutcomeKey(kind * 4 + Int(outcome.modeRaw & 3))
    }

    private func decision(_ outcome: Outcome) -> Decision {
        let mode = MTLSModeCode.mode(outcome.modeRaw)
        var dryRun: [Decision.Report] = []
        var audit: [Decision.Report] = []
        if !outcome.reports.isEmpty {
            // A rule can be a candidate twice (two of its values matched): report it once, in policy order.
            var previous: UInt32? = nil
            for rule in outcome.reports.sorted() where rule != previous {
                previous = rule
                if ruleCategories[Int(rule)] == .dryRun {
                    dryRun.append(Decision.Report(action: ruleActions[Int(rule)], rule: ruleIDs[Int(rule)]))
                } else {
                    audit.append(Decision.Report(action: .audit, rule: ruleIDs[Int(rule)]))
                }
            }
        }
        // One construction site (returning from several `Decision(...)` expressions made the optimizer copy).
        var details: Decision.Details
        switch outcome.stage {
        case .peerAuthentication:
            details = outcome.index >= 0 ? peerDetails[Int(outcome.index)] : strictDetailsDefault
        case .custom, .denyPolicy, .allowPolicy:
            details = Unmanaged<Decision.Details>.fromOpaque(outcome.details!).takeUnretainedValue()
        case .noAllowPolicy:
            details = noAllowPolicyDetails
        default:
            details = outcome.index >= 0
                ? Unmanaged<Decision.Details>.fromOpaque(defaultDenyAddresses[outcome.index]).takeUnretainedValue()
                : Decision.Details(reason: outcome.builtReason!)
        }
        if !dryRun.isEmpty || !audit.isEmpty {
            details = Decision.Details(reason: details.reason, rule: details.rule, dryRun: dryRun, audit: audit)
        }
        let allowed = outcome.stage == .allowPolicy || outcome.stage == .noAllowPolicy
        return Decision(allowed: allowed, stage: outcome.stage, mtlsMode: mode, details: details)
    }

    /// What `decide` found, in plain values.
    struct Outcome {
        var stage: Decision.Stage
        var modeRaw: UInt8
        /// The deciding rule (custom, deny, allow); the PeerAuthentication (peer-authentication, -1 for none);
        /// the precomputed default-deny text (-1: see `builtReason`).
        var index: Int32
        var reports: [UInt32]
        var builtReason: String?
        /// The deciding rule's `Decision.Details` (custom, deny, allow).
        var details: UnsafeRawPointer? = nil
    }

    struct Applicable {
        var bucket: BucketHot
        /// The default-deny text when this bucket and the wide ones hold all the ALLOW policies that apply
        /// (own selector groups and gateways), carried here so that no group or slot is read again.
        var reason: Int32
        var kind: Kind
        enum Kind { case wide, ownGroup, gateway, other }
    }

    /// The buckets that apply to a workload, gathered into scratch memory.
    struct Gathering {
        let applicable: UnsafeMutableBufferPointer<Applicable>
        var count = 0
        var workloadPeer = Int32.max

        init(_ applicable: UnsafeMutableBufferPointer<Applicable>) { self.applicable = applicable }

        @inline(__always)
        mutating func add(_ bucket: BucketHot, _ reason: Int32, _ kind: Applicable.Kind) {
            // The scratch is sized from the slot layout (3 + labels × 2 × groups per slot): a miscount here
            // would write past it.
            assert(count < applicable.count, "more applicable buckets than the scratch was sized for")
            (applicable.baseAddress! + count).initialize(to: Applicable(bucket: bucket, reason: reason, kind: kind))
            count += 1
        }
    }

    private func decide(_ view: RequestView,
                        _ scratch: UnsafeMutableBufferPointer<Applicable>) -> Outcome {
        // The workload's scope comes with its namespace's hash-table slot (one load, no second lookup).
        var ws: Int32 = -1
        var own = ScopeHot.none
        var namespaceHash: UInt64 = 0
        if let namespace = view.namespace {
            namespaceHash = hashBytes(namespace, seed: namespaceSeed)
            // The workload's label slots do not depend on the namespace slot: ask for them first, so that
            // both misses are taken at once (the key filter of any scope skips labels no selector uses).
            var touched: UInt32 = 0
            for label in view.labels where anyScopeKeys & (1 << (label.keyHash >> 58)) != 0 {
                touched &+= touchLabelSlot(label, namespaceHash: namespaceHash)
            }
            keep(touched)
            let slot = findScope(namespace, hash: namespaceHash)
            if slot >= 0 {
                ws = namespaceTable[slot].scope
                own = namespaceTable[slot].data
            }
        }
        let root = rootScope >= 0 ? rootScopeData : ScopeHot.none
        // Step 2: the buckets that apply (§2), each once; the workload-level PeerAuthentication on the way.
        var gathering = Gathering(scratch)
        if root.wideBucket >= 0 { gathering.add(root.wide, -1, .wide) }
        if ws >= 0 && ws != rootScope && own.wideBucket >= 0 { gathering.add(own.wide, -1, .wide) }
        let rootKeys = root.keyFilter
        let ownKeys = ws >= 0 && ws != rootScope ? own.keyFilter : 0
        for label in view.labels {
            // A scope's key filter skips probes for label keys none of its selectors or gateways use.
            let bit: UInt64 = 1 << (label.keyHash >> 58)
            if rootKeys & bit != 0 { visit(rootScope, rootNamespaceHash, own: rootScope == ws, label, view, &gathering) }
            if ownKeys & bit != 0 { visit(ws, namespaceHash, own: true, label, view, &gathering) }
        }
        // Ask for the buckets' rule records now: one independent load per cache line, so the misses overlap
        // (and overlap the PeerAuthentication step) instead of being taken one by one while confirming.
        // (Only buckets scanned whole: an indexed bucket reads few of its records.)
        var touched: UInt32 = 0
        for i in 0..<gathering.count where scratch[i].bucket.index < 0 {
            let bucket = scratch[i].bucket
            var word = Int(bucket.programStart)
            let end = min(Int(bucket.programEnd), word + 512)
            while word < end {
                touched &+= program[word]
                word += 16
            }
        }
        // The default-deny text is known from the buckets alone: its object's line is asked for now too,
        // to be at hand if no rule allows.
        let applicable = UnsafeBufferPointer(rebasing: scratch[..<gathering.count])
        let denyReason = defaultDenyReason(ws >= 0 ? own.wideReason : meshWideReason, applicable)
        if denyReason >= 0 { touched &+= defaultDenyAddresses[denyReason].load(as: UInt32.self) }
        keep(touched)
        // Step 1: PeerAuthentication (mesh and namespace levels are precomputed per scope).
        var modeRaw = ws >= 0 ? own.modeRaw : meshModeRaw
        var decidedBy = ws >= 0 ? own.decidedBy : meshDecidedBy
        if gathering.workloadPeer != .max {
            let peerIndex = gathering.workloadPeer
            let peer = peers[peerIndex]
            if peer.modeRaw != MTLSModeCode.unset { modeRaw = peer.modeRaw; decidedBy = peerIndex }
            if let port = view.port {
                for p in peer.portsStart..<peer.portsEnd where peerPorts[p].port == port && peerPorts[p].modeRaw != MTLSModeCode.unset {
                    modeRaw = peerPorts[p].modeRaw
                    decidedBy = peerIndex
                }
            }
        }
        if modeRaw == MTLSModeCode.strict && !view.isMTLS {
            return Outcome(stage: .peerAuthentication, modeRaw: modeRaw, index: decidedBy, reports: [])
        }
        // Steps 3-6: candidates from each bucket, confirmed.
        var verdicts = Verdicts()
        for i in 0..<gathering.count { collect(scratch[i].bucket, view, &verdicts) }
        keep(verdicts.touched)
        @inline(__always) func ruleOutcome(_ stage: Decision.Stage, _ record: UInt32) -> Outcome {
            Outcome(stage: stage, modeRaw: modeRaw, index: Int32(program[Int(record) + 2]), reports: verdicts.reports,
                    details: program.details(Int(record)))
        }
        if verdicts.custom != .max { return ruleOutcome(.custom, verdicts.custom) }
        if verdicts.deny != .max { return ruleOutcome(.denyPolicy, verdicts.deny) }
        if !verdicts.hasAllowPolicy { return Outcome(stage: .noAllowPolicy, modeRaw: modeRaw, index: -1, reports: verdicts.reports) }
        if verdicts.allow != .max { return ruleOutcome(.allowPolicy, verdicts.allow) }
        var outcome = Outcome(stage: .defaultDeny, modeRaw: modeRaw, index: -1, reports: verdicts.reports)
        outcome.index = denyReason
        if outcome.index < 0 { outcome.builtReason = buildDefaultDenyReason(applicable) }
        return outcome
    }

    @inline(__always)
    private func visit(_ scope: Int32, _ namespaceHash: UInt64, own: Bool, _ label: LabelView, _ view: RequestView,
                       _ gathering: inout Gathering) {
        let slotIndex = findLabel(scope, namespaceHash: namespaceHash, label)
        guard slotIndex >= 0 else { return }
        let slot = labelTable[slotIndex]
        @inline(__always) func consider(_ group: GroupHot) {
            guard selected(group, view.labels) else { return }
            if group.bucket >= 0 { gathering.add(group.body, group.reason, own ? .ownGroup : .other) }
            if own && group.peerAuth >= 0 && group.peerAuth < gathering.workloadPeer { gathering.workloadPeer = group.peerAuth }
        }
        if slot.firstGroupIndex >= 0 { consider(slot.firstGroup) }
        var g = slot.groupsStart
        while g < slot.groupsEnd {
            let groupIndex = lists[g]
            g += 1
            consider(groups[groupIndex])
        }
        // targetRefs: only Gateway-API gateways, only from their own namespace.
        if own && slot.gatewayBucket >= 0 { gathering.add(slot.gateway, slot.gatewayReason, .gateway) }
    }

    /// The default-deny text, precomputed for the usual layouts: the wide buckets plus at most one selector
    /// group of the workload's own namespace or its gateway. -1 when it has to be built.
    private func defaultDenyReason(_ wideReason: Int32, _ applicable: UnsafeBufferPointer<Applicable>) -> Int32 {
        var extra = 0
        var last = Applicable(bucket: .empty, reason: -1, kind: .other)
        for entry in applicable where entry.kind != .wide {
            let bucket = entry.bucket
            if bucket.allowStart < bucket.allowEnd {
                extra += 1
                last = entry
            }
        }
        if extra == 0 { return wideReason }
        guard extra == 1 else { return -1 }
        return last.kind == .ownGroup || last.kind == .gateway ? last.reason : -1
    }

    private func buildDefaultDenyReason(_ applicable: UnsafeBufferPointer<Applicable>) -> String {
        var policies: [UInt32] = []
        for entry in applicable {
            let bucket = entry.bucket
            policies += lists.slice(bucket.allowStart, bucket.allowEnd)
        }
        policies.sort()
        return DecisionReasons.defaultDeny(allowPolicies: policies.map { policyIDs[Int($0)] })
    }

    /// The group's labels other than the one it was found by.
    @inline(__always)
    private func selected(_ group: GroupHot, _ labels: UnsafeBufferPointer<LabelView>) -> Bool {
        var o = group.othersStart
        others: while o < group.othersEnd {
            let wanted = groupLabels[o]
            o += 1
            for label in labels where arena.bytes(wanted.key).equals(label.key) {
                if arena.bytes(wanted.value).equals(label.value) { continue others }
                return false
            }
            return false
        }
        return true
    }

    /// The matching rules of one bucket, folded into `verdicts`.
    @inline(__always)
    private func collect(_ bucket: BucketHot, _ view: RequestView, _ verdicts: inout Verdicts) {
        if bucket.allowStart < bucket.allowEnd { verdicts.hasAllowPolicy = true }
        guard bucket.index >= 0 else {
            // Every rule record of the bucket, in order.
            var record = Int(bucket.programStart)
            let end = Int(bucket.programEnd)
            while record < end {
                consider(record, view, &verdicts)
                record += Int(program[record + 3])
            }
            return
        }
        let index = indices[bucket.index]
        consider(index.alwaysStart, index.alwaysEnd, view, &verdicts)
        search(index.principal, view.principal, lowered: false, view, &verdicts)
        search(index.path, view.path, lowered: false, view, &verdicts)
        search(index.host, view.host, lowered: true, view, &verdicts)
        search(index.method, view.method, lowered: false, view, &verdicts)
        if index.portsStart < index.portsEnd, let port = view.port {
            // Sorted by port: binary search.
            var low = Int(index.portsStart), high = Int(index.portsEnd)
            while low < high {
                let mid = (low + high) >> 1
                let entry = portEntries[mid]
                if entry.port == port {
                    consider(entry.start, entry.end, view, &verdicts)
                    break
                }
                if entry.port < port { low = mid + 1 } else { high = mid }
            }
        }
    }

    @inline(__always)
    private func search(_ strings: StringIndexHot, _ value: Bytes?, lowered: Bool, _ view: RequestView,
                        _ verdicts: inout Verdicts) {
        guard strings.isUsed, let value else { return }
        consider(strings.presentStart, strings.presentEnd, view, &verdicts)
        if strings.forward >= 0 {
            tries.lookup(strings.forward, value, reversed: false, lowered: lowered) {
                consider($0, $1, view, &verdicts)
            }
        }
        if strings.backward >= 0 {
            tries.lookup(strings.backward, value, reversed: true, lowered: lowered) {
                consider($0, $1, view, &verdicts)
            }
        }
    }

    /// Every rule record whose offset is in `lists[start ..< end]`.
    @inline(__always)
    private func consider(_ start: UInt32, _ end: UInt32, _ view: RequestView,
                          _ verdicts: inout Verdicts) {
        var i = start
        while i < end {
            consider(Int(lists[i]), view, &verdicts)
            i += 1
        }
    }

    /// A candidate rule (its record's offset): confirmed unless it cannot change the answer (a rule of the
    /// deciding kind that sorts after the best match so far).
    @inline(__always)
    private func consider(_ record: Int, _ view: RequestView, _ verdicts: inout Verdicts) {
        let rank = program[record + 1]
        switch program[record] {
        case RuleCategory.allow.rawValue:
            if rank < verdicts.allowRank && matches(record, view) {
                verdicts.allow = UInt32(record)
                verdicts.allowRank = rank
                verdicts.touch(program.details(record))
            }
        case RuleCategory.deny.rawValue:
            if rank < verdicts.denyRank && matches(record, view) {
                verdicts.deny = UInt32(record)
                verdicts.denyRank = rank
                verdicts.touch(program.details(record))
            }
        case RuleCategory.custom.rawValue:
            if rank < verdicts.customRank && matches(record, view) {
                verdicts.custom = UInt32(record)
                verdicts.customRank = rank
                verdicts.touch(program.details(record))
            }
        default:
            if matches(record, view) { verdicts.reports.append(program[record + 2]) }
        }
    }

    // MARK: Confirming a candidate rule (reading its record, see CompiledRules.swift)

    /// `to` (cheapest: method, path, host, port), then `from`, then `when` (may read headers and claims).
    @inline(__always)
    func matches(_ record: Int, _ view: RequestView) -> Bool {
        let toCount = Int(program[record + 4]), fromCount = Int(program[record + 5])
        if toCount > 0 && !anyClause(record + recordHeaderWords, toCount, view) { return false }
        if fromCount > 0 && !anyClause(record + Int(program[record + 6]), fromCount, view) { return false }
        var check = record + Int(program[record + 7])
        for _ in 0..<Int(program[record + 8]) {
            if !holds(check, view) { return false }
            check += Int(program[check + 4])
        }
        return true
    }

    /// Any of `count` clauses starting at `start`: all of a clause's checks hold.
    @inline(__always)
    private func anyClause(_ start: Int, _ count: Int, _ view: RequestView) -> Bool {
        var clause = start
        clauses: for _ in 0..<count {
            var check = clause + 2
            let next = clause + Int(program[clause + 1])
            clause = next
            for _ in 0..<Int(program[check - 2]) {
                if !holds(check, view) { continue clauses }
                check += Int(program[check + 4])
            }
            return true
        }
        return false
    }

    /// One field: a positive matcher must match (when there are any) and no negative one may.
    private func holds(_ check: Int, _ view: RequestView) -> Bool {
        switch program[check] {
        case Attribute.principal.rawValue: return holds(check) { matches($0, view.principal) }
        case Attribute.path.rawValue: return holds(check) { matches($0, view.path) }
        case Attribute.method.rawValue: return holds(check) { matches($0, view.method) }
        case Attribute.host.rawValue: return holds(check) { matches($0, view.host) }
        case Attribute.sni.rawValue: return holds(check) { matches($0, view.sni) }
        case Attribute.rawPath.rawValue: return holds(check) { matches($0, view.rawPath) }
        case Attribute.port.rawValue:
            return holds(check) { m in
                let header = program[m]
                guard header & 0xFF == MatcherKind.port.rawValue else { return false }
                let value: Int? = header >> 24 != 0 ? Int(Int64(bitPattern: program.int64(m + 2))) : nil
                return value == view.port
            }
        case Attribute.sourceIP.rawValue: return holds(check) { matches($0, view.sourceIP) }
        case Attribute.remoteIP.rawValue: return holds(check) { matches($0, view.remoteIP) }
        case Attribute.destinationIP.rawValue: return holds(check) { matches($0, view.destinationIP) }
        case Attribute.requestPrincipal.rawValue:
            return holds(check) { m in
                let header = program[m]
                guard header & 0xFF == MatcherKind.requestPrincipal.rawValue, let issuer = view.issuer, let subject = view.subject else {
                    return false
                }
                let issuerCount = Int(program[m + 2]), subjectCount = Int(program[m + 3])
                let subjectStart = m + 4 + (issuerCount + 3) / 4
                return StringPattern.matches((header >> 8) & 0xFF, lowered: false, program.bytes(m + 4, issuerCount), issuer)
                    && StringPattern.matches(header >> 24, lowered: false, program.bytes(subjectStart, subjectCount), subject)
            }
        case Attribute.authorityHeader.rawValue:
            if view.host != nil { return holds(check) { matches($0, view.host) } }
            return view.headers.withValue(headerNames[Int(program[check + 1])]) { value in holds(check) { matches($0, value) } }
        case Attribute.header.rawValue:
            return view.headers.withValue(headerNames[Int(program[check + 1])]) { value in holds(check) { matches($0, value) } }
        case Attribute.claim.rawValue:
            return holdsClaim(check, claimPaths[Int(program[check + 1])], view)
        default:
            return holds(check) { _ in false }
        }
    }

    @inline(__always)
    private func holds(_ check: Int, _ match: (Int) -> Bool) -> Bool {
        let positives = Int(program[check + 2]), negatives = Int(program[check + 3])
        var matcher = check + 5
        if positives > 0 {
            var found = false
            for _ in 0..<positives {
                if match(matcher) { found = true; break }
                matcher += Int(program[matcher + 1])
            }
            if !found { return false }
            if negatives == 0 { return true }
            // Skip to the negative matchers.
            matcher = check + 5
            for _ in 0..<positives { matcher += Int(program[matcher + 1]) }
        }
        for _ in 0..<negatives {
            if match(matcher) { return false }
            matcher += Int(program[matcher + 1])
        }
        return true
    }

    /// A string-like matcher against a value.
    @inline(__always)
    private func matches(_ m: Int, _ value: Bytes?) -> Bool {
        guard let value else { return false }
        let header = program[m]
        switch header & 0xFF {
        case MatcherKind.string.rawValue:
            return StringPattern.matches((header >> 8) & 0xFF, lowered: header & 0x1_0000 != 0,
                                         program.bytes(m + 3, Int(program[m + 2])), value)
        case MatcherKind.template.rawValue:
            return ByteMatching.template(program, m + 3, Int(program[m + 2]), value, 0)
        case MatcherKind.namespaceGlob.rawValue:
            return ByteMatching.glob(program.bytes(m + 3, Int(program[m + 2])), value)
        case MatcherKind.trustDomain.rawValue:
            guard let domain = ByteMatching.trustDomain(value) else { return false }
            return StringPattern.matches((header >> 8) & 0xFF, lowered: false, program.bytes(m + 3, Int(program[m + 2])), domain)
        case MatcherKind.serviceAccount.rawValue:
            let nsCount = Int(program[m + 2]), saCount = Int(program[m + 3])
            return ByteMatching.serviceAccount(namespace: program.bytes(m + 4, nsCount),
                                               name: program.bytes(m + 4 + (nsCount + 3) / 4, saCount), value)
        default:
            return false
        }
    }

    @inline(__always)
    private func matches(_ m: Int, _ ip: IPAddress?) -> Bool {
        guard let ip else { return false }
        let header = program[m]
        guard header & 0xFF == MatcherKind.ip.rawValue else { return false }
        let isV4 = header >> 24 != 0
        let maskHigh = program.int64(m + 2), maskLow = program.int64(m + 4)
        return ip.isV4 == isV4 && (ip.high & maskHigh) == program.int64(m + 6) && (ip.low & maskLow) == program.int64(m + 8)
    }

    /// `request.auth.claims[...]` (and audiences, presenter): the claim as Envoy's jwt_authn publishes it.
    private func holdsClaim(_ check: Int, _ path: [String], _ view: RequestView) -> Bool {
        if let claims = view.claimsOf?.pointee.request.claims {
            guard var value = claims[path[0]] else { return holds(check) { _ in false } }
            for key in path.dropFirst() {
                guard let next = value[key] else { return holds(check) { _ in false } }
                value = next
            }
            switch value {
            case .string(let text):
                // Envoy's jwt_authn splits the string claims `scope` and `permission` on spaces.
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
        guard view.hasRequestPrincipal, path.count == 1 else { return holds(check) { _ in false } }
        let value: Bytes? = path[0] == "iss" ? view.issuer : path[0] == "sub" ? view.subject : nil
        return holds(check) { matches($0, value) }
    }
}

/// Keeps a value alive for the optimizer (the loads that produced it are prefetches): the value is stored
/// where the optimizer cannot prove nobody reads it, on a branch almost never taken.
@inline(never)
func keep(_ value: UInt32) {
    if value == 0x5EED_F00D { keepSink.store(value, ordering: .relaxed) }
}
/// Never read. Atomic (relaxed) because decisions run on many threads at once: a plain global written from
/// them is a data race, even if the value written is always the same.
let keepSink = Atomic<UInt32>(0)

public struct CompileOptions: Sendable, Hashable {
    /// A bucket with more rules than this gets tries; a smaller one is scanned rule by rule. With 0, every
    /// bucket is indexed and every indexable rule filed (tests use it to exercise the tries everywhere).
    public var indexThreshold: Int

    public init(indexThreshold: Int = 12) {
        self.indexThreshold = indexThreshold
    }
}

// MARK: Compiled structures (plain values)

let namespaceSeed: UInt64 = 0x6E61_6D65_7370_6163
let labelKeySeed: UInt64 = 0x6C61_6265_6C6B_6579
let labelValueSeed: UInt64 = 0x6C61_6265_6C76_616C

struct BucketHot: Sendable {
    static let empty = BucketHot(programStart: 0, programEnd: 0, allowStart: 0, allowEnd: 0, index: -1)

    /// `program[programStart ..< programEnd]`: the records of the bucket's rules, in evaluation order.
    var programStart: UInt32
    var programEnd: UInt32
    /// `lists[allowStart ..< allowEnd]`: enforced ALLOW policies (ordinals, ascending).
    var allowStart: UInt32
    var allowEnd: UInt32
    /// `indices[index]`, or -1 when the bucket is scanned rule by rule.
    var index: Int32
}

struct IndexHot: Sendable {
    /// Rules with no indexable field: always candidates.
    var alwaysStart: UInt32
    var alwaysEnd: UInt32
    var principal: StringIndexHot
    var path: StringIndexHot
    var host: StringIndexHot
    var method: StringIndexHot
    /// `portEntries[portsStart ..< portsEnd]`, sorted by port.
    var portsStart: UInt32
    var portsEnd: UInt32
}

/// Candidate rules by one string attribute.
struct StringIndexHot: Sendable {
    /// Trie roots (-1: none): exact and prefix keys; suffix keys reversed.
    var forward: Int32
    var backward: Int32
    /// Rules asking only that the attribute be present (`*`).
    var presentStart: UInt32
    var presentEnd: UInt32
    var isUsed: Bool { forward >= 0 || backward >= 0 || presentStart < presentEnd }
    static let unused = StringIndexHot(forward: -1, backward: -1, presentStart: 0, presentEnd: 0)
}

struct PortEntry: Sendable {
    var port: Int
    var start: UInt32
    var end: UInt32
}

struct ScopeHot: Sendable {
    /// Namespace-wide policies (mesh-wide in the root namespace), -1 for none; `wide` is a copy of it (one
    /// load fewer on the decision path).
    var wideBucket: Int32
    var wide: BucketHot
    /// Mesh level then this namespace's level.
    var modeRaw: UInt8
    var decidedBy: Int32
    /// The default-deny text when only the wide buckets have ALLOW policies.
    var wideReason: Int32
    /// Bit `keyHash >> 58` is set for each label key the scope's selector groups are filed under (and the
    /// gateway label when it has targetRefs policies).
    var keyFilter: UInt64

    static let none = ScopeHot(wideBucket: -1, wide: .empty, modeRaw: MTLSModeCode.permissive, decidedBy: -1, wideReason: -1, keyFilter: 0)
}

/// Policies of one namespace with one selector, and the first PeerAuthentication with that selector.
struct GroupHot: Sendable {
    var bucket: Int32
    /// A copy of `buckets[bucket]`.
    var body: BucketHot
    var peerAuth: Int32
    /// `groupLabels[othersStart ..< othersEnd]`: the selector's labels other than the one it is filed under.
    var othersStart: UInt32
    var othersEnd: UInt32
    /// The default-deny text when this group and the wide buckets are the ALLOW policies that apply.
    var reason: Int32
}

struct LabelRuns: Sendable {
    var key: ByteRun
    var value: ByteRun
}

struct PeerHot: Sendable {
    var modeRaw: UInt8
    var portsStart: UInt32
    var portsEnd: UInt32
}

struct PeerPort: Sendable {
    var port: Int
    var modeRaw: UInt8
}

enum MTLSModeCode {
    static let unset: UInt8 = 0
    static let disable: UInt8 = 1
    static let permissive: UInt8 = 2
    static let strict: UInt8 = 3

    static func code(_ mode: MTLSMode) -> UInt8 {
        switch mode {
        case .unset: return unset
        case .disable: return disable
        case .permissive: return permissive
        case .strict: return strict
        }
    }

    @inline(__always)
    static func mode(_ code: UInt8) -> MTLSMode {
        switch code {
        case unset: return .unset
        case disable: return .disable
        case permissive: return .permissive
        default: return .strict
        }
    }
}

/// The best match of each deciding kind so far (record offsets, .max for none) and the reports.
struct Verdicts {
    var custom = UInt32.max, customRank = UInt32.max
    var deny = UInt32.max, denyRank = UInt32.max
    var allow = UInt32.max, allowRank = UInt32.max
    var reports: [UInt32] = []
    var hasAllowPolicy = false
    var touched: UInt32 = 0

    /// Reads the first word of a match's `Decision.Details` (its immutable type pointer): the decision will
    /// retain that object, and asking for its cache line now overlaps the miss with the rest of the
    /// matching instead of taking it after.
    @inline(__always)
    mutating func touch(_ details: UnsafeRawPointer) {
        touched &+= details.load(as: UInt32.self)
    }
}

struct LabelView {
    var key: Bytes
    var value: Bytes
    var keyHash: UInt64
    /// Hash of key and value (the scope is mixed in per lookup).
    var hash: UInt64
}

/// The request fields the matcher reads, as bytes, parsed once per decision.
struct RequestView {
    var namespace: Bytes?
    var labels: UnsafeBufferPointer<LabelView>
    var principal: Bytes?
    /// Query and fragment removed.
    var path: Bytes?
    var rawPath: Bytes?
    var method: Bytes?
    var host: Bytes?
    var sni: Bytes?
    var issuer: Bytes?
    var subject: Bytes?
    var port: Int?
    var sourceIP: IPAddress?
    var remoteIP: IPAddress?
    var destinationIP: IPAddress?
    var isMTLS = false
    var hasRequestPrincipal = false
    /// Where `request.headers[...]` conditions read.
    var headers: HeaderSource
    /// The JSON claims of a `/v1/check` request live there (a gateway request has none).
    var claimsOf: UnsafePointer<CheckRequest>?

    /// Copies the strings into one temporary buffer (on the stack when small) and calls `body` with the view
    /// and a scratch buffer of `scratch` elements. Reads only stored fields of the request (a computed
    /// property or method called through `pointee` would copy the struct it belongs to).
    @inline(__always)
    static func with<Scratch, R>(_ request: UnsafePointer<CheckRequest>, scratch: Int,
                                 _ body: (RequestView, UnsafeMutableBufferPointer<Scratch>) -> R) -> R {
        // `CheckRequest.Peer.isMTLS`, `authenticatedPrincipal`, `effectiveRemoteIP`, from stored fields.
        let hasPrincipal = request.pointee.source.principal != nil
        let isMTLS = request.pointee.source.mtls ?? hasPrincipal
        let jwt = request.pointee.source.requestPrincipal != nil
        var claimIssuer: String? = nil, claimSubject: String? = nil
        if !jwt, request.pointee.request.claims != nil {
            claimIssuer = request.pointee.request.claims?["iss"]?.stringValue
            claimSubject = request.pointee.request.claims?["sub"]?.stringValue
        }
        @inline(__always) func size(_ s: String?) -> Int { s?.utf8.count ?? 0 }
        var total = (isMTLS ? size(request.pointee.source.principal) : 0) + size(request.pointee.request.path)
            + size(request.pointee.request.method) + size(request.pointee.request.host) + size(request.pointee.connection.sni)
            + size(request.pointee.source.requestPrincipal) + size(claimIssuer) + size(claimSubject)
            + size(request.pointee.destination.namespace)
        for (key, value) in request.pointee.destination.labels { total += key.utf8.count + value.utf8.count }
        let labelCount = request.pointee.destination.labels.count
        // One allocation: string bytes, then the label views, then the scratch elements.
        let labelsOffset = (total + 15) & ~15
        let scratchOffset = (labelsOffset + labelCount * MemoryLayout<LabelView>.stride + 15) & ~15
        let byteCount = scratchOffset + max(scratch, 1) * MemoryLayout<Scratch>.stride
        return withUnsafeTemporaryAllocation(byteCount: byteCount, alignment: 16) { raw in
            let buffer = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let labelViews = (raw.baseAddress! + labelsOffset).bindMemory(to: LabelView.self, capacity: max(labelCount, 1))
            let scratchBase = (raw.baseAddress! + scratchOffset).bindMemory(to: Scratch.self, capacity: max(scratch, 1))
            var offset = 0
            @inline(__always) func put(_ s: String?) -> Bytes? {
                guard let s else { return nil }
                let start = offset
                // `total` was summed from the same fields: each one written must fit in what is left.
                assert(start + s.utf8.count <= total, "request bytes larger than the buffer sized for them")
                let written = s.withBytes { bytes -> Int in
                    if let source = bytes.baseAddress, bytes.count > 0 { (buffer + start).initialize(from: source, count: bytes.count) }
                    return bytes.count
                }
                offset += written
                return Bytes(start: buffer + start, count: written)
            }
            var l = 0
            for (key, value) in request.pointee.destination.labels {
                assert(l < labelCount, "more labels than the buffer was sized for")
                let keyBytes = put(key)!, valueBytes = put(value)!
                let keyHash = hashBytes(keyBytes, seed: labelKeySeed)
                let hash = combineHash(keyHash, hashBytes(valueBytes, seed: labelValueSeed))
                (labelViews + l).initialize(to: LabelView(key: keyBytes, value: valueBytes, keyHash: keyHash, hash: hash))
                l += 1
            }
            var view = RequestView(labels: UnsafeBufferPointer(start: labelViews, count: l), headers: .dictionary(request))
            view.claimsOf = request
            view.namespace = put(request.pointee.destination.namespace)
            if isMTLS { view.principal = put(request.pointee.source.principal) }
            if let full = put(request.pointee.request.path) {
                view.rawPath = full
                view.path = Bytes(rebasing: full[..<queryStart(full)])
            }
            view.method = put(request.pointee.request.method)
            view.host = put(request.pointee.request.host)
            view.sni = put(request.pointee.connection.sni)
            if let text = put(request.pointee.source.requestPrincipal) {
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
            view.hasRequestPrincipal = jwt
            view.isMTLS = isMTLS
            view.port = request.pointee.destination.port
            view.sourceIP = request.pointee.source.ip
            view.remoteIP = request.pointee.source.remoteIP ?? request.pointee.source.ip
            view.destinationIP = request.pointee.destination.ip
            return body(view, UnsafeMutableBufferPointer(start: scratchBase, count: max(scratch, 1)))
        }
    }

    /// The view of a gateway request: its bytes are used where they are (nothing is copied), the labels
    /// parsed from their `k=v` text into scratch memory.
    @inline(__always)
    static func with<Scratch, R>(_ request: GatewayRequest, labelCapacity: Int, scratch: Int,
                                 _ body: (RequestView, UnsafeMutableBufferPointer<Scratch>) -> R) -> R {
        let scratchOffset = (labelCapacity * MemoryLayout<LabelView>.stride + 15) & ~15
        let byteCount = scratchOffset + max(scratch, 1) * MemoryLayout<Scratch>.stride
        return withUnsafeTemporaryAllocation(byteCount: byteCount, alignment: 16) { raw in
            let labelViews = raw.baseAddress!.bindMemory(to: LabelView.self, capacity: max(labelCapacity, 1))
            let scratchBase = (raw.baseAddress! + scratchOffset).bindMemory(to: Scratch.self, capacity: max(scratch, 1))
            var count = 0
            _ = WorkloadLabels.forEach(request.workload) { key, value in
                let keyHash = hashBytes(key, seed: labelKeySeed)
                let label = LabelView(key: key, value: value, keyHash: keyHash,
                                      hash: combineHash(keyHash, hashBytes(value, seed: labelValueSeed)))
                // A repeated key keeps its last value, as a dictionary would.
                for i in 0..<count where labelViews[i].key.equals(key) {
                    labelViews[i] = label
                    return
                }
                // `labelCapacity` is `WorkloadLabels.maxCount` of the same text: one view per item at most.
                assert(count < labelCapacity, "more labels than WorkloadLabels.maxCount counted")
                (labelViews + count).initialize(to: label)
                count += 1
            }
            var view = RequestView(labels: UnsafeBufferPointer(start: labelViews, count: count), headers: .fields(request.headers))
            view.namespace = request.namespace
            if request.isMTLS { view.principal = request.principal }
            view.rawPath = request.target
            view.path = Bytes(rebasing: request.target[..<queryStart(request.target)])
            view.method = request.method
            view.host = request.host
            view.isMTLS = request.isMTLS
            view.port = request.port
            view.sourceIP = request.sourceIP
            view.remoteIP = request.sourceIP
            return body(view, UnsafeMutableBufferPointer(start: scratchBase, count: max(scratch, 1)))
        }
    }

    private init(labels: UnsafeBufferPointer<LabelView>, headers: HeaderSource) {
        self.labels = labels
        self.headers = headers
    }
}

/// The request headers a rule's `when` conditions read: the dictionary of a `CheckRequest`, or a
/// gateway's header fields as sent (names compared case-insensitively, repeats joined with `,`).
enum HeaderSource {
    case dictionary(UnsafePointer<CheckRequest>)
    case fields(UnsafeBufferPointer<HeaderField>)

    /// Calls `body` with the value of the header `name` (lower-case), nil when absent.
    @inline(__always)
    func withValue<R>(_ name: String, _ body: (Bytes?) -> R) -> R {
        switch self {
        case .dictionary(let request):
            guard let value = request.pointee.request.headers[name] else { return body(nil) }
            return value.withBytes { body($0) }
        case .fields(let fields):
            var name = name
            return name.withUTF8 { wanted in
                var first: Int? = nil
                var total = 0, matches = 0
                for i in fields.indices where Self.sameName(fields[i].name, wanted) {
                    if first == nil { first = i }
                    matches += 1
                    total += fields[i].value.count
                }
                guard let first else { return body(nil) }
                if matches == 1 { return body(fields[first].value) }
                // Rare: a repeated header, joined as Envoy joins it.
                var joined: [UInt8] = []
                joined.reserveCapacity(total + matches)
                for i in first..<fields.count where Self.sameName(fields[i].name, wanted) {
                    if i != first { joined.append(UInt8(ascii: ",")) }
                    joined.append(contentsOf: fields[i].value)
                }
                return joined.withUnsafeBufferPointer { body($0) }
            }
        }
    }

    @inline(__always)
    private static func sameName(_ name: UnsafeBufferPointer<UInt8>, _ lower: UnsafeBufferPointer<UInt8>) -> Bool {
        guard name.count == lower.count else { return false }
        for i in 0..<name.count where asciiLower(name[i]) != lower[i] { return false }
        return true
    }
}

/// Names a gateway answer that depends on the decision alone (its deciding rule or policy, stage and mTLS
/// mode, no reports): two requests with the same key get equal decisions, so an answer built for one can
/// serve the other. Keys of one compiled set are `0 ..< outcomeCount`.
public struct OutcomeKey: Hashable, Sendable, CustomStringConvertible {
    public let index: Int

    init(_ index: Int) { self.index = index }

    public var description: String { "outcome \(index)" }
}
