import Testing
@testable import MeshAuthz

/// Kubernetes manifests become an inventory with positions; other kinds are counted, never errors; and
/// the policy loader (serve, check) is not disturbed by a directory that also holds them.
@Suite struct InventoryReaderTests {
    static let manifests = """
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: billing, namespace: billing}
    spec:
      template:
        metadata:
          labels: {app: billing-service, version: v1}
        spec:
          serviceAccountName: billing-sa
          containers:
          - name: app
            ports: [{containerPort: 8080, name: http}]
    ---
    apiVersion: v1
    kind: Pod
    metadata:
      name: debug
      labels: {app: debug}
    spec:
      containers: [{name: sh}]
    ---
    apiVersion: batch/v1
    kind: CronJob
    metadata: {name: nightly, namespace: billing}
    spec:
      schedule: "@daily"
      jobTemplate:
        spec:
          template:
            metadata: {labels: {app: nightly}}
            spec: {serviceAccount: batch-sa, containers: [{name: job}]}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: billing-service, namespace: billing}
    spec:
      selector: {app: billing-service}
      ports: [{name: http, port: 80, targetPort: http}, {port: 9090}]
    ---
    apiVersion: v1
    kind: ServiceAccount
    metadata: {name: billing-sa, namespace: billing}
    ---
    apiVersion: v1
    kind: Namespace
    metadata: {name: billing}
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: settings, namespace: billing}
    data: {a: b}
    ---
    apiVersion: serving.knative.dev/v1
    kind: Service
    metadata: {name: not-a-k8s-service}
    ---
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: billing, namespace: billing}
    spec:
      host: billing-service.billing.svc.cluster.local
      trafficPolicy:
        tls: {mode: ISTIO_MUTUAL}
        portLevelSettings:
        - port: {number: 9090}
          tls: {mode: DISABLE}
      subsets:
      - name: v1
        trafficPolicy: {tls: {mode: SIMPLE}}
    """

    @Test func readsEveryKindWithPositions() throws {
        let (inventory, errors) = InventoryReader.read([PolicyFile(name: "k8s/all.yaml", text: Self.manifests)])
        #expect(errors.isEmpty, "\(errors)")
        #expect(inventory.workloads.map(\.kind) == ["Deployment", "Pod", "CronJob"])
        let billing = try #require(inventory.workloads.first)
        #expect(billing.id == ResourceID(namespace: "billing", name: "billing"))
        #expect(billing.labels == ["app": "billing-service", "version": "v1"])
        #expect(billing.serviceAccount == "billing-sa")
        #expect(billing.ports == [Inventory.ContainerPort(name: "http", port: 8080)])
        #expect(billing.location == SourceLocation(file: "k8s/all.yaml", line: 1, column: 1))
        let pod = inventory.workloads[1]
        #expect(pod.id == ResourceID(namespace: "default", name: "debug"), "namespace defaults to default")
        #expect(pod.serviceAccount == "default", "service account defaults to default")
        #expect(pod.location.line == 14)
        #expect(inventory.workloads[2].serviceAccount == "batch-sa", "the deprecated serviceAccount field is read")
        #expect(inventory.workloads[2].labels == ["app": "nightly"])
        let service = try #require(inventory.services.first)
        #expect(inventory.services.count == 1, "a Knative Service is another kind")
        #expect(service.selector == ["app": "billing-service"])
        #expect(service.ports == [Inventory.ServicePort(name: "http", port: 80, targetPort: .name("http")),
                                  Inventory.ServicePort(port: 9090, targetPort: .number(9090))])
        #expect(inventory.serviceAccounts.map(\.id) == [ResourceID(namespace: "billing", name: "billing-sa")])
        #expect(inventory.namespaces.map(\.name) == ["billing"])
        #expect(inventory.skipped == ["ConfigMap": 1, "Service": 1])
        let rule = try #require(inventory.destinationRules.first)
        #expect(rule.host == "billing-service.billing.svc.cluster.local")
        #expect(rule.tls.map(\.mode) == [.istioMutual, .disable, .simple])
        #expect(rule.tls.map(\.port) == [nil, 9090, nil])
        #expect(rule.tls.map(\.subset) == [nil, nil, "v1"])
        #expect(rule.tls[1].field == "spec.trafficPolicy.portLevelSettings[0].tls.mode")
        #expect(rule.tls[1].location.line == 66)
    }

    @Test func queries() {
        let (inventory, _) = InventoryReader.read([PolicyFile(name: "all.yaml", text: Self.manifests)])
        #expect(inventory.workloads(in: "billing", selectedBy: ["app": "billing-service"]).map(\.id.name) == ["billing"])
        #expect(inventory.workloads(in: "billing", selectedBy: nil).count == 2)
        #expect(inventory.workloads(in: "billing", selectedBy: ["app": "nope"]).isEmpty)
        for host in ["billing-service.billing.svc.cluster.local", "billing-service.billing", "billing-service.billing.svc",
                     "*.billing.svc.cluster.local", "*", "Billing-Service.billing"] {
            #expect(inventory.services(forHost: host, from: "edge").count == 1, "\(host)")
        }
        #expect(inventory.services(forHost: "billing-service", from: "billing").count == 1)
        #expect(inventory.services(forHost: "billing-service", from: "edge").isEmpty, "a short name is the client's namespace")
        #expect(inventory.services(forHost: "billing-service.core", from: "edge").isEmpty)
        #expect(inventory.workloads(of: inventory.services[0]).map(\.id.name) == ["billing"])
        #expect(inventory.declaresServiceAccount(namespace: "billing", name: "billing-sa"))
        #expect(inventory.declaresServiceAccount(namespace: "billing", name: "batch-sa"), "a workload running as it declares it")
        #expect(inventory.declaresServiceAccount(namespace: "billing", name: "default"))
        #expect(!inventory.declaresServiceAccount(namespace: "billing", name: "other-sa"))
        #expect(!inventory.declaresServiceAccount(namespace: "nowhere", name: "default"))
        #expect(inventory.declaresNamespace("billing") && inventory.declaresNamespace("default"))
        #expect(!inventory.declaresNamespace("core"))
    }

    struct BadCase: CustomStringConvertible, Sendable {
        let name: String
        let yaml: String
        let line: Int
        let field: String
        var description: String { name }
    }

    static let badCases: [BadCase] = [
        BadCase(name: "labels not a mapping", yaml: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    metadata:\n      labels: [a]\n",
                line: 7, field: "spec.template.metadata.labels"),
        BadCase(name: "port not a number", yaml: "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - port: http\n",
                line: 6, field: "spec.ports[0].port"),
        BadCase(name: "DestinationRule without host", yaml: "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata: {name: d}\nspec: {}\n",
                line: 4, field: "spec.host"),
        BadCase(name: "misspelled TLS mode", yaml: "apiVersion: networking.istio.io/v1alpha3\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: a\n  trafficPolicy: {tls: {mode: ISTIO_MUTAL}}\n",
                line: 6, field: "spec.trafficPolicy.tls.mode"),
        BadCase(name: "syntax error", yaml: "apiVersion: v1\nkind: Pod\nmetadata: {name: [\n", line: 4, field: ""),
    ]

    @Test(arguments: badCases)
    func badManifestIsReportedWithLocation(_ bad: BadCase) throws {
        let (_, errors) = InventoryReader.read([PolicyFile(name: "bad.yaml", text: bad.yaml)])
        let error = try #require(errors.first)
        #expect(error.location.file == "bad.yaml")
        #expect(error.location.line == bad.line, "\(error)")
        #expect(error.field == bad.field, "\(error)")
    }

    @Test func misspelledTLSModeSuggests() throws {
        let (_, errors) = InventoryReader.read([PolicyFile(name: "bad.yaml", text: Self.badCases[3].yaml)])
        #expect(try #require(errors.first).message.contains("did you mean ISTIO_MUTUAL?"))
    }

    @Test func listsAreReadAndBounded() {
        let list = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ServiceAccount, metadata: {name: a}}\n- {apiVersion: v1, kind: ServiceAccount, metadata: {name: b}}\n"
        let (inventory, errors) = InventoryReader.read([PolicyFile(name: "list.yaml", text: list)])
        #expect(errors.isEmpty && inventory.serviceAccounts.count == 2)
        let (_, limited) = InventoryReader.read([PolicyFile(name: "list.yaml", text: list)], limits: LoadLimits(maxResources: 2))
        #expect(limited.map(\.code) == [.limitExceeded])
    }

    /// `serve` and `check` load only what they decide with: a directory that also holds workload
    /// manifests and DestinationRules loads, the other kinds counted.
    @Test func policyLoaderIgnoresManifestsAndDestinationRules() throws {
        let policy = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: billing}\nspec: {}\n"
        let result = PolicyLoader.load([PolicyFile(name: "policy.yaml", text: policy), PolicyFile(name: "k8s.yaml", text: Self.manifests)])
        let set = try result.get()
        #expect(set.authorizationPolicies.count == 1)
        #expect(set.otherResourceCounts.map(\.kind) == ["ConfigMap", "CronJob", "Deployment", "DestinationRule", "Namespace", "Pod", "Service", "ServiceAccount"])
        #expect(set.otherResources.count == 9)
    }
}

/// The analyses' index answers as the inventory's own queries do.
@Suite struct InventoryIndexTests {
    @Test func sameAnswers() {
        let (inventory, _) = InventoryReader.read([PolicyFile(name: "all.yaml", text: InventoryReaderTests.manifests)])
        let index = InventoryIndex(inventory)
        for host in ["billing-service.billing.svc.cluster.local", "billing-service.billing", "billing-service.billing.svc",
                     "*.billing.svc.cluster.local", "*", "Billing-Service.billing", "billing-service", "nope.billing"] {
            for namespace in ["billing", "edge"] {
                #expect(index.services(forHost: host, from: namespace) == inventory.services(forHost: host, from: namespace), "\(host) from \(namespace)")
            }
        }
        for (namespace, name) in [("billing", "billing-sa"), ("billing", "batch-sa"), ("billing", "default"), ("billing", "x"), ("nowhere", "default")] {
            #expect(index.declaresServiceAccount(namespace: namespace, name: name) == inventory.declaresServiceAccount(namespace: namespace, name: name))
        }
        for namespace in ["billing", "default", "core"] {
            #expect(index.declaresNamespace(namespace) == inventory.declaresNamespace(namespace))
            #expect(index.workloads(in: namespace, selectedBy: ["app": "billing-service"]) == inventory.workloads(in: namespace, selectedBy: ["app": "billing-service"]))
        }
        #expect(index.workloads(of: inventory.services[0]) == inventory.workloads(of: inventory.services[0]))
    }
}
