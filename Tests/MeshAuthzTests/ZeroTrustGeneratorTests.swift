import Testing
@testable import MeshAuthz

/// `generate`: a service list becomes a set the loader accepts and that decides as the list says.
@Suite struct ZeroTrustGeneratorTests {
    static let list = """
    services:
    - name: web
      namespace: shop
      serviceAccount: web-sa
      port: 8080
      allowedCallers:
      - cluster.local/ns/istio-system/sa/ingress
      - {service: batch, methods: [GET], paths: ["/report/*", "*.csv"]}
    - name: batch
      namespace: jobs
      serviceAccount: batch-sa
      port: 9000
    """

    static func generated() throws -> PolicySet {
        let list = try ServiceList.read(PolicyFile(name: "services.yaml", text: list)).get()
        let files = try ZeroTrustGenerator.generate(list).get()
        #expect(files.map(\.name) == ["00-mesh.yaml", "shop.yaml", "jobs.yaml"])
        return try PolicyLoader.load(files.map { PolicyFile(name: $0.name, text: $0.text) }).get()
    }

    @Test func writesTheZeroTrustSet() throws {
        let set = try Self.generated()
        #expect(set.peerAuthentications.map(\.id.description) == ["istio-system/default"])
        #expect(set.peerAuthentications.first?.mode == .strict)
        #expect(set.authorizationPolicies.map(\.id.description) == ["jobs/allow-nothing", "shop/allow-nothing", "shop/web"],
                "batch has no callers: no ALLOW policy, its namespace's allow-nothing denies all")
        let web = try #require(set.authorizationPolicies.last)
        #expect(web.selector == ["app": "web"])
        #expect(web.rules.count == 2, "callers without methods/paths share a rule; the other has its own")
        #expect(web.rules[0].from.first?.principals == ["cluster.local/ns/istio-system/sa/ingress"])
        #expect(web.rules[1].from.first?.principals == ["cluster.local/ns/jobs/sa/batch-sa"])
        #expect(web.rules[1].to.first?.paths == ["/report/*", "*.csv"])
        #expect(set.otherResources.map(\.kind) == ["DestinationRule", "DestinationRule"])
    }

    @Test func decidesAsTheListSays() throws {
        let evaluator = ReferenceEvaluator(try Self.generated())
        func decide(_ principal: String, _ namespace: String, _ app: String, _ method: String, _ path: String) -> Bool {
            evaluator.evaluate(CheckRequest(source: .init(principal: principal, mtls: true),
                                            destination: .init(namespace: namespace, labels: ["app": app]),
                                            request: .init(method: method, path: path))).allowed
        }
        #expect(decide("cluster.local/ns/jobs/sa/batch-sa", "shop", "web", "GET", "/report/1"))
        #expect(!decide("cluster.local/ns/jobs/sa/batch-sa", "shop", "web", "POST", "/report/1"))
        #expect(decide("cluster.local/ns/istio-system/sa/ingress", "shop", "web", "DELETE", "/x"))
        #expect(!decide("cluster.local/ns/shop/sa/web-sa", "jobs", "batch", "GET", "/"))
    }

    @Test(arguments: [
        ("plain", "plain"), ("/api/v1", "/api/v1"), ("/api/*", "\"/api/*\""), ("*.csv", "\"*.csv\""), ("true", "\"true\""),
        ("8080", "\"8080\""), ("-x", "\"-x\""), ("a: b", "\"a: b\""), ("say \"hi\"", "\"say \\\"hi\\\"\""), ("", "\"\""),
    ])
    func quoting(_ text: String, _ expected: String) {
        #expect(ZeroTrustGenerator.quoted(text) == expected)
    }
}
