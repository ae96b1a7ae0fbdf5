/// MA0201: an ALLOW policy without rules on selected workloads matches nothing, and its presence makes
/// them default-deny: every request to them is denied. Namespace-wide, that is the zero-trust pattern
/// (MA0202); on one workload it is usually a policy whose rules were lost.
struct AllowNothingOnWorkloadAnalyzer: Analyzer {
    var code: FindingCode { .allowNothingOnWorkload }

    func analyze(_ input: AnalysisInput) -> [Finding] {
        input.set.authorizationPolicies.compactMap { policy in
            guard policy.isAllowNothing, !policy.dryRun, !policy.isNamespaceWide else { return nil }
            return Finding(code, at: policy.location, resource: policy.resourceName,
                           "ALLOW policy without rules on \(policy.targetDescription): every request to those workloads is denied",
                           fix: "add the rules that say who may call them, or delete the policy")
        }
    }
}

/// MA0202: the namespace-wide (or mesh-wide) allow-nothing policy, `spec: {}`: the zero-trust default
/// that every other ALLOW policy opens holes in. Reported as information.
struct AllowNothingNamespaceAnalyzer: Analyzer {
    var code: FindingCode { .allowNothingNamespace }

    func analyze(_ input: AnalysisInput) -> [Finding] {
        input.set.authorizationPolicies.compactMap { policy in
            guard policy.isAllowNothing, !policy.dryRun, policy.isNamespaceWide else { return nil }
            let scope = policy.id.namespace == input.options.rootNamespace ? "the whole mesh" : "namespace \(policy.id.namespace)"
            return Finding(code, at: policy.location, resource: policy.resourceName,
                           "allow-nothing for \(scope): a workload there receives only what another ALLOW policy allows")
        }
    }
}

/// MA0203: an ALLOW rule `{}` matches every request: with it, the selected workloads accept anything,
/// including plaintext requests when their mTLS is not STRICT.
struct AllowAnyRequestAnalyzer: Analyzer {
    var code: FindingCode { .allowAnyRequest }

    func analyze(_ input: AnalysisInput) -> [Finding] {
        input.set.authorizationPolicies.flatMap { policy -> [Finding] in
            guard policy.action == .allow, !policy.dryRun else { return [] }
            return policy.rules.enumerated().compactMap { index, rule in
                guard rule.from.isEmpty, rule.to.isEmpty, rule.when.isEmpty else { return nil }
                return Finding(code, at: policy.location(of: "spec.rules[\(index)]"), resource: policy.resourceName,
                               "spec.rules[\(index)] is {}: it allows every request to \(policy.targetDescription), from any caller (plaintext ones too where mTLS is not STRICT)",
                               fix: "name the callers (from.source.principals) and what they may do (to.operation)")
            }
        }
    }
}

/// MA0211: CUSTOM hands matching requests to an external authorizer (`provider.name`). meshauthz cannot
/// ask it, so it denies them (fail closed); Istio would ask.
struct CustomPolicyAnalyzer: Analyzer {
    var code: FindingCode { .customPolicy }

    func analyze(_ input: AnalysisInput) -> [Finding] {
        input.set.authorizationPolicies.compactMap { policy in
            guard policy.action == .custom else { return nil }
            return Finding(code, at: policy.location, resource: policy.resourceName,
                           "CUSTOM policy (provider \(policy.provider ?? "?")): in Istio the provider decides the requests its rules match; meshauthz cannot ask it and denies them (stage \"custom\")")
        }
    }
}

/// MA0212: `experimental.envoy.filters.*` conditions read Envoy dynamic metadata, which no check request
/// carries: in meshauthz the condition never holds (an ALLOW rule with it never allows, a DENY rule never denies).
struct ExperimentalKeyAnalyzer: Analyzer {
    var code: FindingCode { .experimentalKey }

    func analyze(_ input: AnalysisInput) -> [Finding] {
        input.set.authorizationPolicies.flatMap { policy in
            policy.rules.enumerated().flatMap { index, rule in
                rule.when.enumerated().compactMap { conditionIndex, condition -> Finding? in
                    guard case .experimentalEnvoyFilter(let key) = condition.key else { return nil }
                    return Finding(code, at: policy.location(of: "spec.rules[\(index)].when[\(conditionIndex)]"), resource: policy.resourceName,
                                   "spec.rules[\(index)].when[\(conditionIndex)].key \(key) reads Envoy filter metadata that meshauthz never has: the rule never matches here, whatever Envoy would do")
                }
            }
        }
    }
}

extension AuthorizationPolicy {
    /// ALLOW without rules: matches nothing, and makes the workloads it applies to default-deny.
    var isAllowNothing: Bool { action == .allow && rules.isEmpty }

    /// No selector (or an empty one) and no targetRefs: every workload of the namespace (of the mesh from
    /// the root namespace).
    var isNamespaceWide: Bool { targetRefs.isEmpty && (selector?.isEmpty ?? true) }

    var targetDescription: String {
        if !targetRefs.isEmpty { return "the targets " + targetRefs.map { "\($0.kind)/\($0.name)" }.joined(separator: ", ") }
        guard let selector, !selector.isEmpty else { return "every workload of namespace \(id.namespace)" }
        return "the workloads labelled " + selector.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            + " in \(id.namespace)"
    }
}
