/// What applies to one workload of the manifests: its enforced policies.
struct WorkloadCoverage {
    let workload: Inventory.Workload
    let policies: [AuthorizationPolicy]

    static func all(_ input: AnalysisInput) -> [WorkloadCoverage] {
        let evaluator = ReferenceEvaluator(input.set)
        // A policy applies in its own namespace, or everywhere from the root namespace.
        let byNamespace = Dictionary(grouping: input.set.authorizationPolicies.filter { !$0.dryRun }, by: \.id.namespace)
        let root = byNamespace[input.options.rootNamespace] ?? []
        return input.inventory.workloads.map { workload in
            let destination = workload.asDestination
            let candidates = workload.id.namespace == input.options.rootNamespace ? root : root + (byNamespace[workload.id.namespace] ?? [])
            return WorkloadCoverage(workload: workload, policies: candidates.filter { evaluator.applies($0, to: destination) })
        }
    }
}

/// MA0301: a workload under an allow-nothing policy that no ALLOW policy with rules opens: every request
/// to it is denied. Often intended (a batch job nobody calls); listed so the team sees it.
struct DeniedByAllowNothingAnalyzer: Analyzer {
    var code: FindingCode { .deniedByAllowNothing }
    var needsInventory: Bool { true }

    func analyze(_ input: AnalysisInput) -> [Finding] {
        WorkloadCoverage.all(input).compactMap { coverage in
            guard let nothing = coverage.policies.first(where: { $0.isAllowNothing && $0.isNamespaceWide }),
                  !coverage.policies.contains(where: { $0.action == .allow && !$0.rules.isEmpty }) else { return nil }
            return Finding(code, at: coverage.workload.location, resource: coverage.workload.resourceName,
                           "no ALLOW policy selects this workload, and \(nothing.id) allows nothing: every request to it is denied",
                           fix: "add an ALLOW policy naming its callers if it serves any")
        }
    }
}

/// MA0302: in a mesh that is otherwise zero-trust (some namespace has an allow-nothing policy), a
/// workload that no AuthorizationPolicy applies to at all: every request to it is allowed.
struct UncoveredWorkloadAnalyzer: Analyzer {
    var code: FindingCode { .uncoveredWorkload }
    var needsInventory: Bool { true }

    func analyze(_ input: AnalysisInput) -> [Finding] {
        let zeroTrust = input.set.authorizationPolicies.filter { !$0.dryRun && $0.isAllowNothing && $0.isNamespaceWide }
        guard !zeroTrust.isEmpty else { return [] }
        let namespaces = Set(zeroTrust.map(\.id.namespace)).sorted().joined(separator: ", ")
        return WorkloadCoverage.all(input).compactMap { coverage in
            guard coverage.policies.isEmpty else { return nil }
            return Finding(code, at: coverage.workload.location, resource: coverage.workload.resourceName,
                           "no AuthorizationPolicy applies to this workload: every request to it is allowed, while \(namespaces) allow nothing by default",
                           fix: "add an allow-nothing policy to namespace \(coverage.workload.id.namespace) and an ALLOW policy naming the callers")
        }
    }
}
