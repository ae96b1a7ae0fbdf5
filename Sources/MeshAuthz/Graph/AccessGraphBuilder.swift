/// Builds an `AccessGraph`. An ALLOW rule gives edges from the callers its `from` names to each
/// destination it applies to, unless a DENY rule on that destination always denies what it allows
/// (the certain overrides of lint's MA0208); a destination no ALLOW policy applies to can be called by
/// anyone (plaintext too when its mTLS is not STRICT). Every edge gets a witness request, confirmed
/// by `decide`.
public struct AccessGraphBuilder: Sendable {
    let input: AnalysisInput
    let decide: @Sendable (CheckRequest) -> Decision

    public init(_ input: AnalysisInput, decide: (@Sendable (CheckRequest) -> Decision)? = nil) {
        self.input = input
        let compiled = CompiledPolicySet(input.set)
        self.decide = decide ?? { compiled.evaluate($0) }
    }

    public func build() -> AccessGraph {
        let destinations = Destinations(input).all
        let evaluator = ReferenceEvaluator(input.set)
        let resolver = PeerAuthenticationResolver(input.set)
        let enforced = input.set.authorizationPolicies.filter { !$0.dryRun }
        let callers = Callers(input)
        var nodes: [String: AccessGraph.Node] = Dictionary(destinations.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var edges: [String: AccessGraph.Edge] = [:]
        var order: [String] = []
        var unrestricted: Set<String> = []
        let witnesses = WitnessBuilder()

        // A policy applies in its own namespace, or everywhere from the root namespace.
        let byNamespace = Dictionary(grouping: enforced, by: \.id.namespace)
        let root = byNamespace[input.options.rootNamespace] ?? []
        for destination in destinations {
            let workload = CheckRequest.Workload(namespace: destination.namespace, labels: destination.labels ?? [:])
            let namespace = destination.namespace ?? ""
            let candidates = namespace == input.options.rootNamespace ? root : root + (byNamespace[namespace] ?? [])
            let applicable = candidates.filter { evaluator.applies($0, to: workload) }
            let allows = applicable.filter { $0.action == .allow }
            let denies = applicable.filter { $0.action == .deny }
            let strict = resolver.mode(for: workload).mode == .strict
            var grants: [(caller: AccessGraph.Node, rule: Rule?, ruleID: String)] = []
            if allows.isEmpty {
                let anyone = strict ? callers.anyAuthenticated : callers.anyPlaintext
                grants.append((anyone, nil, AccessGraph.noAllowPolicy))
            }
            for policy in allows {
                for (index, rule) in policy.rules.enumerated() {
                    if denies.contains(where: { deny in deny.rules.contains { AllowOverriddenByDenyAnalyzer.covers($0, rule) } }) { continue }
                    for caller in callers.of(rule, policy: policy, strict: strict) {
                        grants.append((caller, rule, policy.ruleID(index).description))
                    }
                }
            }
            for (caller, rule, ruleID) in grants {
                nodes[caller.id] = caller
                let key = caller.id + "\u{0}" + destination.id
                var edge = edges[key] ?? AccessGraph.Edge(from: caller.id, to: destination.id, rules: [], methods: [], paths: [],
                                                          ports: [], witness: nil, witnessRule: nil, confirmed: false)
                if edges[key] == nil { order.append(key) }
                if !edge.rules.contains(ruleID) { edge.rules.append(ruleID) }
                // A rule without an operation allows every method, path and port: the edge's lists stay empty.
                let operations = rule?.to ?? []
                if operations.isEmpty {
                    unrestricted.insert(key)
                    edge.methods = []; edge.paths = []; edge.ports = []
                } else if !unrestricted.contains(key) {
                    for operation in operations {
                        edge.methods += operation.methods.filter { !edge.methods.contains($0) }
                        edge.paths += operation.paths.filter { !edge.paths.contains($0) }
                        edge.ports += operation.ports.filter { !edge.ports.contains($0) }
                    }
                }
                if !edge.confirmed {
                    let peer = CheckRequest.Peer(principal: caller.principal, mtls: caller.principal != nil)
                    let candidates = rule.map { witnesses.candidates($0, caller: peer, destination: workload) }
                        ?? [CheckRequest(source: peer, destination: workload, request: .init(method: "GET", path: "/"))]
                    for candidate in candidates {
                        let decision = decide(candidate)
                        if decision.allowed {
                            edge.witness = candidate
                            edge.witnessRule = decision.rule?.description ?? ruleID
                            edge.confirmed = true
                            break
                        }
                    }
                }
                edges[key] = edge
            }
        }
        let sortedNodes = nodes.values.sorted { ($0.kind.rawValue, $0.namespace ?? "", $0.label) < ($1.kind.rawValue, $1.namespace ?? "", $1.label) }
        return AccessGraph(nodes: sortedNodes, edges: order.map { edges[$0]! })
    }
}

/// The destinations: the workloads of the manifests; without them, one per distinct selector of the
/// policies of each namespace (the root namespace's apply everywhere and give none).
struct Destinations {
    let all: [AccessGraph.Node]

    init(_ input: AnalysisInput) {
        if input.inventory.hasWorkloads {
            all = input.inventory.workloads.map { workload in
                AccessGraph.Node(id: "workload:\(workload.id)", kind: .workload, label: workload.id.name, namespace: workload.id.namespace,
                                 principal: workload.principal(trustDomain: input.options.trustDomain), labels: workload.labels)
            }
            return
        }
        var seen: Set<String> = []
        var nodes: [AccessGraph.Node] = []
        for policy in input.set.authorizationPolicies where policy.id.namespace != input.options.rootNamespace {
            guard let selector = policy.selector, !selector.isEmpty else { continue }
            let text = selector.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            let id = "workload:\(policy.id.namespace)/\(text)"
            guard seen.insert(id).inserted else { continue }
            let label = selector.count == 1 && selector["app"] != nil ? selector["app"]! : text
            nodes.append(AccessGraph.Node(id: id, kind: .workload, label: label, namespace: policy.id.namespace,
                                          principal: nil, labels: selector))
        }
        all = nodes
    }
}

/// The caller nodes a rule's `from` names, mapped to the workloads of the manifests that run as them.
struct Callers {
    let input: AnalysisInput
    let byPrincipal: [String: [Inventory.Workload]]
    let byNamespace: [String: [Inventory.Workload]]
    let anyAuthenticated: AccessGraph.Node
    let anyPlaintext: AccessGraph.Node

    init(_ input: AnalysisInput) {
        self.input = input
        let domain = input.options.trustDomain
        byPrincipal = Dictionary(grouping: input.inventory.workloads) { $0.principal(trustDomain: domain) }
        byNamespace = Dictionary(grouping: input.inventory.workloads) { $0.id.namespace }
        anyAuthenticated = AccessGraph.Node(id: AccessGraph.anyAuthenticatedID, kind: .anyAuthenticated, label: "any authenticated",
                                            namespace: nil, principal: "\(domain)/ns/meshauthz-witness/sa/meshauthz-witness", labels: nil)
        anyPlaintext = AccessGraph.Node(id: AccessGraph.anyPlaintextID, kind: .anyPlaintext, label: "any (plaintext)",
                                        namespace: nil, principal: nil, labels: nil)
    }

    func workloadNode(_ workload: Inventory.Workload) -> AccessGraph.Node {
        AccessGraph.Node(id: "workload:\(workload.id)", kind: .workload, label: workload.id.name, namespace: workload.id.namespace,
                         principal: workload.principal(trustDomain: input.options.trustDomain), labels: workload.labels)
    }

    func of(_ rule: Rule, policy: AuthorizationPolicy, strict: Bool) -> [AccessGraph.Node] {
        let anyone = strict ? anyAuthenticated : anyPlaintext
        guard !rule.from.isEmpty else { return [anyone] }
        var out: [AccessGraph.Node] = []
        for source in rule.from {
            if !source.principals.isEmpty {
                out += source.principals.flatMap { principal($0) }
            } else if !source.serviceAccounts.isEmpty {
                out += source.serviceAccounts.flatMap { account -> [AccessGraph.Node] in
                    let parts = account.split(separator: "/")
                    let (ns, name) = parts.count == 2 ? (String(parts[0]), String(parts[1])) : (policy.id.namespace, account)
                    return principal("\(input.options.trustDomain)/ns/\(ns)/sa/\(name)")
                }
            } else if !source.namespaces.isEmpty {
                out += source.namespaces.flatMap { namespace($0) }
            } else if !source.notPrincipals.isEmpty || !source.notNamespaces.isEmpty || !source.trustDomains.isEmpty
                        || !source.notServiceAccounts.isEmpty || !source.notTrustDomains.isEmpty {
                out.append(anyAuthenticated)  // identity fields only a peer certificate can satisfy
            } else {
                out.append(anyone)
            }
        }
        return out
    }

    private func principal(_ value: String) -> [AccessGraph.Node] {
        if value == "*" { return [anyAuthenticated] }
        if let workloads = byPrincipal[value] { return workloads.map(workloadNode) }
        // A pattern or a principal no manifest runs as: its own node. A pattern's witness identity fills it in.
        let identity = WitnessBuilder().concrete(value, "meshauthz-witness")
        return [AccessGraph.Node(id: "principal:\(value)", kind: .principal, label: value, namespace: nil, principal: identity, labels: nil)]
    }

    private func namespace(_ value: String) -> [AccessGraph.Node] {
        if value == "*" { return [anyAuthenticated] }
        if let workloads = byNamespace[value] { return workloads.map(workloadNode) }
        let identity = "\(input.options.trustDomain)/ns/\(WitnessBuilder().concrete(value, "meshauthz-witness"))/sa/meshauthz-witness"
        return [AccessGraph.Node(id: "namespace:\(value)", kind: .namespace, label: "namespace \(value)", namespace: nil,
                                 principal: identity, labels: nil)]
    }
}
