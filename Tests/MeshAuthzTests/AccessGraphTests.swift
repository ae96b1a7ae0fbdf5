import Testing
@testable import MeshAuthz

/// The graph and reachability on a small mesh: web (shop) called by api (shop) on GET /items/*, admin
/// denied by a DENY rule, db called by nobody (allow-nothing), and legacy (namespace old) without policy.
@Suite struct AccessGraphTests {
    static let files = [
        PolicyFile(name: "policies.yaml", text: """
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: shop}
        spec: {mtls: {mode: STRICT}}
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: allow-nothing, namespace: shop}
        spec: {}
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: web, namespace: shop}
        spec:
          selector: {matchLabels: {app: web}}
          rules:
          - from: [{source: {principals: [cluster.local/ns/shop/sa/api-sa]}}]
            to: [{operation: {methods: [GET], paths: ["/items/*"]}}]
          - from: [{source: {principals: [cluster.local/ns/shop/sa/admin-sa]}}]
            to: [{operation: {paths: ["/admin/*"]}}]
          - from: [{source: {namespaces: [partner]}}]
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: no-admin, namespace: shop}
        spec:
          selector: {matchLabels: {app: web}}
          action: DENY
          rules: [{to: [{operation: {paths: ["/admin/*"]}}]}]
        """),
        PolicyFile(name: "k8s.yaml", text: """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web, namespace: shop}
        spec: {template: {metadata: {labels: {app: web}}, spec: {serviceAccountName: web-sa}}}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: api, namespace: shop}
        spec: {template: {metadata: {labels: {app: api}}, spec: {serviceAccountName: api-sa}}}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: legacy, namespace: old}
        spec: {template: {metadata: {labels: {app: legacy}}}}
        """),
    ]

    static let input = AnalysisInput.read(files)
    static let decide: @Sendable (CheckRequest) -> Decision = { ReferenceEvaluator(input.set).evaluate($0) }

    @Test func edges() throws {
        #expect(Self.input.loadErrors.isEmpty)
        let graph = AccessGraphBuilder(Self.input, decide: Self.decide).build()
        let edges = Dictionary(graph.edges.map { ("\($0.from) -> \($0.to)", $0) }, uniquingKeysWith: { a, _ in a })
        let apiEdge = edges["workload:shop/api -> workload:shop/web"]
        let api = try #require(apiEdge)
        #expect(api.methods == ["GET"] && api.paths == ["/items/*"] && api.label == "GET /items/*")
        #expect(api.rules == ["ns[shop]-policy[web]-rule[0]"])
        #expect(api.confirmed && api.witness?.request.path == "/items/meshauthz-witness")
        #expect(edges.keys.allSatisfy { !$0.contains("admin-sa") }, "the DENY rule always denies what rule 1 allows: no edge")
        let partnerEdge = edges["namespace:partner -> workload:shop/web"]
        let partner = try #require(partnerEdge, "a namespace no manifest declares is its own node")
        #expect(partner.confirmed && partner.label == "*")
        let legacy = edges["any-plaintext -> workload:old/legacy"]
        #expect(legacy?.rules == [AccessGraph.noAllowPolicy], "no policy, not STRICT: anyone")
        #expect(legacy?.confirmed == true)
        #expect(!graph.edges.contains { $0.to == "workload:shop/api" }, "api is under allow-nothing")
        #expect(graph.edges.allSatisfy { $0.confirmed })
        #expect(Set(graph.nodes.map(\.kind)) == [.workload, .namespace, .anyPlaintext])
    }

    @Test func reachability() throws {
        let reach = Reachability(Self.input, decide: Self.decide)
        guard case .reachable(let witnesses) = try reach.answer(.init(fromNamespace: "shop", fromServiceAccount: "api-sa", toNamespace: "shop", toWorkload: "web")) else {
            Issue.record("api-sa reaches web")
            return
        }
        #expect(witnesses.first?.ruleID == "ns[shop]-policy[web]-rule[0]")
        #expect(witnesses.allSatisfy { Self.decide($0.request).allowed }, "every witness is allowed by the engine")
        guard case .unreachable = try reach.answer(.init(fromNamespace: "shop", fromServiceAccount: "web-sa", toNamespace: "shop")) else {
            Issue.record("web-sa reaches nothing in shop")
            return
        }
        // admin-sa's rule accepts its identity, but the DENY rule denies every request built from it.
        guard case .undetermined(let reasons) = try reach.answer(.init(fromNamespace: "shop", fromServiceAccount: "admin-sa", toNamespace: "shop", toWorkload: "web")) else {
            Issue.record("admin-sa -> web is not proven either way")
            return
        }
        #expect(reasons.first?.contains("ns[shop]-policy[web]-rule[1]") == true)
        guard case .reachable = try reach.answer(.init(fromNamespace: "partner", toNamespace: "shop")) else {
            Issue.record("any account of partner reaches web")
            return
        }
        #expect(throws: Reachability.QueryError.self) { try reach.answer(.init(fromNamespace: "shop", toNamespace: "shop", toWorkload: "nope")) }
    }

    @Test func renderingsEscape() {
        let node = AccessGraph.Node(id: "principal:a\"b", kind: .principal, label: "a\"b</script>", namespace: nil, principal: nil, labels: nil)
        let graph = AccessGraph(nodes: [node], edges: [])
        #expect(GraphRendering.dot(graph).contains(#""principal:a\"b" [label="a\"b</script>""#))
        #expect(GraphRendering.mermaid(graph).contains("n0([\"a#quot;b</script>\"])"))
        let page = GraphPage.html(graph)
        #expect(!page.contains("a\\\"b</script>") && page.contains("<\\/script>"), "no value can close the script element")
        #expect(!page.contains("http://") || page.contains("xmlns=\"http://www.w3.org/2000/svg\""), "no external resource")
    }
}
