/// `explain`: the reference evaluator's steps for one request, written down. Each rule's fields are judged
/// with the same `ValueMatching` functions `matches` uses (conditions share `conditionMatcher` itself), and
/// each rule's `matched` is the evaluator's own `matches`, so the trace cannot tell a different story than
/// the decision; `ExplainTests` holds the fields' conjunction to it on every fixture check.
extension ReferenceEvaluator {
    public func explain(_ request: CheckRequest) -> Explanation {
        let decision = evaluate(request)
        var traces: [Explanation.PolicyTrace] = []
        var notApplicable: [Explanation.NotApplicable] = []
        var notApplicableCount = 0
        for policy in policySet.authorizationPolicies {
            if let how = selection(policy, request.destination) {
                traces.append(trace(policy, selectedBy: how, request))
            } else {
                notApplicableCount += 1
                if notApplicable.count < Explanation.notApplicableLimit {
                    let why = whyNotApplicable(policy, request.destination)
                    notApplicable.append(Explanation.NotApplicable(
                        policy: policy.id, action: policy.action, cause: why.cause, reason: why.reason))
                }
            }
        }
        // Evaluation order: CUSTOM, DENY, ALLOW, then AUDIT (reported only); Envoy's rule-id order within each.
        func rank(_ action: Action) -> Int {
            switch action {
            case .custom: return 0
            case .deny: return 1
            case .allow: return 2
            case .audit: return 3
            }
        }
        traces.sort { a, b in
            rank(a.action) != rank(b.action) ? rank(a.action) < rank(b.action)
                : RuleID(policy: a.policy, index: 0) < RuleID(policy: b.policy, index: 0)
        }
        let peer = explainPeerAuthentication(request)
        return Explanation(decision: decision, peerAuthentication: peer, policies: traces, notApplicable: notApplicable,
                           notApplicableCount: notApplicableCount,
                           closestMiss: ClosestMiss.describe(decision: decision, peer: peer, policies: traces))
    }

    // MARK: Peer authentication

    func explainPeerAuthentication(_ request: CheckRequest) -> Explanation.PeerAuthenticationStep {
        let resolution = PeerAuthenticationResolver(policySet).mode(for: request.destination)
        let mtls = request.source.isMTLS
        var level = Explanation.PeerAuthenticationStep.Level.default
        if let id = resolution.decidedBy, let peer = policySet.peerAuthentications.first(where: { $0.id == id }) {
            if !peer.isNamespaceWide {
                let portMode = request.destination.port.flatMap { peer.portLevel[$0] }
                level = portMode != nil && portMode != .unset ? .port : .workload
            } else {
                level = request.destination.namespace.map(id.namespace.bytesEqual) == true ? .namespace : .mesh
            }
        }
        let by = resolution.decidedBy.map { "PeerAuthentication \($0), \(level.rawValue) level" }
            ?? "no PeerAuthentication sets a mode: Istio's default"
        let connection = mtls ? "the connection is mTLS" : "the connection is plaintext"
        let passed = !(resolution.mode == .strict && !mtls)
        let verdict: String
        switch resolution.mode {
        case .strict: verdict = passed ? "accepted" : "refused before any AuthorizationPolicy is evaluated"
        case .permissive, .unset: verdict = "accepted (PERMISSIVE takes plaintext and mTLS)"
        case .disable: verdict = "accepted (DISABLE)"
        }
        let mode = resolution.mode == .unset ? MTLSMode.permissive : resolution.mode
        return Explanation.PeerAuthenticationStep(
            mode: mode, decidedBy: resolution.decidedBy, level: level, mtls: mtls, passed: passed,
            reason: "mTLS mode \(mode.rawValue) (\(by)); \(connection): \(verdict)")
    }

    // MARK: Which policies apply, and why not

    /// How `policy` applies to `workload`; nil exactly when `applies` is false.
    func selection(_ policy: AuthorizationPolicy, _ workload: CheckRequest.Workload) -> Explanation.SelectedBy? {
        guard applies(policy, to: workload) else { return nil }
        if !policy.targetRefs.isEmpty { return .targetRefs }
        let selects = !(policy.selector?.isEmpty ?? true)
        if workload.namespace?.bytesEqual(policy.id.namespace) ?? false { return selects ? .selector : .namespaceWide }
        return selects ? .rootNamespaceSelector : .rootNamespace
    }

    func whyNotApplicable(_ policy: AuthorizationPolicy,
                          _ workload: CheckRequest.Workload) -> (cause: Explanation.NotApplicable.Cause, reason: String) {
        let inNamespace = workload.namespace?.bytesEqual(policy.id.namespace) ?? false
        let root = policy.id.namespace == policySet.options.rootNamespace
        guard inNamespace || root else {
            guard let namespace = workload.namespace else {
                return (.namespace, "namespace \(policy.id.namespace); the request names no destination namespace")
            }
            return (.namespace, "namespace \(policy.id.namespace); the workload is in \(namespace)")
        }
        if !policy.targetRefs.isEmpty {
            let names = policy.targetRefs.map { "\($0.kind) \($0.name)" }.joined(separator: ", ")
            guard inNamespace else { return (.targetRefs, "targetRefs (\(names)) apply only in the policy's own namespace \(policy.id.namespace)") }
            guard let gateway = workload.labels[gatewayNameLabel] else {
                return (.targetRefs, "targetRefs (\(names)); the workload has no \(gatewayNameLabel) label (not a Gateway API gateway)")
            }
            return (.targetRefs, "targetRefs (\(names)) do not name the workload's gateway \(gateway)")
        }
        let missing = (policy.selector ?? [:]).sorted { $0.key < $1.key }.compactMap { label -> String? in
            guard let actual = workload.labels[label.key] else { return "\(label.key)=\(label.value) (absent)" }
            return actual.bytesEqual(label.value) ? nil : "\(label.key)=\(label.value) (workload: \(actual))"
        }
        return (.selector, "selector labels not matched: " + missing.joined(separator: ", "))
    }

    // MARK: Rules and fields

    func trace(_ policy: AuthorizationPolicy, selectedBy: Explanation.SelectedBy,
               _ request: CheckRequest) -> Explanation.PolicyTrace {
        let rules = policy.rules.indices.map { index in
            let rule = policy.rules[index]
            var fields: [Explanation.FieldTrace] = []
            for (position, source) in rule.from.enumerated() {
                fields += sourceFields(source, of: policy, request, prefix: "from[\(position)].source.")
            }
            for (position, operation) in rule.to.enumerated() {
                fields += operationFields(operation, request, prefix: "to[\(position)].operation.")
            }
            for (position, condition) in rule.when.enumerated() {
                fields += conditionFields(condition, of: policy, request, position: position)
            }
            return Explanation.RuleTrace(ruleId: policy.ruleID(index), matched: matches(rule, of: policy, request),
                                         fields: fields)
        }
        return Explanation.PolicyTrace(policy: policy.id, action: policy.action, dryRun: policy.dryRun,
                                       selectedBy: selectedBy, rules: rules, file: policy.location)
    }

    /// The constraints `values` (one must match) and `negated` (none may), when present.
    private func pair<T>(_ prefix: String, _ name: String, _ notName: String, _ values: [T], _ negated: [T],
                         actual: JSONValue?, text: (T) -> String, _ match: (T) -> Bool) -> [Explanation.FieldTrace] {
        var out: [Explanation.FieldTrace] = []
        if !values.isEmpty {
            out.append(Explanation.FieldTrace(field: prefix + name, key: nil, negated: false,
                                              matched: values.contains(where: match), values: values.map(text), actual: actual))
        }
        if !negated.isEmpty {
            out.append(Explanation.FieldTrace(field: prefix + notName, key: nil, negated: true,
                                              matched: !negated.contains(where: match), values: negated.map(text), actual: actual))
        }
        return out
    }

    func sourceFields(_ source: Source, of policy: AuthorizationPolicy, _ request: CheckRequest,
                      prefix: String) -> [Explanation.FieldTrace] {
        let peer = request.source
        let principal = peer.authenticatedPrincipal
        let jwt = JWTIdentity(request)
        let parts = PrincipalParts(principal)
        let shown = principal.map { JSONValue.string(parts.withoutScheme ?? $0) }
        let requestPrincipal = jwt.issuer.map { issuer in JSONValue.string(jwt.subject.map { issuer + "/" + $0 } ?? issuer) }
        let same: (String) -> String = { $0 }
        return pair(prefix, "principals", "notPrincipals", source.principals, source.notPrincipals, actual: shown, text: same) {
            ValueMatching.istioString($0, principal, prefix: "spiffe://")
        }
            + pair(prefix, "requestPrincipals", "notRequestPrincipals", source.requestPrincipals, source.notRequestPrincipals,
                   actual: requestPrincipal, text: same) {
                ValueMatching.requestPrincipal($0, issuer: jwt.issuer, subject: jwt.subject)
            }
            + pair(prefix, "namespaces", "notNamespaces", source.namespaces, source.notNamespaces,
                   actual: parts.namespace.map(JSONValue.string) ?? shown, text: same) { ValueMatching.namespace($0, principal) }
            + pair(prefix, "serviceAccounts", "notServiceAccounts", source.serviceAccounts, source.notServiceAccounts,
                   actual: parts.serviceAccount.map(JSONValue.string) ?? shown, text: same) {
                ValueMatching.serviceAccount($0, principal, policyNamespace: policy.id.namespace)
            }
            + pair(prefix, "trustDomains", "notTrustDomains", source.trustDomains, source.notTrustDomains,
                   actual: parts.trustDomain.map(JSONValue.string) ?? shown, text: same) { ValueMatching.trustDomain($0, principal) }
            + pair(prefix, "ipBlocks", "notIpBlocks", source.ipBlocks, source.notIpBlocks,
                   actual: peer.ip.map { .string($0.description) }, text: \.description) { cidr in peer.ip.map(cidr.contains) ?? false }
            + pair(prefix, "remoteIpBlocks", "notRemoteIpBlocks", source.remoteIpBlocks, source.notRemoteIpBlocks,
                   actual: peer.effectiveRemoteIP.map { .string($0.description) }, text: \.description) { cidr in
                peer.effectiveRemoteIP.map(cidr.contains) ?? false
            }
    }

    func operationFields(_ operation: Operation, _ request: CheckRequest, prefix: String) -> [Explanation.FieldTrace] {
        let http = request.request
        let port = request.destination.port
        let same: (String) -> String = { $0 }
        return pair(prefix, "hosts", "notHosts", operation.hosts, operation.notHosts,
                    actual: http.host.map(JSONValue.string), text: same) { ValueMatching.host($0, http.host) }
            + pair(prefix, "ports", "notPorts", operation.ports, operation.notPorts,
                   actual: port.map { .number(Double($0)) }, text: { String($0) }) { $0 == port }
            + pair(prefix, "methods", "notMethods", operation.methods, operation.notMethods,
                   actual: http.method.map(JSONValue.string), text: same) { ValueMatching.header($0, http.method) }
            // Paths match without the query: the actual shown is what was compared.
            + pair(prefix, "paths", "notPaths", operation.paths, operation.notPaths,
                   actual: http.path.map { .string(ValueMatching.pathWithoutQuery($0)) }, text: same) {
                ValueMatching.path($0, http.path)
            }
    }

    func conditionFields(_ condition: Condition, of policy: AuthorizationPolicy, _ request: CheckRequest,
                         position: Int) -> [Explanation.FieldTrace] {
        let match = conditionMatcher(condition.key, of: policy, request)
        let actual = conditionActual(condition.key, request)
        let key = condition.key.description
        var out: [Explanation.FieldTrace] = []
        if !condition.values.isEmpty {
            out.append(Explanation.FieldTrace(field: "when[\(position)]", key: key, negated: false,
                                              matched: condition.values.contains(where: match), values: condition.values,
                                              actual: actual))
        }
        if !condition.notValues.isEmpty {
            out.append(Explanation.FieldTrace(field: "when[\(position)].notValues", key: key, negated: true,
                                              matched: !condition.notValues.contains(where: match),
                                              values: condition.notValues, actual: actual))
        }
        return out
    }

    /// The request's value of a condition's attribute, as the matcher reads it.
    func conditionActual(_ key: ConditionKey, _ request: CheckRequest) -> JSONValue? {
        let principal = request.source.authenticatedPrincipal
        let parts = PrincipalParts(principal)
        let jwt = JWTIdentity(request)
        switch key {
        case .requestHeader(let name): return request.request.header(named: name).map(JSONValue.string)
        case .sourceIP: return request.source.ip.map { .string($0.description) }
        case .remoteIP: return request.source.effectiveRemoteIP.map { .string($0.description) }
        case .destinationIP: return request.destination.ip.map { .string($0.description) }
        case .sourceNamespace: return (parts.namespace ?? parts.withoutScheme).map(JSONValue.string)
        case .sourcePrincipal: return (parts.withoutScheme ?? principal).map(JSONValue.string)
        case .sourceServiceAccount: return (parts.serviceAccount ?? parts.withoutScheme).map(JSONValue.string)
        case .sourceTrustDomain: return (parts.trustDomain ?? parts.withoutScheme).map(JSONValue.string)
        case .requestAuthPrincipal:
            return jwt.issuer.map { issuer in .string(jwt.subject.map { issuer + "/" + $0 } ?? issuer) }
        case .requestAuthAudiences: return jwt.claim(["aud"])
        case .requestAuthPresenter: return jwt.claim(["azp"])
        case .requestAuthClaims(let path): return jwt.claim(path)
        case .destinationPort: return request.destination.port.map { .number(Double($0)) }
        case .connectionSNI: return request.connection.sni.map(JSONValue.string)
        case .experimentalEnvoyFilter: return nil
        }
    }
}

/// A SPIFFE principal's parts, for showing the value a `namespaces` / `serviceAccounts` / `trustDomains`
/// constraint was compared with (the matchers themselves read the whole principal).
struct PrincipalParts {
    var withoutScheme: String?
    var trustDomain: String?
    var namespace: String?
    var serviceAccount: String?

    init(_ principal: String?) {
        guard let principal else { return }
        let rest = principal.bytesHavePrefix("spiffe://") ? String(principal.dropFirst("spiffe://".count)) : principal
        withoutScheme = rest
        let segments = rest.bytesSplit(UInt8(ascii: "/"))
        guard segments.count >= 2 else { return }
        trustDomain = segments[0]
        if let ns = segments.firstIndex(of: "ns"), ns + 1 < segments.count {
            namespace = segments[ns + 1]
            if let sa = segments[(ns + 2)...].firstIndex(of: "sa"), sa + 1 < segments.count {
                serviceAccount = segments[ns + 1] + "/" + segments[sa + 1]
            }
        }
    }
}
