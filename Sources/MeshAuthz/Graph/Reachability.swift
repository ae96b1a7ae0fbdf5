/// "Can any request from this caller be allowed to that destination?", the question tenant isolation
/// asks. Answered with witnesses: requests built from the ALLOW rules that could match the caller
/// (`WitnessBuilder`), each kept only when the decision engine allows it, so a reported path is never
/// a false alarm.
///
/// Covered: the caller's identities (a service account, or every account of a namespace: those the
/// manifests declare, those the policies name, `default` and a fresh one), every destination workload
/// (of the manifests, or the policies' selectors and a workload without labels), every ALLOW rule whose
/// identity fields (`principals`, `namespaces`, `serviceAccounts`, `trustDomains` and their `not` forms)
/// accept the caller, and the methods, paths, hosts, ports and `when` keys `WitnessBuilder` fills in.
/// Not covered: values no listed or fixed guess satisfies (a `notPaths` that excludes every guess, a
/// header regex). When a rule could match the caller but no witness was allowed, the answer is
/// `undetermined`, never "isolated".
public struct Reachability: Sendable {
    public struct Query: Sendable, Hashable {
        public var fromNamespace: String
        public var fromServiceAccount: String?
        public var toNamespace: String
        public var toWorkload: String?

        public init(fromNamespace: String, fromServiceAccount: String? = nil, toNamespace: String, toWorkload: String? = nil) {
            self.fromNamespace = fromNamespace
            self.fromServiceAccount = fromServiceAccount
            self.toNamespace = toNamespace
            self.toWorkload = toWorkload
        }

        /// `NS` or `NS/NAME`.
        public static func split(_ text: String) -> (namespace: String, name: String?)? {
            let parts = text.split(separator: "/", omittingEmptySubsequences: false)
            guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty }) else { return nil }
            return (String(parts[0]), parts.count == 2 ? String(parts[1]) : nil)
        }
    }

    public struct Witness: Sendable, Hashable {
        public let request: CheckRequest
        /// The rule that allowed it (the decision's), or nil when no ALLOW policy applies.
        public let ruleID: String?
        public let destination: String
    }

    public enum Answer: Sendable, Hashable {
        case reachable([Witness])
        /// No ALLOW rule applying to any destination accepts any of the caller's identities.
        case unreachable(destinations: [String], callers: [String])
        /// Rules could match the caller but no candidate request was allowed: not proven either way.
        case undetermined([String])
    }

    public enum QueryError: Error, Sendable, Hashable, CustomStringConvertible {
        case noSuchWorkload(String)
        public var description: String {
            switch self {
            case .noSuchWorkload(let what): return "no workload \(what) in the manifests (by name or app label)"
            }
        }
    }

    let input: AnalysisInput
    let decide: @Sendable (CheckRequest) -> Decision

    public init(_ input: AnalysisInput, decide: @escaping @Sendable (CheckRequest) -> Decision) {
        self.input = input
        self.decide = decide
    }

    public func answer(_ query: Query) throws(QueryError) -> Answer {
        let domain = input.options.trustDomain
        let callers = callerPrincipals(query)
        let destinations = try destinationNodes(query)
        let evaluator = ReferenceEvaluator(input.set)
        let enforced = input.set.authorizationPolicies.filter { !$0.dryRun && $0.action == .allow }
        let builder = WitnessBuilder()
        var witnesses: [Witness] = []
        var undetermined: [String] = []
        for destination in destinations {
            let workload = CheckRequest.Workload(namespace: destination.namespace, labels: destination.labels ?? [:])
            let allows = enforced.filter { evaluator.applies($0, to: workload) }
            search: for principal in callers {
                let peer = CheckRequest.Peer(principal: principal, mtls: true)
                let probe = CheckRequest(source: peer, destination: workload)
                var attempts: [(candidates: [CheckRequest], rule: String)] = []
                if allows.isEmpty {
                    attempts.append((WitnessBuilder.methods.prefix(2).flatMap { method in
                        WitnessBuilder.paths.map { CheckRequest(source: peer, destination: workload, request: .init(method: method, path: $0)) }
                    }, AccessGraph.noAllowPolicy))
                }
                for policy in allows {
                    for (index, rule) in policy.rules.enumerated() where acceptsIdentity(rule, policy, probe, evaluator) {
                        attempts.append((builder.candidates(rule, caller: peer, destination: workload), policy.ruleID(index).description))
                    }
                }
                for attempt in attempts {
                    if let allowed = attempt.candidates.lazy.map({ ($0, decide($0)) }).first(where: { $0.1.allowed }) {
                        witnesses.append(Witness(request: allowed.0, ruleID: allowed.1.rule?.description, destination: destination.label))
                        break search  // one witness per destination
                    }
                    undetermined.append("\(attempt.rule) on \(destination.label) may accept \(principal.dropFirst(domain.count + 1)), but no request built from it was allowed")
                }
            }
        }
        if !witnesses.isEmpty { return .reachable(witnesses) }
        if !undetermined.isEmpty { return .undetermined(undetermined) }
        return .unreachable(destinations: destinations.map { "\($0.namespace ?? "")/\($0.label)" }, callers: callers)
    }

    /// Whether the rule's identity fields accept the caller (its other fields are the witness's to fill).
    private func acceptsIdentity(_ rule: Rule, _ policy: AuthorizationPolicy, _ probe: CheckRequest, _ evaluator: ReferenceEvaluator) -> Bool {
        if rule.from.isEmpty { return true }
        return rule.from.contains { source in
            var identity = Source()
            identity.principals = source.principals
            identity.notPrincipals = source.notPrincipals
            identity.namespaces = source.namespaces
            identity.notNamespaces = source.notNamespaces
            identity.serviceAccounts = source.serviceAccounts
            identity.notServiceAccounts = source.notServiceAccounts
            identity.trustDomains = source.trustDomains
            identity.notTrustDomains = source.notTrustDomains
            return evaluator.matches(identity, of: policy, probe)
        }
    }

    /// The caller's principals (without `spiffe://`).
    func callerPrincipals(_ query: Query) -> [String] {
        let domain = input.options.trustDomain
        func principal(_ account: String) -> String { "\(domain)/ns/\(query.fromNamespace)/sa/\(account)" }
        if let account = query.fromServiceAccount { return [principal(account)] }
        var accounts: [String] = []
        func add(_ account: String) { if !accounts.contains(account) { accounts.append(account) } }
        for account in input.inventory.serviceAccounts where account.id.namespace == query.fromNamespace { add(account.id.name) }
        for workload in input.inventory.workloads where workload.id.namespace == query.fromNamespace { add(workload.serviceAccount) }
        let prefix = principal("")
        for policy in input.set.authorizationPolicies {
            for item in policy.sourceValues(["principals"]) where item.value.hasPrefix(prefix) && !item.value.contains("*") {
                add(String(item.value.dropFirst(prefix.count)))
            }
        }
        add("default")
        add("meshauthz-witness")
        return accounts.map(principal)
    }

    func destinationNodes(_ query: Query) throws(QueryError) -> [AccessGraph.Node] {
        let all = Destinations(input).all.filter { $0.namespace == query.toNamespace }
        guard let name = query.toWorkload else {
            if input.inventory.hasWorkloads { return all }
            // Without manifests: the selected workloads, and one no selector names.
            return all + [AccessGraph.Node(id: "workload:\(query.toNamespace)/", kind: .workload, label: "(a workload without labels)",
                                           namespace: query.toNamespace, principal: nil, labels: [:])]
        }
        let named = all.filter { $0.label == name || $0.labels?["app"] == name }
        if !named.isEmpty { return named }
        if input.inventory.hasWorkloads { throw .noSuchWorkload("\(query.toNamespace)/\(name)") }
        return [AccessGraph.Node(id: "workload:\(query.toNamespace)/app=\(name)", kind: .workload, label: name,
                                 namespace: query.toNamespace, principal: nil, labels: ["app": name])]
    }
}
