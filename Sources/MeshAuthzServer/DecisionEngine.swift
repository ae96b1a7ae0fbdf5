import MeshAuthz

/// Whatever answers decisions for a loaded policy set: the reference evaluator (the oracle) or the
/// compiled matcher. The server only knows this protocol, so either can serve.
public protocol DecisionEngine: Sendable {
    func evaluate(_ request: CheckRequest) -> Decision
}

extension ReferenceEvaluator: DecisionEngine {}
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
