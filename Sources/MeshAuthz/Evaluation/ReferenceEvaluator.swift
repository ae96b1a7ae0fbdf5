/// The oracle: Istio's authorization semantics read directly off the reference, one step after
/// another, with no indexing or precomputation. The compiled matcher must agree with it on every
/// input; when they differ, this one is the one to trust (after Envoy).
public struct ReferenceEvaluator: Sendable {
    public let policySet: PolicySet

    public init(_ policySet: PolicySet) { self.policySet = policySet }

    public func evaluate(_ request: CheckRequest) -> Decision {
        let mode = PeerAuthenticationResolver(policySet).mode(for: request.destination)
        // Step 1: a STRICT workload refuses plaintext before any authorization runs.
        if mode.mode == .strict && !request.source.isMTLS {
            return Decision(allowed: false, stage: .peerAuthentication,
                            reason: DecisionReasons.strictPlaintext(decidedBy: mode.decidedBy), mtlsMode: mode.mode)
        }
        // Step 2: the applicable policies, dry-run ones kept apart.
        let applicable = policySet.authorizationPolicies.filter { applies($0, to: request.destination) }
        let enforced = applicable.filter { !$0.dryRun }
        let reports = Reports(
            dryRun: applicable.filter(\.dryRun).flatMap { policy in
                matchingRules(policy, request).map { Decision.Report(action: policy.action, rule: $0) }
            },
            audit: enforced.filter { $0.action == .audit }.flatMap { policy in
                matchingRules(policy, request).map { Decision.Report(action: .audit, rule: $0) }
            })
        func decide(_ allowed: Bool, _ stage: Decision.Stage, _ reason: String, _ rule: RuleID? = nil) -> Decision {
            Decision(allowed: allowed, stage: stage, reason: reason, rule: rule, mtlsMode: mode.mode,
                     dryRun: reports.dryRun, audit: reports.audit)
        }
        // Step 3: CUSTOM. meshauthz cannot ask the provider, so a matching CUSTOM rule fails closed.
        let custom = enforced.filter { $0.action == .custom }
        if let rule = firstMatchingRule(custom, request) {
            let provider = custom.first { $0.id == rule.policy }?.provider ?? "?"
            return decide(false, .custom, DecisionReasons.custom(rule: rule, provider: provider), rule)
        }
        // Step 4: DENY.
        if let rule = firstMatchingRule(enforced.filter { $0.action == .deny }, request) {
            return decide(false, .denyPolicy, DecisionReasons.deny(rule: rule), rule)
        }
        // Step 5: ALLOW, with default deny only once an ALLOW policy applies.
        let allow = enforced.filter { $0.action == .allow }
        if allow.isEmpty {
            return decide(true, .noAllowPolicy, DecisionReasons.noAllowPolicy)
        }
        if let rule = firstMatchingRule(allow, request) {
            return decide(true, .allowPolicy, DecisionReasons.allow(rule: rule), rule)
        }
        return decide(false, .defaultDeny, DecisionReasons.defaultDeny(allowPolicies: allow.map(\.id)))
    }

    private struct Reports {
        var dryRun: [Decision.Report]
        var audit: [Decision.Report]
    }

    // MARK: Which policies apply (§2)

    public func applies(_ policy: AuthorizationPolicy, to workload: CheckRequest.Workload) -> Bool {
        let inWorkloadNamespace = workload.namespace?.bytesEqual(policy.id.namespace) ?? false
        guard inWorkloadNamespace || policy.id.namespace == policySet.options.rootNamespace else { return false }
        if !policy.targetRefs.isEmpty {
            // Only Gateway-API gateways honour targetRefs, and only from their own namespace.
            guard inWorkloadNamespace, let gateway = workload.labels[gatewayNameLabel] else { return false }
            return policy.targetRefs.contains {
                $0.group == "gateway.networking.k8s.io" && $0.kind == "Gateway" && $0.name.bytesEqual(gateway)
            }
        }
        guard let selector = policy.selector else { return true }
        return selector.allSatisfy { workload.labels[$0.key]?.bytesEqual($0.value) ?? false }
    }

    // MARK: Matching a policy (§4)

    /// Envoy reports the first matching policy in the order of its key, the rule id string.
    private func firstMatchingRule(_ policies: [AuthorizationPolicy], _ request: CheckRequest) -> RuleID? {
        policies.flatMap { matchingRules($0, request) }.min()
    }

    private func matchingRules(_ policy: AuthorizationPolicy, _ request: CheckRequest) -> [RuleID] {
        policy.rules.indices.filter { matches(policy.rules[$0], of: policy, request) }.map(policy.ruleID)
    }

    func matches(_ rule: Rule, of policy: AuthorizationPolicy, _ request: CheckRequest) -> Bool {
        (rule.from.isEmpty || rule.from.contains { matches($0, of: policy, request) })
            && (rule.to.isEmpty || rule.to.contains { matches($0, request) })
            && rule.when.allSatisfy { matches($0, of: policy, request) }
    }

    /// Every non-empty field must hold; a positive field needs a match, a `not` field needs none.
    private func check<T>(_ values: [T], _ negated: [T], _ match: (T) -> Bool) -> Bool {
        (values.isEmpty || values.contains(where: match)) && !negated.contains(where: match)
    }

    func matches(_ source: Source, of policy: AuthorizationPolicy, _ request: CheckRequest) -> Bool {
        let peer = request.source
        let principal = peer.authenticatedPrincipal
        let jwt = JWTIdentity(request)
        return check(source.principals, source.notPrincipals) { ValueMatching.istioString($0, principal, prefix: "spiffe://") }
            && check(source.namespaces, source.notNamespaces) { ValueMatching.namespace($0, principal) }
            && check(source.serviceAccounts, source.notServiceAccounts) {
                ValueMatching.serviceAccount($0, principal, policyNamespace: policy.id.namespace)
            }
            && check(source.trustDomains, source.notTrustDomains) { ValueMatching.trustDomain($0, principal) }
            && check(source.requestPrincipals, source.notRequestPrincipals) {
                ValueMatching.requestPrincipal($0, issuer: jwt.issuer, subject: jwt.subject)
            }
            && check(source.ipBlocks, source.notIpBlocks) { cidr in peer.ip.map(cidr.contains) ?? false }
            && check(source.remoteIpBlocks, source.notRemoteIpBlocks) { cidr in peer.effectiveRemoteIP.map(cidr.contains) ?? false }
    }

    func matches(_ operation: Operation, _ request: CheckRequest) -> Bool {
        let http = request.request
        return check(operation.hosts, operation.notHosts) { ValueMatching.host($0, http.host) }
            && check(operation.ports, operation.notPorts) { $0 == request.destination.port }
            && check(operation.methods, operation.notMethods) { ValueMatching.header($0, http.method) }
            && check(operation.paths, operation.notPaths) { ValueMatching.path($0, http.path) }
    }

    func matches(_ condition: Condition, of policy: AuthorizationPolicy, _ request: CheckRequest) -> Bool {
        check(condition.values, condition.notValues, conditionMatcher(condition.key, of: policy, request))
    }

    /// Whether one value of a `when` condition matches the request's attribute (shared with `explain`).
    func conditionMatcher(_ key: ConditionKey, of policy: AuthorizationPolicy, _ request: CheckRequest) -> (String) -> Bool {
        let principal = request.source.authenticatedPrincipal
        let jwt = JWTIdentity(request)
        let match: (String) -> Bool
        switch key {
        case .requestHeader(let name):
            let value = request.request.header(named: name)
            match = { ValueMatching.header($0, value) }
        case .sourceIP:
            match = { value in request.source.ip.map { CIDR(value)!.contains($0) } ?? false }
        case .remoteIP:
            match = { value in request.source.effectiveRemoteIP.map { CIDR(value)!.contains($0) } ?? false }
        case .destinationIP:
            match = { value in request.destination.ip.map { CIDR(value)!.contains($0) } ?? false }
        case .sourceNamespace:
            match = { ValueMatching.namespace($0, principal) }
        case .sourcePrincipal:
            match = { ValueMatching.istioString($0, principal, prefix: "spiffe://") }
        case .sourceServiceAccount:
            match = { ValueMatching.serviceAccount($0, principal, policyNamespace: policy.id.namespace) }
        case .sourceTrustDomain:
            match = { ValueMatching.trustDomain($0, principal) }
        case .requestAuthPrincipal:
            match = { ValueMatching.requestPrincipal($0, issuer: jwt.issuer, subject: jwt.subject) }
        case .requestAuthAudiences:
            match = { ValueMatching.claim($0, jwt.claim(["aud"])) }
        case .requestAuthPresenter:
            match = { ValueMatching.claim($0, jwt.claim(["azp"])) }
        case .requestAuthClaims(let path):
            match = { ValueMatching.claim($0, jwt.claim(path)) }
        case .destinationPort:
            match = { Int($0) == request.destination.port }
        case .connectionSNI:
            match = { ValueMatching.istioString($0, request.connection.sni) }
        case .experimentalEnvoyFilter:
            // Envoy filter metadata is not part of a check request: it is always absent.
            match = { _ in false }
        }
        return match
    }
}

/// The validated JWT of a request, as Envoy's jwt_authn filter would publish it.
struct JWTIdentity {
    let issuer: String?
    let subject: String?
    let claims: [String: JSONValue]?

    init(_ request: CheckRequest) {
        var claims = request.request.claims
        var issuer: String?
        var subject: String?
        if let principal = request.source.requestPrincipal {
            // `iss/sub`, split at the last `/` since issuers are often URLs.
            if let split = principal.bytesSplitAtLast(UInt8(ascii: "/")) {
                (issuer, subject) = (split.before, split.after)
            } else {
                issuer = principal
            }
        } else if let claims {
            issuer = claims["iss"]?.stringValue
            subject = claims["sub"]?.stringValue
        }
        if claims == nil, issuer != nil {
            var synthesized: [String: JSONValue] = [:]
            synthesized["iss"] = issuer.map(JSONValue.string)
            synthesized["sub"] = subject.map(JSONValue.string)
            claims = synthesized
        }
        self.issuer = issuer
        self.subject = subject
        self.claims = claims
    }

    /// A nested claim. Envoy's jwt_authn splits the string claims `scope` and `permission` on spaces.
    func claim(_ path: [String]) -> JSONValue? {
        guard var value: JSONValue = claims.map(JSONValue.object) else { return nil }
        for key in path {
            guard let next = value[key] else { return nil }
            value = next
        }
        if path.count == 1, path[0] == "scope" || path[0] == "permission", case .string(let text) = value {
            return .array(text.bytesSplit(UInt8(ascii: " ")).filter { !$0.isEmpty }.map(JSONValue.string))
        }
        return value
    }
}
