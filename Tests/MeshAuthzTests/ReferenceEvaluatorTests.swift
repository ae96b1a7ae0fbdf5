import Testing
import MeshAuthz

/// What a decision reports beyond allow/deny: the stage, the rule (Envoy's order), dry-run and audit.
@Suite struct ReferenceEvaluatorTests {
    static func evaluate(_ yaml: String, _ request: CheckRequest) throws -> Decision {
        let set = try PolicyLoader.load([PolicyFile(name: "p.yaml", text: yaml)]).get()
        return ReferenceEvaluator(set).evaluate(request)
    }

    static let api = CheckRequest(
        source: .init(principal: "cluster.local/ns/default/sa/frontend-sa", ip: IPAddress("10.0.0.5")),
        destination: .init(namespace: "default", labels: ["app": "api"], port: 8080),
        request: .init(method: "GET", path: "/api/users?x=1", host: "api.example.com"))

    static func policy(_ name: String, _ action: String = "ALLOW", namespace: String = "default", dryRun: Bool = false, rules: String) -> String {
        """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: \(name)
          namespace: \(namespace)
          annotations: {istio.io/dry-run: "\(dryRun)"}
        spec:
          action: \(action)
          rules: \(rules)
        ---

        """
    }

    @Test func reportedRuleIsTheLeastRuleIDAsEnvoyOrdersThem() throws {
        // Rules 2 and 10 both match; Envoy's map orders "rule[10]" before "rule[2]".
        let rules = "[" + (0...10).map { $0 == 2 || $0 == 10 ? "{}" : "{to: [{operation: {methods: [PUT]}}]}" }.joined(separator: ", ") + "]"
        let decision = try Self.evaluate(Self.policy("p", rules: rules), Self.api)
        #expect(decision.allowed)
        #expect(decision.stage == .allowPolicy)
        #expect(decision.rule?.description == "ns[default]-policy[p]-rule[10]")
    }

    @Test func denyBeatsAllowAndNamesItsRule() throws {
        let yaml = Self.policy("allow-all", rules: "[{}]") + Self.policy("no-get", "DENY", rules: "[{to: [{operation: {methods: [GET]}}]}]")
        let decision = try Self.evaluate(yaml, Self.api)
        #expect(!decision.allowed)
        #expect(decision.stage == .denyPolicy)
        #expect(decision.rule?.description == "ns[default]-policy[no-get]-rule[0]")
    }

    @Test func dryRunIsReportedNotEnforced() throws {
        let yaml = Self.policy("shadow-deny", "DENY", dryRun: true, rules: "[{}]") + Self.policy("shadow-allow", dryRun: true, rules: "[{to: [{operation: {methods: [PUT]}}]}]")
        let decision = try Self.evaluate(yaml, Self.api)
        #expect(decision.allowed)
        #expect(decision.stage == .noAllowPolicy, "a dry-run ALLOW policy does not create default deny")
        #expect(decision.dryRun == [Decision.Report(action: .deny, rule: RuleID(policy: ResourceID(namespace: "default", name: "shadow-deny"), index: 0))])
    }

    @Test func auditMatchesAreReportedAndChangeNothing() throws {
        let decision = try Self.evaluate(Self.policy("audit", "AUDIT", rules: "[{}, {to: [{operation: {paths: [\"/api/*\"]}}]}]"), Self.api)
        #expect(decision.allowed)
        #expect(decision.audit.map(\.rule.index) == [0, 1])
    }

    @Test func matchingCustomRuleFailsClosed() throws {
        let yaml = Self.policy("ext", "CUSTOM", rules: "[{to: [{operation: {paths: [\"/api/*\"]}}]}]").replacingOccurrences(of: "  action: CUSTOM", with: "  action: CUSTOM\n  provider: {name: opa}")
        let decision = try Self.evaluate(yaml, Self.api)
        #expect(!decision.allowed)
        #expect(decision.stage == .custom)
        #expect(decision.reason.contains("opa"))
    }

    @Test func strictPeerAuthenticationRefusesPlaintextBeforeAuthorization() throws {
        let yaml = Self.policy("allow-all", rules: "[{}]") + """
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        """
        var plaintext = Self.api
        plaintext.source = .init(ip: IPAddress("10.0.0.5"), mtls: false)
        let decision = try Self.evaluate(yaml, plaintext)
        #expect(!decision.allowed)
        #expect(decision.stage == .peerAuthentication)
        #expect(decision.mtlsMode == .strict)
        #expect(try Self.evaluate(yaml, Self.api).allowed)
    }

    @Test func plaintextRequestCarriesNoPrincipalEvenIfItNamesOne() throws {
        var request = Self.api
        request.source.mtls = false
        let decision = try Self.evaluate(Self.policy("p", rules: "[{from: [{source: {principals: [\"*\"]}}]}]"), request)
        #expect(!decision.allowed)
        #expect(decision.stage == .defaultDeny)
    }

    @Test func policiesOfOtherNamespacesNeverApply() throws {
        let decision = try Self.evaluate(Self.policy("p", namespace: "other", rules: "[]"), Self.api)
        #expect(decision.allowed)
        let mesh = try Self.evaluate(Self.policy("p", namespace: "istio-system", rules: "[]"), Self.api)
        #expect(!mesh.allowed, "an allow-nothing policy in the root namespace is mesh-wide")
    }
}
