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
///   `notX` fields and `when` conditions: a record in the *program* (RuleRecord.swift), where a bucket's
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
    let tables: CompiledTables

    public convenience init(_ set: PolicySet) { self.init(set, options: CompileOptions()) }

    public init(_ set: PolicySet, options: CompileOptions) {
        policySet = set
        self.options = options
        tables = Compiler.compile(set, options: options)
    }

    /// Sizes of what was built, for benchmarks and summaries.
    public var statistics: Statistics {
        let t = tables
        var indexed = 0
        for b in 0..<t.buckets.count where t.buckets[b].index >= 0 { indexed += 1 }
        let bytes = t.program.wordCount * 4 + t.arena.count + t.lists.count * 4
            + t.tries.nodes.count * MemoryLayout<TrieNode>.stride + t.tries.labels.count
            + t.labelTable.count * MemoryLayout<LabelSlot>.stride + t.groups.count * MemoryLayout<SelectorGroup>.stride
            + t.buckets.count * MemoryLayout<Bucket>.stride + t.scopes.count * MemoryLayout<Scope>.stride
            + t.namespaceTable.count * MemoryLayout<NamespaceSlot>.stride
        return Statistics(policies: t.policyIDs.count, rules: t.ruleIDs.count, scopes: t.scopes.count, buckets: t.buckets.count,
                          indexedBuckets: indexed, trieNodes: t.tries.nodes.count, programBytes: t.program.wordCount * 4,
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
            RequestView.with(request, scratch: 3 + request.pointee.destination.labels.count * 2 * max(1, tables.maxGroupsPerSlot)) {
                tables.decide($0, $1)
            }
        }
        return decision(outcome, reported: outcome.reports.isEmpty ? [] : Self.sortedUnique(outcome.reports))
    }

    /// A gateway's request, read in place as bytes; `outcome` names the answer when it depends on the
    /// decision and its reports (see `OutcomeKey`), nil when it carries a reason built for this request.
    public func evaluate(_ request: GatewayRequest) -> (decision: Decision, outcome: OutcomeKey?) {
        let labelCount = WorkloadLabels.maxCount(request.workload)
        let outcome = RequestView.with(request, labelCapacity: labelCount, scratch: 3 + labelCount * 2 * max(1, tables.maxGroupsPerSlot)) {
            tables.decide($0, $1)
        }
        // A rule can be a candidate twice (two of its values matched): each is reported once, in policy order.
        let reported = outcome.reports.isEmpty ? outcome.reports : Self.sortedUnique(outcome.reports)
        return (decision(outcome, reported: reported), outcomeKey(outcome, reported: reported))
    }

    private static func sortedUnique(_ rules: [UInt32]) -> [UInt32] {
        var sorted = rules.sorted()
        var kept = 0
        for rule in sorted where kept == 0 || sorted[kept - 1] != rule {
            sorted[kept] = rule
            kept += 1
        }
        sorted.removeLast(sorted.count - kept)
        return sorted
    }

    /// How many distinct decisions, reports aside, the set can give: every `OutcomeKey.index` it returns is
    /// below this.
    public var outcomeCount: Int { (2 + tables.peerDetails.count + tables.ruleDetails.count + tables.defaultDenyDetails.count) * 4 }

    private func outcomeKey(_ outcome: CompiledTables.Outcome, reported: [UInt32]) -> OutcomeKey? {
        let t = tables
        let index = Int(outcome.index)
        let kind: Int
        switch outcome.stage {
        case .noAllowPolicy: kind = 0
        case .peerAuthentication: kind = 1 + (index + 1)
        case .custom, .denyPolicy, .allowPolicy: kind = 2 + t.peerDetails.count + index
        case .defaultDeny:
            guard index >= 0 else { return nil }
            kind = 2 + t.peerDetails.count + t.ruleDetails.count + index
        case .notReady, .requestAuthentication:  // never an engine's outcome (authentication runs before)
            return nil
        }
        return OutcomeKey(kind * 4 + outcome.mode.outcomeOrdinal, reports: reported)
    }

    /// `reported`: the outcome's reports, sorted and unique.
    private func decision(_ outcome: CompiledTables.Outcome, reported: [UInt32]) -> Decision {
        let t = tables
        var dryRun: [Decision.Report] = []
        var audit: [Decision.Report] = []
        if !reported.isEmpty {
            for rule in reported {
                if t.ruleCategories[Int(rule)] == .dryRun {
                    dryRun.append(Decision.Report(action: t.ruleActions[Int(rule)], rule: t.ruleIDs[Int(rule)]))
                } else {
                    audit.append(Decision.Report(action: .audit, rule: t.ruleIDs[Int(rule)]))
                }
            }
        }
        // One construction site (returning from several `Decision(...)` expressions made the optimizer copy).
        var details: Decision.Details
        switch outcome.stage {
        case .peerAuthentication:
            details = outcome.index >= 0 ? t.peerDetails[Int(outcome.index)] : t.strictDetailsDefault
        case .custom, .denyPolicy, .allowPolicy:
            details = Unmanaged<Decision.Details>.fromOpaque(outcome.details!).takeUnretainedValue()
        case .noAllowPolicy:
            details = t.noAllowPolicyDetails
        case .defaultDeny, .notReady, .requestAuthentication:
            details = outcome.index >= 0
                ? Unmanaged<Decision.Details>.fromOpaque(t.defaultDenyAddresses[outcome.index]).takeUnretainedValue()
                : Decision.Details(reason: outcome.builtReason!)
        }
        if !dryRun.isEmpty || !audit.isEmpty {
            details = Decision.Details(reason: details.reason, rule: details.rule, dryRun: dryRun, audit: audit)
        }
        let allowed = outcome.stage == .allowPolicy || outcome.stage == .noAllowPolicy
        return Decision(allowed: allowed, stage: outcome.stage, mtlsMode: outcome.mode, details: details)
    }

}

public struct CompileOptions: Sendable, Hashable {
    /// A bucket with more rules than this gets tries; a smaller one is scanned rule by rule. With 0, every
    /// bucket is indexed and every indexable rule filed (tests use it to exercise the tries everywhere).
    public var indexThreshold: Int

    public init(indexThreshold: Int = 12) {
        self.indexThreshold = indexThreshold
    }
}

/// Names a gateway answer by what it depends on: the deciding rule or policy, stage and mTLS mode (`index`,
/// `0 ..< outcomeCount` in one compiled set), and the dry-run and AUDIT rules it reports (`reports`, this
/// set's rule numbers, sorted and unique; usually none). Two requests with equal keys get equal decisions,
/// so an answer built for one can serve the other.
public struct OutcomeKey: Hashable, Sendable, CustomStringConvertible {
    public let index: Int
    public let reports: [UInt32]

    init(_ index: Int, reports: [UInt32] = []) {
        self.index = index
        self.reports = reports
    }

    public var description: String { reports.isEmpty ? "outcome \(index)" : "outcome \(index) reporting \(reports)" }
}

extension MTLSMode {
    /// 0 ..< 4: the mode's part of an `OutcomeKey`.
    var outcomeOrdinal: Int {
        switch self {
        case .unset: return 0
        case .disable: return 1
        case .permissive: return 2
        case .strict: return 3
        }
    }
}
