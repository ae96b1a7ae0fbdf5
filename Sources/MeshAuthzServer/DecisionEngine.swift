import MeshAuthz

/// Whatever answers decisions for a loaded policy set: the reference evaluator (the oracle) or the
/// compiled matcher. The server only knows this protocol, so either can serve.
public protocol DecisionEngine: Sendable {
    func evaluate(_ request: CheckRequest) -> Decision

    /// A gateway request. `outcome` names the answer (`OutcomeKey`: an index below `outcomeCount`, and the
    /// reported rules; equal keys, equal decisions), so the server can build each answer once; nil when the
    /// answer is one of a kind.
    func evaluate(_ request: GatewayRequest) -> (decision: Decision, outcome: OutcomeKey?)

    var outcomeCount: Int { get }
}

extension ReferenceEvaluator: DecisionEngine {
    /// The oracle reads strings: the gateway request is turned into a `CheckRequest` first.
    public func evaluate(_ request: GatewayRequest) -> (decision: Decision, outcome: OutcomeKey?) {
        (evaluate(request.checkRequest), nil)
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
