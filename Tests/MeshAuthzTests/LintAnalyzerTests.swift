import Testing
@testable import MeshAuthz

/// One positive and one negative case per analyzer: the positive input yields exactly the findings of
/// that code listed (and at that line), the negative one none of that code. Both read the same small
/// inventory when the analyzer needs one.
@Suite struct LintAnalyzerTests {
    /// Namespace shop: web (app=web, web-sa, port 8080 "http", Service web port 80 -> http) and db.
    static let manifests = """
    apiVersion: v1
    kind: Namespace
    metadata: {name: shop}
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web, namespace: shop}
    spec:
      template:
        metadata: {labels: {app: web}}
        spec:
          serviceAccountName: web-sa
          containers: [{name: web, ports: [{name: http, containerPort: 8080}]}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: shop}
    spec:
      selector: {app: web}
      ports: [{port: 80, targetPort: http}]
    ---
    apiVersion: apps/v1
    kind: StatefulSet
    metadata: {name: db, namespace: shop}
    spec:
      template:
        metadata: {labels: {app: db}}
        spec: {serviceAccountName: db-sa}

    """

    static func policy(_ name: String, _ spec: String, namespace: String = "shop", kind: String = "AuthorizationPolicy") -> String {
        "---\napiVersion: security.istio.io/v1\nkind: \(kind)\nmetadata: {name: \(name), namespace: \(namespace)}\nspec:\n"
            + spec.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n") + "\n"
    }

    static func allow(_ name: String, _ selector: String, _ rules: String) -> String {
        policy(name, "selector: {matchLabels: {\(selector)}}\nrules:\n" + rules)
    }

    static let webFromDB = "- from: [{source: {principals: [cluster.local/ns/shop/sa/db-sa]}}]"

    static func destinationRule(_ host: String, _ mode: String) -> String {
        "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: dr, namespace: shop}\n"
            + "spec:\n  host: \(host)\n  trafficPolicy:\n    tls: {mode: \(mode)}\n"
    }

    static let strictShop = policy("default", "mtls: {mode: STRICT}", kind: "PeerAuthentication")
    static let disabledShop = policy("default", "mtls: {mode: DISABLE}", kind: "PeerAuthentication")

    struct Case: CustomStringConvertible, Sendable {
        let code: FindingCode
        let positive: String
        let negative: String
        /// How many findings of the code the positive input gives.
        var count = 1
        var withManifests = true
        var description: String { "\(code.rawValue) \(code)" }
    }

    static let cases: [Case] = [
        Case(code: .syntax, positive: policy("p", "rules: [\n"), negative: policy("p", "rules: []")),
        Case(code: .unknownField, positive: allow("p", "app: web", "- from: [{source: {principles: [a]}}]"),
             negative: allow("p", "app: web", webFromDB)),
        Case(code: .invalidField, positive: policy("p", "action: ALOW"), negative: policy("p", "action: ALLOW\nrules: [{}]\nselector: {matchLabels: {app: web}}")),
        Case(code: .misspelledKind, positive: policy("p", "{}", kind: "AuthorisationPolicy"), negative: policy("p", "{}")),
        Case(code: .duplicateResource, positive: policy("p", "{}") + policy("p", "{}"), negative: policy("p", "{}") + policy("q", "{}")),
        Case(code: .manifestError, positive: destinationRule("web", "ISTIO_MUTAL"), negative: destinationRule("web", "ISTIO_MUTUAL")),
        Case(code: .noManifests, positive: policy("p", "{}"), negative: policy("p", "{}"), withManifests: false),
        Case(code: .meshNotStrict, positive: policy("default", "mtls: {mode: PERMISSIVE}", namespace: "istio-system", kind: "PeerAuthentication"),
             negative: policy("default", "mtls: {mode: STRICT}", namespace: "istio-system", kind: "PeerAuthentication")),
        Case(code: .plaintextToStrict, positive: strictShop + destinationRule("web.shop.svc.cluster.local", "DISABLE"),
             negative: strictShop + destinationRule("web.shop.svc.cluster.local", "ISTIO_MUTUAL")),
        Case(code: .mutualToDisabled, positive: disabledShop + destinationRule("web", "ISTIO_MUTUAL"),
             negative: disabledShop + destinationRule("web", "DISABLE")),
        Case(code: .unknownHost, positive: destinationRule("wbe.shop.svc.cluster.local", "ISTIO_MUTUAL"),
             negative: destinationRule("web.shop.svc.cluster.local", "ISTIO_MUTUAL") + destinationRule("api.stripe.com", "SIMPLE").replacingOccurrences(of: "name: dr", with: "name: dr2")),
        Case(code: .allowNothingOnWorkload, positive: policy("p", "selector: {matchLabels: {app: web}}"),
             negative: allow("p", "app: web", webFromDB)),
        Case(code: .allowNothingNamespace, positive: policy("p", "{}"), negative: allow("p", "app: web", webFromDB)),
        Case(code: .allowAnyRequest, positive: allow("p", "app: web", "- {}"), negative: allow("p", "app: web", webFromDB)),
        Case(code: .selectsNothing, positive: allow("p", "app: wbe", webFromDB) + policy("m", "selector: {matchLabels: {app: nope}}\nmtls: {mode: STRICT}", kind: "PeerAuthentication"),
             negative: allow("p", "app: web", webFromDB), count: 2),
        Case(code: .unknownServiceAccount, positive: allow("p", "app: web", "- from: [{source: {principals: [cluster.local/ns/shop/sa/dbsa]}}]\n- from: [{source: {serviceAccounts: [shop/ghost]}}]"),
             negative: allow("p", "app: web", webFromDB + "\n- from: [{source: {principals: [cluster.local/ns/istio-system/sa/ingress]}}]"), count: 2),
        Case(code: .principalForm, positive: allow("p", "app: web", "- from: [{source: {principals: [spiffe://cluster.local/ns/shop/sa/db-sa, ns/shop/sa/db-sa, other.domain/ns/shop/sa/db-sa]}}]"),
             negative: allow("p", "app: web", webFromDB + "\n- from: [{source: {principals: [\"*\", \"cluster.local/ns/shop/*\"]}}]"), count: 3),
        Case(code: .unknownNamespace, positive: allow("p", "app: web", "- from: [{source: {namespaces: [shpo]}}]"),
             negative: allow("p", "app: web", "- from: [{source: {namespaces: [shop, istio-system, \"*\"]}}]")),
        Case(code: .allowOverriddenByDeny,
             positive: allow("p", "app: web", "- from: [{source: {principals: [cluster.local/ns/shop/sa/db-sa]}}]\n  to: [{operation: {paths: [/admin/users]}}]")
                + policy("d", "action: DENY\nrules:\n- to: [{operation: {paths: [/admin/*]}}]"),
             negative: allow("p", "app: web", "- from: [{source: {principals: [cluster.local/ns/shop/sa/db-sa]}}]\n  to: [{operation: {paths: [/admin/users]}}]")
                + policy("d", "action: DENY\nrules:\n- to: [{operation: {paths: [/admin/*], notMethods: [GET]}}]")
                + policy("d2", "action: DENY\nselector: {matchLabels: {app: db}}\nrules: [{}]")),
        Case(code: .pathNeverMatches, positive: allow("p", "app: web", "- to: [{operation: {paths: [api/users, /api/*/users]}}]"),
             negative: allow("p", "app: web", "- to: [{operation: {paths: [/api/*, \"*.png\", /api/{*}/users, \"*\"]}}]"), count: 2),
        Case(code: .lowercaseMethod, positive: allow("p", "app: web", "- to: [{operation: {methods: [get]}}]"),
             negative: allow("p", "app: web", "- to: [{operation: {methods: [GET, \"*\"]}}]")),
        Case(code: .customPolicy, positive: policy("p", "action: CUSTOM\nprovider: {name: opa}\nrules: [{to: [{operation: {paths: [/x]}}]}]"),
             negative: allow("p", "app: web", webFromDB)),
        Case(code: .experimentalKey, positive: allow("p", "app: web", "- when: [{key: \"experimental.envoy.filters.network.mysql_proxy[db.table]\", values: [x]}]"),
             negative: allow("p", "app: web", "- when: [{key: request.headers[x-tenant], values: [x]}]")),
        Case(code: .deniedByAllowNothing, positive: policy("nothing", "{}") + allow("p", "app: web", webFromDB),
             negative: policy("nothing", "{}") + allow("p", "app: web", webFromDB) + allow("q", "app: db", "- from: [{source: {principals: [cluster.local/ns/shop/sa/web-sa]}}]")),
        Case(code: .uncoveredWorkload, positive: policy("nothing", "{}", namespace: "other") + allow("p", "app: web", webFromDB),
             negative: policy("nothing", "{}") + allow("p", "app: web", webFromDB)),
        Case(code: .undiscoverableKeys,
             positive: policy("jwt", "jwtRules:\n- issuer: testing@secure.istio.io\n- issuer: http://auth.example.com", kind: "RequestAuthentication")
                + allow("p", "app: web", webFromDB),
             negative: policy("jwt", "jwtRules:\n- issuer: https://auth.example.com\n- issuer: testing@secure.istio.io\n  jwksUri: https://x.test/k\n- issuer: http://127.0.0.1:8080", kind: "RequestAuthentication")
                + allow("p", "app: web", webFromDB), count: 2),
    ]

    static func findings(_ yaml: String, manifests: Bool) -> [Finding] {
        var files = [PolicyFile(name: "policies.yaml", text: yaml)]
        if manifests { files.append(PolicyFile(name: "k8s.yaml", text: Self.manifests)) }
        return Linter.run(AnalysisInput.read(files))
    }

    @Test(arguments: cases)
    func positive(_ c: Case) {
        let found = Self.findings(c.positive, manifests: c.withManifests).filter { $0.code == c.code }
        #expect(found.count == c.count, "\(found.map { "\($0.location) \($0.message)" })")
        #expect(found.allSatisfy { $0.location.file == "policies.yaml" || $0.location.file == "k8s.yaml" })
    }

    @Test(arguments: cases)
    func negative(_ c: Case) {
        let found = Self.findings(c.negative, manifests: c.code == .noManifests ? true : c.withManifests).filter { $0.code == c.code }
        #expect(found.isEmpty, "\(found.map { "\($0.location) \($0.message)" })")
    }

    /// A finding about a value or a rule points at it (istioctl's field map), not at the policy's first line.
    @Test func findingsInsideRulesPointAtTheValueOrTheRule() {
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: p, namespace: shop}
            spec:
              selector: {matchLabels: {app: web}}
              rules:
              - from: [{source: {principals: [cluster.local/ns/shop/sa/db-sa]}}]
              - to:
                - operation:
                    methods: [GET, get]
              - {}

            """
        let found = Self.findings(yaml, manifests: true)
        let method = found.first { $0.code == .lowercaseMethod }
        #expect(method?.location.line == 10 && method?.location.column == 24, "\(String(describing: method?.location))")
        let any = found.first { $0.code == .allowAnyRequest }
        #expect(any?.location.line == 11, "\(String(describing: any?.location))")
        // The policy itself is still where its resource starts.
        let policy = AnalysisInput.read([PolicyFile(name: "policies.yaml", text: yaml)]).set.authorizationPolicies[0]
        #expect(policy.location.line == 1)
        #expect(policy.location(of: "spec.rules[1].to[0].operation.methods[1]").line == 10)
        #expect(policy.location(of: "spec.rules[1].to[0].operation.paths[0]").line == 9)  // not written: its operation
        #expect(policy.location(of: "spec.rules[7]") == policy.location)  // no such rule: the policy
    }

    @Test func everyCodeHasACase() {
        #expect(Set(Self.cases.map(\.code)) == Set(FindingCode.allCases))
        #expect(Set(Linter.analyzers.map(\.code)).union([.unknownField, .invalidField, .misspelledKind, .duplicateResource, .noManifests])
                == Set(FindingCode.allCases))
    }

    @Test func didYouMean() {
        let found = Self.findings(Self.cases[1].positive, manifests: false).first { $0.code == .unknownField }
        #expect(found?.message.contains("did you mean \"principals\"") == true, "\(String(describing: found))")
        #expect(found?.fix == "write \"principals\"")
        let selector = Self.findings(Self.policy("p", "selector: {matchLabel: {app: web}}"), manifests: false).first { $0.code == .unknownField }
        #expect(selector?.message.contains("did you mean \"matchLabels\"") == true)
        let mode = Self.findings(Self.policy("p", "mtls: {mode: STRICTT}", kind: "PeerAuthentication"), manifests: false).first { $0.code == .invalidField }
        #expect(mode?.message.contains("did you mean STRICT?") == true, "\(String(describing: mode))")
    }

    @Test func findingsCarryLineAndResource() throws {
        let found = try #require(Self.findings(Self.cases[13].positive, manifests: true).first { $0.code == .allowAnyRequest })
        // The rule `{}` itself (its policy starts on line 2).
        #expect(found.location == SourceLocation(file: "policies.yaml", line: 8, column: 5))
        #expect(found.resource == "AuthorizationPolicy shop/p")
        #expect(found.fix != nil)
    }
}
