import Testing
@testable import MeshAuthz

/// Bad policy files are refused with file, line and field; good ones decode to the model.
@Suite struct PolicyLoaderTests {
    static let header = """
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: p, namespace: default}

    """

    struct BadCase: CustomStringConvertible, Sendable {
        let name: String
        let yaml: String
        let code: PolicyError.Code
        let line: Int
        let field: String
        var description: String { name }
    }

    static let badCases: [BadCase] = [
        BadCase(name: "unknown spec field", yaml: header + "spec:\n  rulez: []\n", code: .unknownField, line: 5, field: "spec.rulez"),
        BadCase(name: "unknown source field", yaml: header + "spec:\n  rules:\n  - from:\n    - source:\n        principal: [a]\n",
                code: .unknownField, line: 8, field: "spec.rules[0].from[0].source.principal"),
        BadCase(name: "bad CIDR", yaml: header + "spec:\n  rules:\n  - from:\n    - source:\n        ipBlocks: [10.0.0.0/33]\n",
                code: .invalidValue, line: 8, field: "spec.rules[0].from[0].source.ipBlocks[0]"),
        BadCase(name: "star inside a template segment", yaml: header + "spec:\n  rules:\n  - to:\n    - operation:\n        paths: [\"/foo/{*}.txt\"]\n",
                code: .invalidValue, line: 8, field: "spec.rules[0].to[0].operation.paths[0]"),
        BadCase(name: "{**} not last", yaml: header + "spec:\n  rules:\n  - to:\n    - operation:\n        paths: [\"/{**}/a/{*}\"]\n",
                code: .invalidValue, line: 8, field: "spec.rules[0].to[0].operation.paths[0]"),
        BadCase(name: "unknown condition key", yaml: header + "spec:\n  rules:\n  - when:\n    - key: request.colour\n      values: [red]\n",
                code: .unknownConditionKey, line: 7, field: "spec.rules[0].when[0].key"),
        BadCase(name: "removed condition key", yaml: header + "spec:\n  rules:\n  - when:\n    - key: destination.namespace\n      values: [x]\n",
                code: .unknownConditionKey, line: 7, field: "spec.rules[0].when[0].key"),
        BadCase(name: "condition without values", yaml: header + "spec:\n  rules:\n  - when:\n    - key: source.ip\n",
                code: .missingField, line: 7, field: "spec.rules[0].when[0].values"),
        BadCase(name: "bad port", yaml: header + "spec:\n  rules:\n  - to:\n    - operation:\n        ports: [\"70000\"]\n",
                code: .invalidValue, line: 8, field: "spec.rules[0].to[0].operation.ports[0]"),
        BadCase(name: "empty from", yaml: header + "spec:\n  rules:\n  - from: []\n", code: .invalidValue, line: 6, field: "spec.rules[0].from"),
        BadCase(name: "empty string value", yaml: header + "spec:\n  rules:\n  - to:\n    - operation:\n        methods: [\"\"]\n",
                code: .invalidValue, line: 8, field: "spec.rules[0].to[0].operation.methods[0]"),
        BadCase(name: "null rule", yaml: header + "spec:\n  rules:\n  - null\n", code: .invalidValue, line: 6, field: "spec.rules[0]"),
        BadCase(name: "unknown action", yaml: header + "spec:\n  action: PERMIT\n", code: .invalidValue, line: 5, field: "spec.action"),
        BadCase(name: "DENY without rules", yaml: header + "spec:\n  action: DENY\n", code: .missingField, line: 5, field: "spec.rules"),
        BadCase(name: "CUSTOM without provider", yaml: header + "spec:\n  action: CUSTOM\n  rules: [{}]\n", code: .missingField, line: 5, field: "spec.provider.name"),
        BadCase(name: "provider on ALLOW", yaml: header + "spec:\n  provider: {name: x}\n  rules: [{}]\n", code: .invalidValue, line: 5, field: "spec.provider"),
        BadCase(name: "serviceAccounts with principals", yaml: header + "spec:\n  rules:\n  - from:\n    - source:\n        serviceAccounts: [a]\n        principals: [b]\n",
                code: .invalidValue, line: 8, field: "spec.rules[0].from[0].source.serviceAccounts"),
        BadCase(name: "selector and targetRefs", yaml: header + "spec:\n  selector: {matchLabels: {app: a}}\n  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: g}]\n",
                code: .invalidValue, line: 5, field: "spec"),
        BadCase(name: "wildcard label", yaml: header + "spec:\n  selector: {matchLabels: {app: \"a*\"}}\n", code: .invalidValue, line: 5, field: "spec.selector.matchLabels.app"),
        BadCase(name: "syntax error", yaml: header + "spec:\n  rules: [\n", code: .syntax, line: 6, field: ""),
        BadCase(name: "truncated second document", yaml: header + "spec: {}\n---\nkind: AuthorizationPolicy\n  bad: : indent\n", code: .syntax, line: 7, field: ""),
        BadCase(name: "unsupported apiVersion", yaml: "apiVersion: security.istio.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: p}\n",
                code: .invalidValue, line: 1, field: "apiVersion"),
        BadCase(name: "missing name", yaml: "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {namespace: x}\n",
                code: .missingField, line: 3, field: "metadata.name"),
        BadCase(name: "bad mTLS mode", yaml: "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\nspec:\n  mtls: {mode: STRICTER}\n",
                code: .invalidValue, line: 5, field: "spec.mtls.mode"),
        BadCase(name: "duplicate resource", yaml: header + "spec: {}\n---\n" + header + "spec: {}\n", code: .duplicateResource, line: 8, field: "metadata.name"),
    ]

    @Test(arguments: badCases)
    func badPolicyIsRefusedWithLocation(_ bad: BadCase) throws {
        let result = PolicyLoader.load([PolicyFile(name: "bad.yaml", text: bad.yaml)])
        guard case .failure(let failure) = result else {
            Issue.record("\(bad.name): expected the set to be refused")
            return
        }
        let error = try #require(failure.errors.first)
        #expect(error.code == bad.code, "\(error)")
        #expect(error.location.file == "bad.yaml")
        #expect(error.location.line == bad.line, "\(error)")
        #expect(error.field == bad.field, "\(error)")
    }

    @Test func oneBadFileRefusesTheWholeSet() {
        let good = PolicyFile(name: "good.yaml", text: Self.header + "spec: {}\n")
        let bad = PolicyFile(name: "bad.yaml", text: Self.header.replacingOccurrences(of: "name: p", with: "name: q") + "spec:\n  bogus: 1\n")
        guard case .failure(let failure) = PolicyLoader.load([good, bad]) else {
            Issue.record("expected failure")
            return
        }
        #expect(failure.errors.map(\.location.file) == ["bad.yaml"])
        #expect(failure.description.contains("bad.yaml:5:3: spec.bogus: unknown field"))
    }

    @Test func decodesEveryField() throws {
        let yaml = """
        apiVersion: security.istio.io/v1beta1
        kind: AuthorizationPolicy
        metadata:
          name: full
          namespace: foo
          annotations: {istio.io/dry-run: "True"}
        spec:
          selector: {matchLabels: {app: httpbin}}
          action: DENY
          rules:
          - from:
            - source: {principals: [a], notNamespaces: [b], ipBlocks: [1.2.3.4, "10.0.0.0/8"], remoteIpBlocks: ["::1"]}
            to:
            - operation: {methods: [GET], paths: ["/x/{*}"], ports: ["80"], hosts: ["*.example.com"]}
            when:
            - key: request.auth.claims[groups][admin]
              values: [yes]
            - key: request.headers[X-Tenant]
              notValues: [evil]
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: dr, namespace: foo}
        spec: {host: x}
        ---
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: pa, namespace: foo}
        spec:
          selector: {matchLabels: {app: httpbin}}
          mtls: {mode: STRICT}
          portLevelMtls: {"8080": {mode: DISABLE}}
        """
        let set = try PolicyLoader.load([PolicyFile(name: "f.yaml", text: yaml)]).get()
        let policy = try #require(set.authorizationPolicies.first)
        #expect(policy.id == ResourceID(namespace: "foo", name: "full"))
        #expect(policy.dryRun)
        #expect(policy.action == .deny)
        #expect(policy.selector == ["app": "httpbin"])
        let rule = try #require(policy.rules.first)
        #expect(rule.from.first?.ipBlocks.map(\.text) == ["1.2.3.4", "10.0.0.0/8"])
        #expect(rule.to.first?.ports == [80])
        #expect(rule.when.map(\.key) == [.requestAuthClaims(["groups", "admin"]), .requestHeader("x-tenant")])
        #expect(set.otherResources.map(\.kind) == ["DestinationRule"])
        #expect(set.peerAuthentications.first?.portLevel == [8080: .disable])
        #expect(policy.location.line == 1)
    }

    @Test(arguments: [("true", true), ("1", true), ("T", true), ("false", false), ("yes", false), ("", false)])
    func dryRunAnnotationParsesAsGoBool(_ value: String, _ expected: Bool) throws {
        let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  annotations: {istio.io/dry-run: \"\(value)\"}\nspec: {}\n"
        let set = try PolicyLoader.load([PolicyFile(name: "f.yaml", text: yaml)]).get()
        #expect(set.authorizationPolicies.first?.dryRun == expected)
    }
}
