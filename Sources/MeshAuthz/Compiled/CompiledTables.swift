/// Everything `Compiler` builds from a `PolicySet`, immutable once built: the decision path
/// (`Candidates.swift`, `RuleChecker.swift`) reads these tables and nothing else. Hot tables are plain
/// values in `Frozen` buffers; the `Decision.Details` objects are built once so a decision retains one of
/// them instead of copying strings, and the rule records hold their addresses (these arrays keep them alive).
struct CompiledTables: Sendable {
    // MARK: What a Decision carries (cold)

    let policyIDs: [ResourceID]
    /// By global rule index: evaluation order (policy order, then rule index), also the order of dry-run
    /// and AUDIT reports.
    let ruleIDs: [RuleID]
    let ruleActions: [Action]
    let ruleCategories: [RuleCategory]
    let ruleDetails: [Decision.Details]
    /// A STRICT PeerAuthentication's refusal, by PeerAuthentication, and without one.
    let peerDetails: [Decision.Details]
    let strictDetailsDefault: Decision.Details
    /// The precomputed default-deny texts, and their objects' addresses (to ask for an object's cache line
    /// before it is known to be needed).
    let defaultDenyDetails: [Decision.Details]
    let defaultDenyAddresses: Frozen<UnsafeRawPointer>
    let noAllowPolicyDetails: Decision.Details
    /// What `Attribute.header` and `Attribute.claim` checks name by index.
    let headerNames: [String]
    let claimPaths: [[String]]

    // MARK: Hot: read by every decision

    let program: Program
    let arena: ByteArena
    /// Id lists: candidate record offsets, policy ordinals, selector group indices.
    let lists: Frozen<UInt32>
    let tries: TriePools
    let buckets: Frozen<Bucket>
    let indices: Frozen<CandidateIndex>
    let portEntries: Frozen<PortEntry>
    let scopes: Frozen<Scope>
    let groups: Frozen<SelectorGroup>
    let groupLabels: Frozen<LabelRuns>
    let namespaceTable: Frozen<NamespaceSlot>
    let labelTable: Frozen<LabelSlot>
    let peers: Frozen<PeerEntry>
    let peerPorts: Frozen<PeerPort>
    /// The root namespace's scope (-1 when it has no policies), its name's hash and a copy of its data.
    let rootScope: Int32
    let rootNamespaceHash: UInt64
    let rootScopeData: Scope
    /// Bit `keyHash >> 58` of every label key any scope's selector groups or gateways are filed under.
    let anyScopeKeys: UInt64
    /// The mesh level's mTLS mode and the PeerAuthentication that set it (-1: none), for a namespace
    /// without policies.
    let meshMode: MTLSMode
    let meshDecidedBy: Int32
    let meshWideReason: Int32
    /// The most selector groups filed under one label slot: sizes the scratch of gathered buckets.
    let maxGroupsPerSlot: Int
}
