import Synchronization

/// The decision path up to confirming a rule: the workload's scope and label slots (Slots.swift), the
/// buckets that apply to it, the PeerAuthentication step, and candidate rules from each bucket (all of a
/// small bucket's records, or those its candidate index files under the request's values), each
/// confirmed by `matches` (RuleChecker.swift) and folded into `Verdicts`.
extension CompiledTables {
    struct Outcome {
        var stage: Decision.Stage
        var mode: MTLSMode
        /// The deciding rule (custom, deny, allow); the PeerAuthentication (peer-authentication, -1 for none);
        /// the precomputed default-deny text (-1: see `builtReason`).
        var index: Int32
        var reports: [UInt32]
        var builtReason: String?
        /// The deciding rule's `Decision.Details` (custom, deny, allow).
        var details: UnsafeRawPointer? = nil
    }

    struct Applicable {
        var bucket: Bucket
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
        mutating func add(_ bucket: Bucket, _ reason: Int32, _ kind: Applicable.Kind) {
            // The scratch is sized from the slot layout (3 + labels × 2 × groups per slot): a miscount here
            // would write past it.
            assert(count < applicable.count, "more applicable buckets than the scratch was sized for")
            (applicable.baseAddress! + count).initialize(to: Applicable(bucket: bucket, reason: reason, kind: kind))
            count += 1
        }
    }

    func decide(_ view: RequestView,
                        _ scratch: UnsafeMutableBufferPointer<Applicable>) -> Outcome {
        // The workload's scope comes with its namespace's hash-table slot (one load, no second lookup).
        var workloadScope: Int32 = -1
        var workloadScopeData = Scope.none
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
                workloadScope = namespaceTable[slot].scope
                workloadScopeData = namespaceTable[slot].data
            }
        }
        let root = rootScope >= 0 ? rootScopeData : Scope.none
        // Step 2: the buckets that apply (§2), each once; the workload-level PeerAuthentication on the way.
        var gathering = Gathering(scratch)
        if root.wideBucket >= 0 { gathering.add(root.wide, -1, .wide) }
        if workloadScope >= 0 && workloadScope != rootScope && workloadScopeData.wideBucket >= 0 { gathering.add(workloadScopeData.wide, -1, .wide) }
        let rootKeys = root.keyFilter
        let ownKeys = workloadScope >= 0 && workloadScope != rootScope ? workloadScopeData.keyFilter : 0
        for label in view.labels {
            // A scope's key filter skips probes for label keys none of its selectors or gateways use.
            let bit: UInt64 = 1 << (label.keyHash >> 58)
            if rootKeys & bit != 0 { visit(rootScope, rootNamespaceHash, inWorkloadNamespace: rootScope == workloadScope, label, view, &gathering) }
            if ownKeys & bit != 0 { visit(workloadScope, namespaceHash, inWorkloadNamespace: true, label, view, &gathering) }
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
        let denyReason = defaultDenyReason(workloadScope >= 0 ? workloadScopeData.wideReason : meshWideReason, applicable)
        if denyReason >= 0 { touched &+= defaultDenyAddresses[denyReason].load(as: UInt32.self) }
        keep(touched)
        // Step 1: PeerAuthentication (mesh and namespace levels are precomputed per scope).
        var mode = workloadScope >= 0 ? workloadScopeData.mode : meshMode
        var decidedBy = workloadScope >= 0 ? workloadScopeData.decidedBy : meshDecidedBy
        if gathering.workloadPeer != .max {
            let peerIndex = gathering.workloadPeer
            let peer = peers[peerIndex]
            if peer.mode != .unset { mode = peer.mode; decidedBy = peerIndex }
            if let port = view.port {
                for p in peer.portsStart..<peer.portsEnd where peerPorts[p].port == port && peerPorts[p].mode != .unset {
                    mode = peerPorts[p].mode
                    decidedBy = peerIndex
                }
            }
        }
        if mode == .strict && !view.isMTLS {
            return Outcome(stage: .peerAuthentication, mode: mode, index: decidedBy, reports: [])
        }
        // Steps 3-6: candidates from each bucket, confirmed.
        var verdicts = Verdicts()
        for i in 0..<gathering.count { collect(scratch[i].bucket, view, &verdicts) }
        keep(verdicts.touched)
        @inline(__always) func ruleOutcome(_ stage: Decision.Stage, _ offset: UInt32) -> Outcome {
            let rule = program.record(Int(offset))
            return Outcome(stage: stage, mode: mode, index: Int32(rule.ruleIndex), reports: verdicts.reports, details: rule.details)
        }
        if verdicts.custom != .max { return ruleOutcome(.custom, verdicts.custom) }
        if verdicts.deny != .max { return ruleOutcome(.denyPolicy, verdicts.deny) }
        if !verdicts.hasAllowPolicy { return Outcome(stage: .noAllowPolicy, mode: mode, index: -1, reports: verdicts.reports) }
        if verdicts.allow != .max { return ruleOutcome(.allowPolicy, verdicts.allow) }
        var outcome = Outcome(stage: .defaultDeny, mode: mode, index: -1, reports: verdicts.reports)
        outcome.index = denyReason
        if outcome.index < 0 { outcome.builtReason = buildDefaultDenyReason(applicable) }
        return outcome
    }

    @inline(__always)
    private func visit(_ scope: Int32, _ namespaceHash: UInt64, inWorkloadNamespace own: Bool, _ label: LabelView, _ view: RequestView,
                       _ gathering: inout Gathering) {
        let slotIndex = findLabel(scope, namespaceHash: namespaceHash, label)
        guard slotIndex >= 0 else { return }
        let slot = labelTable[slotIndex]
        @inline(__always) func gather(_ group: SelectorGroup) {
            guard selected(group, view.labels) else { return }
            if group.bucket >= 0 { gathering.add(group.body, group.reason, own ? .ownGroup : .other) }
            if own && group.peerAuth >= 0 && group.peerAuth < gathering.workloadPeer { gathering.workloadPeer = group.peerAuth }
        }
        if slot.firstGroupIndex >= 0 { gather(slot.firstGroup) }
        var g = slot.groupsStart
        while g < slot.groupsEnd {
            let groupIndex = lists[g]
            g += 1
            gather(groups[groupIndex])
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
    private func selected(_ group: SelectorGroup, _ labels: UnsafeBufferPointer<LabelView>) -> Bool {
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
    private func collect(_ bucket: Bucket, _ view: RequestView, _ verdicts: inout Verdicts) {
        if bucket.allowStart < bucket.allowEnd { verdicts.hasAllowPolicy = true }
        guard bucket.index >= 0 else {
            // Every rule record of the bucket, in order.
            var record = Int(bucket.programStart)
            let end = Int(bucket.programEnd)
            while record < end {
                let rule = program.record(record)
                consider(rule, view, &verdicts)
                record += rule.length
            }
            return
        }
        let index = indices[bucket.index]
        considerList(index.alwaysStart, index.alwaysEnd, view, &verdicts)
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
                    considerList(entry.start, entry.end, view, &verdicts)
                    break
                }
                if entry.port < port { low = mid + 1 } else { high = mid }
            }
        }
    }

    @inline(__always)
    private func search(_ strings: StringIndex, _ value: Bytes?, lowered: Bool, _ view: RequestView,
                        _ verdicts: inout Verdicts) {
        guard strings.isUsed, let value else { return }
        considerList(strings.presentStart, strings.presentEnd, view, &verdicts)
        if strings.forward >= 0 {
            tries.lookup(strings.forward, value, reversed: false, lowered: lowered) {
                considerList($0, $1, view, &verdicts)
            }
        }
        if strings.backward >= 0 {
            tries.lookup(strings.backward, value, reversed: true, lowered: lowered) {
                considerList($0, $1, view, &verdicts)
            }
        }
    }

    /// Every rule record whose offset is in `lists[start ..< end]`.
    @inline(__always)
    private func considerList(_ start: UInt32, _ end: UInt32, _ view: RequestView, _ verdicts: inout Verdicts) {
        var i = start
        while i < end {
            consider(program.record(Int(lists[i])), view, &verdicts)
            i += 1
        }
    }

    /// A candidate rule: confirmed unless it cannot change the answer (a rule of the deciding kind that
    /// sorts after the best match so far).
    @inline(__always)
    private func consider(_ rule: RuleRecord, _ view: RequestView, _ verdicts: inout Verdicts) {
        let rank = rule.rank
        switch rule.category {
        case .allow:
            if rank < verdicts.allowRank && matches(rule, view) {
                verdicts.allow = UInt32(rule.offset)
                verdicts.allowRank = rank
                verdicts.touch(rule.details)
            }
        case .deny:
            if rank < verdicts.denyRank && matches(rule, view) {
                verdicts.deny = UInt32(rule.offset)
                verdicts.denyRank = rank
                verdicts.touch(rule.details)
            }
        case .custom:
            if rank < verdicts.customRank && matches(rule, view) {
                verdicts.custom = UInt32(rule.offset)
                verdicts.customRank = rank
                verdicts.touch(rule.details)
            }
        case .audit, .dryRun:
            if matches(rule, view) { verdicts.reports.append(rule.ruleIndex) }
        }
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
