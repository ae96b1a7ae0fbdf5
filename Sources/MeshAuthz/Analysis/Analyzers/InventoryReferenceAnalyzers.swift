/// MA0204: a selector or targetRef that selects no workload of the manifests: the policy applies to
/// nothing (a label typo, or a workload renamed), and whatever it was meant to allow or deny is not.
struct SelectsNothingAnalyzer: Analyzer {
    var code: FindingCode { .selectsNothing }
    var needsInventory: Bool { true }

    func analyze(_ input: AnalysisInput) -> [Finding] {
        var findings: [Finding] = []
        for policy in input.set.authorizationPolicies {
            if !policy.targetRefs.isEmpty {
                // Only Service refs can be checked: Gateways and ServiceEntries are not read.
                for ref in policy.targetRefs where ref.kind == "Service"
                    && !input.inventory.services.contains(where: { $0.id == ResourceID(namespace: policy.id.namespace, name: ref.name) }) {
                    findings.append(Finding(code, at: policy.location, resource: policy.resourceName,
                                            "targetRef Service \(ref.name) is not a Service of namespace \(policy.id.namespace) in the manifests: the policy applies to nothing there",
                                            fix: "name an existing Service"))
                }
                continue
            }
            guard let selector = policy.selector, !selector.isEmpty, input.workloads(of: policy).isEmpty else { continue }
            findings.append(Finding(code, at: policy.location, resource: policy.resourceName,
                                    "spec.selector selects no workload of the manifests (\(policy.targetDescription)): the policy applies to nothing",
                                    fix: "use the labels of the pod template (spec.template.metadata.labels) of the workload meant"))
        }
        for peer in input.set.peerAuthentications {
            guard let selector = peer.selector, !selector.isEmpty else { continue }
            let namespaces = peer.id.namespace == input.options.rootNamespace ? nil : peer.id.namespace
            let selected = input.inventory.workloads.contains { workload in
                (namespaces == nil || workload.id.namespace == namespaces) && Inventory.matches(selector, workload.labels)
            }
            if !selected {
                findings.append(Finding(code, at: peer.location, resource: peer.resourceName,
                                        "spec.selector selects no workload of the manifests in \(peer.id.namespace): the mTLS setting applies to nothing",
                                        fix: "use the labels of the pod template of the workload meant"))
            }
        }
        return findings
    }
}

/// MA0205: a principal (`TD/ns/NS/sa/SA`) or service account naming an account that no manifest
/// declares in that namespace: no caller has that identity, so the rule allows (or denies) no one. The
/// root namespace (Istio's own gateways, rarely in the repo) is not judged.
struct UnknownServiceAccountAnalyzer: Analyzer {
    var code: FindingCode { .unknownServiceAccount }
    var needsInventory: Bool { true }

    func analyze(_ input: AnalysisInput) -> [Finding] {
        let prefix = input.options.trustDomain + "/ns/"
        return input.set.authorizationPolicies.flatMap { policy in
            policy.sourceValues(["principals", "notPrincipals", "serviceAccounts", "notServiceAccounts"]).compactMap { item -> Finding? in
                guard !item.value.contains("*") else { return nil }
                let account: (namespace: String, name: String)
                if item.field.hasSuffix("rincipals") {
                    guard item.value.hasPrefix(prefix) else { return nil }  // MA0206's
                    let parts = item.value.dropFirst(prefix.count).split(separator: "/", omittingEmptySubsequences: false)
                    guard parts.count == 3, parts[1] == "sa" else { return nil }
                    account = (String(parts[0]), String(parts[2]))
                } else {
                    let parts = item.value.split(separator: "/")
                    account = parts.count == 2 ? (String(parts[0]), String(parts[1])) : (policy.id.namespace, item.value)
                }
                guard account.namespace != input.options.rootNamespace,
                      !input.index.declaresServiceAccount(namespace: account.namespace, name: account.name) else { return nil }
                return Finding(code, at: policy.location(of: item.path), resource: policy.resourceName,
                               "\(item.path) names service account \(account.name) in namespace \(account.namespace), which no manifest declares: no caller has that identity",
                               fix: "use the serviceAccountName of the calling workload, or add its ServiceAccount")
            }
        }
    }
}

/// MA0207: a source namespace that no manifest declares (no Namespace, no resource in it): no caller
/// comes from it. The root namespace is not judged.
struct UnknownNamespaceAnalyzer: Analyzer {
    var code: FindingCode { .unknownNamespace }
    var needsInventory: Bool { true }

    func analyze(_ input: AnalysisInput) -> [Finding] {
        input.set.authorizationPolicies.flatMap { policy in
            policy.sourceValues(["namespaces", "notNamespaces"]).compactMap { item -> Finding? in
                guard !item.value.contains("*"), item.value != input.options.rootNamespace,
                      !input.index.declaresNamespace(item.value) else { return nil }
                return Finding(code, at: policy.location(of: item.path), resource: policy.resourceName,
                               "\(item.path) names namespace \(item.value), which no manifest declares: no caller comes from it",
                               fix: "check the namespace's spelling, or add its manifests to the paths")
            }
        }
    }
}
