/// MA0208: an ALLOW rule that a DENY rule on (at least) the same workloads always overrides: DENY is
/// evaluated first, so the ALLOW rule can never allow anything. Conservative: reported only when it is
/// certain from the values as written (the DENY rule's fields are each implied by the ALLOW rule's; no
/// negated DENY field; its conditions repeated in the ALLOW rule); anything less certain is not reported.
struct AllowOverriddenByDenyAnalyzer: Analyzer {
    var code: FindingCode { .allowOverriddenByDeny }

    func analyze(_ input: AnalysisInput) -> [Finding] {
        let enforced = input.set.authorizationPolicies.filter { !$0.dryRun }
        let denies = enforced.filter { $0.action == .deny }
        guard !denies.isEmpty else { return [] }
        var findings: [Finding] = []
        for allow in enforced where allow.action == .allow {
            for (index, rule) in allow.rules.enumerated() {
                let overriding = denies.lazy.filter { Self.covers($0, allow, root: input.options.rootNamespace) }.compactMap { deny in
                    deny.rules.indices.first { Self.covers(deny.rules[$0], rule) }.map { deny.ruleID($0) }
                }.first
                if let overriding {
                    findings.append(Finding(code, at: allow.location(of: "spec.rules[\(index)]"), resource: allow.resourceName,
                                            "spec.rules[\(index)] can never allow: DENY rule \(overriding) applies to the same workloads and matches every request it matches",
                                            fix: "narrow the DENY rule, or remove the ALLOW rule"))
                }
            }
        }
        return findings
    }

    /// The DENY policy applies to every workload the ALLOW policy applies to.
    static func covers(_ deny: AuthorizationPolicy, _ allow: AuthorizationPolicy, root: String) -> Bool {
        guard deny.id.namespace == allow.id.namespace || (deny.id.namespace == root) else { return false }
        if !deny.targetRefs.isEmpty || !allow.targetRefs.isEmpty { return deny.targetRefs == allow.targetRefs && deny.id.namespace == allow.id.namespace }
        let allowSelector = allow.selector ?? [:]
        return (deny.selector ?? [:]).allSatisfy { allowSelector[$0.key] == $0.value }
    }

    /// Every request the ALLOW rule matches, the DENY rule matches.
    static func covers(_ deny: Rule, _ allow: Rule) -> Bool {
        guard deny.when.allSatisfy({ allow.when.contains($0) }) else { return false }
        let fromCovered = deny.from.isEmpty
            || (!allow.from.isEmpty && deny.from.contains { d in allow.from.allSatisfy { covers(d, $0) } })
        let toCovered = deny.to.isEmpty
            || (!allow.to.isEmpty && deny.to.contains { d in allow.to.allSatisfy { covers(d, $0) } })
        return fromCovered && toCovered
    }

    static func covers(_ d: Source, _ a: Source) -> Bool {
        guard d.notPrincipals.isEmpty, d.notRequestPrincipals.isEmpty, d.notNamespaces.isEmpty, d.notServiceAccounts.isEmpty,
              d.notTrustDomains.isEmpty, d.notIpBlocks.isEmpty, d.notRemoteIpBlocks.isEmpty else { return false }
        return values(d.principals, a.principals) && values(d.requestPrincipals, a.requestPrincipals)
            && values(d.namespaces, a.namespaces) && values(d.serviceAccounts, a.serviceAccounts)
            && values(d.trustDomains, a.trustDomains)
            && (d.ipBlocks.isEmpty || (!a.ipBlocks.isEmpty && a.ipBlocks.allSatisfy(d.ipBlocks.contains)))
            && (d.remoteIpBlocks.isEmpty || (!a.remoteIpBlocks.isEmpty && a.remoteIpBlocks.allSatisfy(d.remoteIpBlocks.contains)))
    }

    static func covers(_ d: Operation, _ a: Operation) -> Bool {
        guard d.notHosts.isEmpty, d.notPorts.isEmpty, d.notMethods.isEmpty, d.notPaths.isEmpty else { return false }
        return values(d.hosts, a.hosts) && values(d.methods, a.methods) && values(d.paths, a.paths)
            && (d.ports.isEmpty || (!a.ports.isEmpty && a.ports.allSatisfy(d.ports.contains)))
    }

    /// A DENY field (when set) matches every value the ALLOW field allows: the ALLOW field is set and each
    /// of its values is one of the DENY values, falls under a DENY `*`, or under a DENY prefix `x*`.
    static func values(_ deny: [String], _ allow: [String]) -> Bool {
        if deny.isEmpty { return true }
        guard !allow.isEmpty else { return false }
        return allow.allSatisfy { value in
            deny.contains { d in
                if d == value || d == "*" { return true }
                guard d.hasSuffix("*"), !d.hasPrefix("*"), !value.hasPrefix("*"), !value.contains("{") else { return false }
                return value.hasPrefix(d.dropLast())
            }
        }
    }
}
