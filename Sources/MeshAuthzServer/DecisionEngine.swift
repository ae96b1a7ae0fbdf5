import MeshAuthz

/// Whatever answers decisions for a loaded policy set: the reference evaluator (the oracle) or the
/// compiled matcher. The server only knows this protocol, so either can serve.
public protocol DecisionEngine: Sendable {
    func evaluate(_ request: CheckRequest) -> Decision

    /// A gateway request. `outcome` numbers answers without reports (`0 ..< outcomeCount`; equal numbers,
    /// equal decisions), so the HTTP layer can build each answer once; -1 when not numbered.
    func evaluate(_ request: GatewayRequest) -> (decision: Decision, outcome: Int)

    var outcomeCount: Int { get }
}

extension ReferenceEvaluator: DecisionEngine {
    /// The oracle reads strings: the gateway request is turned into a `CheckRequest` first.
    public func evaluate(_ request: GatewayRequest) -> (decision: Decision, outcome: Int) {
        (evaluate(request.checkRequest), -1)
    }

    public var outcomeCount: Int { 0 }
}

extension CompiledPolicySet: DecisionEngine {}

/// Which engine a loaded policy set is turned into (`serve --engine`).
public enum EngineKind: String, Sendable, CaseIterable {
    /// `ReferenceEvaluator`: Istio's rules read step by step; cost grows with the number of policies.
    case reference
    /// `CompiledPolicySet`: indexed, for large policy sets.
    case compiled

    public func makeEngine(_ set: PolicySet) -> any DecisionEngine {
        switch self {
        case .reference: return ReferenceEvaluator(set)
        case .compiled: return CompiledPolicySet(set)
        }
    }
}
