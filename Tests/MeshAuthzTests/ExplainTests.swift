import Testing
import MeshAuthz

/// `ReferenceEvaluator.explain`: the trace tells the same story as the decision. On every fixture check and on
/// random sets (the differential generator): the explained decision is the reference's and the compiled
/// matcher's, every rule's `matched` is what its fields say under Istio's rule semantics (one `from` and one
/// `to` alternative entirely, every `when`), the listed policies are exactly those that apply. Then the walk
/// itself, table-driven: order, selection, fields, peer authentication, closest miss, text.
@Suite struct ExplainTests {
    /// A rule matches when one alternative of `from` holds entirely (or there is none), one of `to` likewise,
    /// and every `when` constraint: recomputed from the fields alone.
    static func fieldsSayMatched(_ rule: Explanation.RuleTrace) -> Bool {
        var groups: [String: Bool] = [:]
        var whenHolds = true
        for field in rule.fields {
            if field.field.hasPrefix("when[") {
                whenHolds = whenHolds && field.matched
                continue
            }
            let alternative = String(field.field.prefix { $0 != "." })
            groups[alternative] = (groups[alternative] ?? true) && field.matched
        }
        func part(_ prefix: String) -> Bool {
            let alternatives = groups.filter { $0.key.hasPrefix(prefix) }
            return alternatives.isEmpty || alternatives.values.contains(true)
        }
        return part("from[") && part("to[") && whenHolds
    }

    /// Every disagreement between an explanation and the decisions it explains.
    static func problems(_ set: PolicySet, _ request: CheckRequest) -> [String] {
        let reference = ReferenceEvaluator(set)
        let explanation = reference.explain(request)
        var out: [String] = []
        let compiled = CompiledPolicySet(set).evaluate(request)
        if explanation.decision != compiled { out.append("explained \(explanation.decision) but compiled decided \(compiled)") }
        if explanation.decision != reference.evaluate(request) { out.append("explained decision is not the reference's") }
        let applying = set.authorizationPolicies.filter { reference.applies($0, to: request.destination) }.map(\.id)
        if Set(explanation.policies.map(\.policy)) != Set(applying) || explanation.policies.count != applying.count {
            out.append("lists \(explanation.policies.map(\.policy)) but \(applying) apply")
        }
        if explanation.notApplicableCount != set.authorizationPolicies.count - applying.count {
            out.append("notApplicableCount \(explanation.notApplicableCount)")
        }
        for rule in explanation.policies.flatMap(\.rules) where fieldsSayMatched(rule) != rule.matched {
            out.append("\(rule.ruleId): matched \(rule.matched) but its fields say \(!rule.matched): \(rule.fields)")
        }
        if explanation.decision.allowed != (explanation.closestMiss == nil) && explanation.decision.stage != .notReady {
            out.append("closest miss \(explanation.closestMiss ?? "nil") for \(explanation.decision.allowed ? "an allow" : "a denial")")
        }
        return out
    }

    static let fixtures = (try? FixtureCase.all()) ?? []

    @Test(arguments: fixtures)
    func fixtureChecksAreExplainedConsistently(_ fixture: FixtureCase) throws {
        let set = try PolicyLoader.load(fixture.policyFiles).get()
        for (index, check) in fixture.checks.enumerated() {
            let problems = Self.problems(set, check.request)
            #expect(problems.isEmpty, "check \(index) (\(check.why)): \(problems)")
        }
    }

    @Test func fixturesArePresent() {
        #expect(Self.fixtures.count >= 60)
        #expect(Self.fixtures.map(\.checks.count).reduce(0, +) >= 1000)
    }

    @Test func randomSetsAreExplainedConsistently() {
        var rng = SplitMix64(seed: 0x6578_706C_6169_6E)
        var generator = PolicyGenerator()
        var failures = 0, explained = 0
        for _ in 0..<300 {
            let set = generator.policySet(&rng)
            for _ in 0..<10 {
                let request = generator.request(&rng, for: set)
                let problems = Self.problems(set, request)
                explained += 1
                if !problems.isEmpty {
                    failures += 1
                    if failures <= 3 { Issue.record("\(problems)\npolicies: \(set.authorizationPolicies)\nrequest: \(request)") }
                }
            }
        }
        #expect(failures == 0, "\(failures) of \(explained) explanations disagree")
    }

    // MARK: The walk

    static func explain(_ yaml: String, _ request: CheckRequest) throws -> Explanation {
        ReferenceEvaluator(try PolicyLoader.load([PolicyFile(name: "p.yaml", text: yaml)]).get()).explain(request)
    }

    static func policy(_ name: String, _ action: String = "ALLOW", namespace: String = "default", selector: String = "",
                       extra: String = "", rules: String) -> String {
        """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: \(name), namespace: \(namespace)\(extra)}
        spec:
          \(selector.isEmpty ? "" : "selector: {matchLabels: {\(selector)}}")
          action: \(action)
          \(action == "CUSTOM" ? "provider: {name: ext}" : "")
          rules: \(rules)
        ---

        """
    }

    static let batch = CheckRequest(
        source: .init(principal: "cluster.local/ns/default/sa/batch-sa", ip: IPAddress("10.0.0.5")),
        destination: .init(namespace: "default", labels: ["app": "api"], port: 8080),
        request: .init(method: "GET", path: "/api/users?x=1", host: "api.example.com", headers: ["x-tenant": "acme"]))

    @Test func policiesComeInEvaluationOrderWithHowTheyApply() throws {
        let yaml = Self.policy("z-allow", rules: "[{}]")
            + Self.policy("audit", "AUDIT", rules: "[{}]")
            + Self.policy("deny", "DENY", selector: "app: api", rules: "[{to: [{operation: {methods: [DELETE]}}]}]")
            + Self.policy("custom", "CUSTOM", rules: "[{to: [{operation: {paths: [/admin]}}]}]")
            + Self.policy("mesh", namespace: "istio-system", rules: "[{}]")
            + Self.policy("shadow", "DENY", extra: ", annotations: {istio.io/dry-run: \"true\"}", rules: "[{}]")
        let e = try Self.explain(yaml, Self.batch)
        // Within ALLOW, rule-id order: ns[default]-... before ns[istio-system]-...
        #expect(e.policies.map(\.policy.name) == ["custom", "deny", "shadow", "z-allow", "mesh", "audit"])
        #expect(e.policies.map(\.selectedBy) == [.namespaceWide, .selector, .namespaceWide, .namespaceWide, .rootNamespace, .namespaceWide])
        #expect(e.policies.map(\.dryRun) == [false, false, true, false, false, false])
        #expect(e.decision.stage == .allowPolicy)
        #expect(e.closestMiss == nil)
    }

    /// (rules, expected fields as "field matched actual").
    static let fieldCases: [(String, [String])] = [
        ("[{from: [{source: {principals: [cluster.local/ns/default/sa/frontend-sa]}}]}]",
         ["from[0].source.principals false cluster.local/ns/default/sa/batch-sa"]),
        ("[{from: [{source: {namespaces: [default], notPrincipals: [\"*/sa/batch-sa\"]}}]}]",
         ["from[0].source.notPrincipals false cluster.local/ns/default/sa/batch-sa", "from[0].source.namespaces true default"]),
        ("[{from: [{source: {serviceAccounts: [batch-sa], trustDomains: [cluster.local]}}]}]",
         ["from[0].source.serviceAccounts true default/batch-sa", "from[0].source.trustDomains true cluster.local"]),
        ("[{from: [{source: {ipBlocks: [10.0.0.0/8], requestPrincipals: [\"*\"]}}]}]",
         ["from[0].source.requestPrincipals false nil", "from[0].source.ipBlocks true 10.0.0.5"]),
        ("[{to: [{operation: {hosts: [API.example.com], ports: [\"8080\"], notMethods: [GET], paths: [\"/api/*\"]}}]}]",
         ["to[0].operation.hosts true api.example.com", "to[0].operation.ports true 8080",
          "to[0].operation.notMethods false GET", "to[0].operation.paths true /api/users"]),
        ("[{when: [{key: \"request.headers[X-Tenant]\", values: [acme]}, {key: source.ip, notValues: [10.0.0.0/8]}]}]",
         ["when[0] true acme", "when[1].notValues false 10.0.0.5"]),
        ("[{when: [{key: \"request.auth.claims[groups]\", values: [admin]}]}]", ["when[0] false nil"]),
    ]

    @Test(arguments: fieldCases)
    func fieldsShowValuesActualAndMatch(_ rules: String, _ expected: [String]) throws {
        let e = try Self.explain(Self.policy("p", rules: rules), Self.batch)
        let fields = try #require(e.policies.first?.rules.first?.fields)
        func show(_ value: JSONValue?) -> String {
            switch value {
            case .string(let text)?: return text
            case .number(let n)?: return String(Int(n))
            case nil: return "nil"
            default: return "\(value!)"
            }
        }
        #expect(fields.map { "\($0.field) \($0.matched) \(show($0.actual))" } == expected)
    }

    @Test func defaultDenyNamesTheClosestMiss() throws {
        let yaml = Self.policy("api", selector: "app: api", rules: """
            [{from: [{source: {principals: [cluster.local/ns/default/sa/frontend-sa]}}], to: [{operation: {methods: [POST]}}]},
             {from: [{source: {principals: [cluster.local/ns/default/sa/frontend-sa]}}]}]
            """)
        let e = try Self.explain(yaml, Self.batch)
        #expect(e.decision.stage == .defaultDeny)
        #expect(e.closestMiss == "rule ns[default]-policy[api]-rule[1] would allow if source.principals contained cluster.local/ns/default/sa/batch-sa")
        let text = e.text()
        #expect(text.hasPrefix("DENY (default-deny): "))
        #expect(text.contains("  ✘ ns[default]-policy[api]-rule[1]\n      ✘ from[0].source.principals: [cluster.local/ns/default/sa/frontend-sa], request: cluster.local/ns/default/sa/batch-sa\n"))
        #expect(text.hasSuffix("closest miss: \(e.closestMiss!)\n"))
    }

    @Test func plaintextUnderStrictFailsPeerAuthentication() throws {
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: default, namespace: istio-system}
            spec: {mtls: {mode: STRICT}}
            ---
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: api, namespace: default}
            spec: {selector: {matchLabels: {app: api}}, portLevelMtls: {"8080": {mode: PERMISSIVE}}}
            """
        var plaintext = Self.batch
        plaintext.source.mtls = false
        let onPort = try Self.explain(yaml, plaintext)
        #expect(onPort.peerAuthentication.level == .port && onPort.peerAuthentication.passed && onPort.peerAuthentication.mode == .permissive)
        plaintext.destination.port = 9090
        let mesh = try Self.explain(yaml, plaintext)
        #expect(mesh.peerAuthentication.level == .mesh && !mesh.peerAuthentication.passed)
        #expect(mesh.peerAuthentication.decidedBy == ResourceID(namespace: "istio-system", name: "default"))
        #expect(mesh.closestMiss == "the request would get past peer authentication over mTLS (PeerAuthentication istio-system/default sets STRICT)")
        let none = try Self.explain(Self.policy("p", rules: "[{}]"), plaintext)
        #expect(none.peerAuthentication.level == .default && none.peerAuthentication.mode == .permissive && none.peerAuthentication.passed)
    }

    @Test func denyRuleSaysWhatMatched() throws {
        let e = try Self.explain(Self.policy("no-get", "DENY", rules: "[{to: [{operation: {methods: [GET]}}]}]"), Self.batch)
        #expect(e.decision.stage == .denyPolicy)
        #expect(e.closestMiss == "rule ns[default]-policy[no-get]-rule[0] would not match if any of these changed: operation.methods is GET")
    }

    @Test func notApplicableSaysWhy() throws {
        let yaml = Self.policy("other-ns", namespace: "prod", rules: "[{}]")
            + Self.policy("typo", selector: "app: apii", rules: "[{}]")
            + Self.policy("gw", selector: "", rules: "[{}]\n  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: edge}]")
        let e = try Self.explain(yaml, Self.batch)
        #expect(e.policies.isEmpty && e.notApplicableCount == 3)
        let reasons = Dictionary(uniqueKeysWithValues: e.notApplicable.map { ($0.policy.name, "\($0.cause.rawValue): \($0.reason)") })
        #expect(reasons["other-ns"] == "namespace: namespace prod; the workload is in default")
        #expect(reasons["typo"] == "selector: selector labels not matched: app=apii (workload: api)")
        #expect(reasons["gw"] == "targetRefs: targetRefs (Gateway edge); the workload has no gateway.networking.k8s.io/gateway-name label (not a Gateway API gateway)")
    }

    @Test func notApplicableIsCapped() throws {
        let yaml = (0..<60).map { Self.policy("p\($0)", namespace: "prod", rules: "[{}]") }.joined()
        let e = try Self.explain(yaml, Self.batch)
        #expect(e.notApplicable.count == Explanation.notApplicableLimit && e.notApplicableCount == 60)
        #expect(e.text().contains("not applicable: 60 policies (10 not listed; --output json lists 50)"))
    }

    @Test func answerCarriesExplainOnlyWhenGiven() throws {
        let set = try PolicyLoader.load([PolicyFile(name: "p.yaml", text: Self.policy("p", rules: "[{}]"))]).get()
        let decision = ReferenceEvaluator(set).evaluate(Self.batch)
        let plain = String(decoding: CheckAnswer(decision: decision).jsonBytes, as: UTF8.self)
        #expect(!plain.contains("explain"))
        let explained = String(decoding: CheckAnswer(decision: decision, explanation: ReferenceEvaluator(set).explain(Self.batch)).jsonBytes,
                               as: UTF8.self)
        #expect(explained.contains(#","explain":{"decision":"ALLOW","stage":"allow-policy","ruleId":"ns[default]-policy[p]-rule[0]","peerAuthentication":{"#))
        #expect(explained.hasSuffix(#""notApplicable":[],"notApplicableCount":0,"closestMiss":null}}"#))
    }
}
