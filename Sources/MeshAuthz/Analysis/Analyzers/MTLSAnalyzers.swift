/// MA0101: mTLS relaxed for a whole namespace or the mesh. Plaintext callers are then judged by the
/// AuthorizationPolicies alone, and a policy that names principals or namespaces cannot tell them apart
/// from an unauthenticated caller that matches its other fields.
struct MeshNotStrictAnalyzer: Analyzer {
    var code: FindingCode { .meshNotStrict }

    func analyze(_ input: AnalysisInput) -> [Finding] {
        input.set.peerAuthentications.compactMap { peer in
            guard peer.isNamespaceWide else { return nil }
            let scope = peer.id.namespace == input.options.rootNamespace ? "mesh-wide" : "namespace-wide for \(peer.id.namespace)"
            switch peer.mode {
            case .permissive, .disable:
                return Finding(code, at: peer.location, resource: peer.resourceName,
                               "mTLS is \(peer.mode.rawValue) \(scope): plaintext requests reach the workloads and are judged by AuthorizationPolicies alone",
                               fix: "set spec.mtls.mode: STRICT (use a workload-level PeerAuthentication for the few ports that must accept plaintext)")
            case .strict, .unset:
                return nil
            }
        }
    }
}

/// The mTLS mode the PeerAuthentications give the workloads behind a DestinationRule host, per TLS
/// setting. With manifests: the Services the host names and their workloads (a port-level setting
/// resolved through the Service's targetPort). Without: the host's namespace, when no workload-level
/// PeerAuthentication there could change it.
struct DestinationRuleTargets {
    let input: AnalysisInput

    /// The modes of the workloads a setting reaches, with one name for the message.
    func modes(_ rule: DestinationRule, _ setting: DestinationRule.TLSSetting) -> [(name: String, mode: MTLSMode)] {
        let resolver = PeerAuthenticationResolver(input.set)
        if input.inventory.hasWorkloads {
            var result: [(String, MTLSMode)] = []
            for service in input.index.services(forHost: rule.host, from: rule.id.namespace) {
                for workload in input.index.workloads(of: service) {
                    var destination = workload.asDestination
                    destination.port = setting.port.flatMap { targetPort(service, workload, $0) }
                    result.append(("\(workload.kind) \(workload.id)", resolver.mode(for: destination).mode))
                }
            }
            return result
        }
        guard let namespace = hostNamespace(rule) else { return [] }
        let workloadLevel = input.set.peerAuthentications.contains { $0.id.namespace == namespace && !$0.isNamespaceWide }
        if workloadLevel { return [] }  // some workload of the namespace may differ: not certain
        return [("the workloads of namespace \(namespace)", resolver.mode(for: CheckRequest.Workload(namespace: namespace)).mode)]
    }

    /// The container port a Service port leads to on a workload.
    private func targetPort(_ service: Inventory.Service, _ workload: Inventory.Workload, _ port: Int) -> Int? {
        guard let servicePort = service.ports.first(where: { $0.port == port }) else { return port }
        switch servicePort.targetPort {
        case .number(let number): return number
        case .name(let name): return workload.ports.first { $0.name == name }?.port
        }
    }

    /// `name` (the rule's namespace), `name.ns`, `name.ns.svc[.domain]`; nil for a wildcard or an external host.
    private func hostNamespace(_ rule: DestinationRule) -> String? {
        let parts = rule.host.split(separator: ".")
        if rule.host.hasPrefix("*") { return nil }
        if parts.count == 1 { return rule.id.namespace }
        if parts.count == 2 || (parts.count >= 3 && parts[2] == "svc") { return String(parts[1]) }
        return nil
    }
}

/// MA0102: a client told to connect in plaintext (DISABLE) or with its own TLS (SIMPLE) to workloads
/// whose PeerAuthentication is STRICT: the server side refuses what is not Istio mTLS, so every request
/// fails with a connection reset (a 503 at the client).
struct PlaintextToStrictAnalyzer: Analyzer {
    var code: FindingCode { .plaintextToStrict }

    func analyze(_ input: AnalysisInput) -> [Finding] {
        let targets = DestinationRuleTargets(input: input)
        return input.inventory.destinationRules.flatMap { rule in
            rule.tls.compactMap { setting -> Finding? in
                switch setting.mode {
                case .disable, .simple:
                    guard let strict = targets.modes(rule, setting).first(where: { $0.mode == .strict }) else { return nil }
                    let port = setting.port.map { " port \($0)" } ?? ""
                    return Finding(code, at: setting.location, resource: rule.resourceName,
                                   "\(setting.field) is \(setting.mode.rawValue) towards \(rule.host)\(port), but \(strict.name) requires mTLS (STRICT): its connections will be reset (503)",
                                   fix: "use tls.mode: ISTIO_MUTUAL, or remove the tls setting (Istio then uses mTLS automatically)")
                case .mutual, .istioMutual:
                    return nil
                }
            }
        }
    }
}

/// MA0103: Istio mTLS sent to workloads whose PeerAuthentication is DISABLE: their sidecars expect
/// plaintext and the TLS handshake fails.
struct MutualToDisabledAnalyzer: Analyzer {
    var code: FindingCode { .mutualToDisabled }

    func analyze(_ input: AnalysisInput) -> [Finding] {
        let targets = DestinationRuleTargets(input: input)
        return input.inventory.destinationRules.flatMap { rule in
            rule.tls.compactMap { setting -> Finding? in
                switch setting.mode {
                case .istioMutual:
                    guard let disabled = targets.modes(rule, setting).first(where: { $0.mode == .disable }) else { return nil }
                    return Finding(code, at: setting.location, resource: rule.resourceName,
                                   "\(setting.field) is ISTIO_MUTUAL towards \(rule.host), but \(disabled.name) has mTLS DISABLE: the handshake fails (503)",
                                   fix: "make the workloads' PeerAuthentication STRICT or PERMISSIVE, or set tls.mode: DISABLE for them")
                case .disable, .simple, .mutual:
                    return nil
                }
            }
        }
    }
}

/// MA0104: a DestinationRule host of the cluster (a short name, `name.ns`, `*.svc[.domain]`) that no
/// Service of the manifests serves: the rule applies to nothing (a typo, or a Service renamed).
/// External hosts (ServiceEntries) are not judged.
struct UnknownHostAnalyzer: Analyzer {
    var code: FindingCode { .unknownHost }
    var needsInventory: Bool { true }

    func analyze(_ input: AnalysisInput) -> [Finding] {
        input.inventory.destinationRules.compactMap { rule in
            let host = rule.host.lowercased()
            let parts = host.split(separator: ".")
            let clusterHost = parts.count == 1 || host.hasSuffix(".svc") || host.contains(".svc.")
                || (parts.count == 2 && input.index.declaresNamespace(String(parts[1])))
            guard clusterHost, !host.hasPrefix("*"),
                  input.index.services(forHost: host, from: rule.id.namespace).isEmpty else { return nil }
            return Finding(code, at: rule.hostLocation, resource: rule.resourceName,
                           "host \(rule.host) matches no Service of the manifests: the rule applies to no traffic",
                           fix: "name an existing Service (name.namespace.svc.cluster.local)")
        }
    }
}
