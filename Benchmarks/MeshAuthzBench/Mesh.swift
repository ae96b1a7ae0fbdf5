import MeshAuthz

/// A generated mesh that looks like a real one at any size: many namespaces, each with services that have
/// their own service account, an ALLOW policy naming their callers and path prefixes, sometimes a DENY
/// policy and conditions; an allow-nothing default per namespace; mesh-wide policies in the root namespace
/// (a DENY, an AUDIT, a dry-run) and STRICT mTLS; an ingress gateway with many route rules (`targetRefs`).
/// Every size has exactly the requested number of AuthorizationPolicies.
struct Mesh {
    struct Service {
        var namespace: String
        var name: String
        var account: String
        var prefixes: [String]
        var callers: [String]
        var principal: String { "cluster.local/ns/\(namespace)/sa/\(account)" }
    }

    static let resources = ["orders", "users", "payments", "invoices", "carts", "items", "reports", "events", "search",
                            "accounts", "sessions", "files", "messages", "profiles", "tickets", "metrics"]
    static let hostsPerGatewayPolicy = 50

    var rng: SplitMix64
    var services: [Service] = []
    var gatewayRoutes: [(host: String, prefix: String)] = []
    /// One YAML document per resource, grouped into files by namespace.
    var files: [String: [String]] = [:]
    var policyCount = 0

    init(policies: Int, seed: UInt64 = 7) {
        rng = SplitMix64(seed: seed)
        generate(policies)
    }

    private mutating func add(_ file: String, _ document: String) {
        files[file, default: []].append(document)
    }

    private mutating func policy(_ namespace: String, _ name: String, _ spec: String, dryRun: Bool = false) {
        let annotations = dryRun ? "\n  annotations:\n    istio.io/dry-run: \"true\"" : ""
        add(namespace, """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata:
              name: \(name)
              namespace: \(namespace)\(annotations)
            spec:
            \(spec)
            """)
        policyCount += 1
    }

    private static func list(_ items: [String]) -> String {
        "[" + items.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
    }

    private mutating func generate(_ budget: Int) {
        let servicesPerNamespace = 8
        // Root namespace: mesh-wide STRICT, a DENY, an AUDIT and a dry-run DENY.
        add("istio-system", """
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: default, namespace: istio-system}
            spec: {mtls: {mode: STRICT}}
            """)
        let rootPolicies: [(String, String, Bool)] = [
            ("deny-blocked", """
              action: DENY
              rules:
              - from:
                - source:
                    principals: ["*/sa/blocked", "cluster.local/ns/quarantine/*"]
              - to:
                - operation:
                    paths: ["/debug/*", "*.php"]
            """, false),
            ("audit-admin", """
              action: AUDIT
              rules:
              - to:
                - operation:
                    paths: ["/admin/*"]
            """, false),
            ("dry-run-deny-delete", """
              action: DENY
              rules:
              - to:
                - operation:
                    methods: ["DELETE"]
                when:
                - key: request.headers[x-env]
                  notValues: ["staging"]
            """, true),
        ]
        for (name, spec, dryRun) in rootPolicies.prefix(max(1, min(3, budget / 4))) {
            policy("istio-system", name, spec, dryRun: dryRun)
        }
        // Ingress gateway: route rules by host and path prefix, 50 per policy.
        let gatewayPolicies = budget >= 100 ? max(1, budget / 500) : (budget >= 10 ? 1 : 0)
        for g in 0..<gatewayPolicies {
            var rules: [String] = []
            for r in 0..<Self.hostsPerGatewayPolicy {
                let host = "app\(g * Self.hostsPerGatewayPolicy + r).example.com"
                let prefix = "/\(rng.pick(Self.resources))/v\(1 + rng.int(3))/"
                gatewayRoutes.append((host, prefix))
                rules.append("""
                  - to:
                    - operation:
                        hosts: \(Self.list([host, host + ":*"]))
                        paths: \(Self.list([prefix + "*"]))
                        methods: ["GET", "POST"]
                """)
            }
            policy("edge", "ingress-routes-\(g)", """
              targetRefs:
              - {group: gateway.networking.k8s.io, kind: Gateway, name: ingress}
              rules:
            \(rules.joined(separator: "\n"))
            """)
        }
        // Namespaces of services until the budget is spent.
        var n = 0
        while policyCount < budget {
            let namespace = "ns-\(n)"
            if n % 10 == 3 {
                add(namespace, """
                    apiVersion: security.istio.io/v1
                    kind: PeerAuthentication
                    metadata: {name: default, namespace: \(namespace)}
                    spec: {mtls: {mode: PERMISSIVE}}
                    """)
            }
            policy(namespace, "allow-nothing", "  {}")
            var local: [Service] = []
            for s in 0..<servicesPerNamespace where policyCount < budget {
                let name = "svc-\(s)"
                let prefixes = (0..<(2 + rng.int(3))).map { _ in "/api/v\(1 + rng.int(2))/\(rng.pick(Self.resources))" }
                var service = Service(namespace: namespace, name: name, account: "\(name)-sa", prefixes: prefixes, callers: [])
                // Callers: mostly neighbours, some from earlier namespaces.
                for _ in 0..<(2 + rng.int(3)) {
                    if !local.isEmpty && rng.chance(60) {
                        service.callers.append(rng.pick(local).principal)
                    } else if !services.isEmpty {
                        service.callers.append(rng.pick(services).principal)
                    } else {
                        service.callers.append("cluster.local/ns/edge/sa/ingress-sa")
                    }
                }
                local.append(service)
                let readers = Array(service.callers.prefix(2)), writers = Array(service.callers.dropFirst(2))
                var rules = """
                  - from:
                    - source:
                        principals: \(Self.list(readers))
                    to:
                    - operation:
                        methods: ["GET", "HEAD"]
                        paths: \(Self.list(prefixes.map { $0 + "/*" }))
                """
                if !writers.isEmpty {
                    rules += "\n" + """
                      - from:
                        - source:
                            principals: \(Self.list(writers))
                        to:
                        - operation:
                            methods: ["GET", "POST", "PUT"]
                            paths: \(Self.list([prefixes[0] + "/*", prefixes[0]]))
                    """
                }
                rules += "\n" + """
                  - from:
                    - source:
                        namespaces: ["monitoring"]
                    to:
                    - operation:
                        methods: ["GET"]
                        paths: ["/metrics", "/healthz"]
                """
                if s % 3 == 0 {
                    rules += "\n" + """
                      - from:
                        - source:
                            principals: \(Self.list([service.callers[0]]))
                        to:
                        - operation:
                            paths: ["/api/v1/tenants/{*}/settings"]
                        when:
                        - key: request.headers[x-tenant]
                          values: ["acme", "globex*"]
                    """
                }
                policy(namespace, "\(name)-allow", """
                  selector:
                    matchLabels: {app: \(name)}
                  rules:
                \(rules)
                """)
                if s % 4 == 1 && policyCount < budget {
                    policy(namespace, "\(name)-deny-internal", """
                      selector:
                        matchLabels: {app: \(name)}
                      action: DENY
                      rules:
                      - from:
                        - source:
                            notNamespaces: [\(namespace)]
                        to:
                        - operation:
                            paths: ["/internal/*"]
                    """)
                }
                if s == 5 {
                    add(namespace, """
                        apiVersion: security.istio.io/v1
                        kind: PeerAuthentication
                        metadata: {name: \(name)-ports, namespace: \(namespace)}
                        spec:
                          selector:
                            matchLabels: {app: \(name)}
                          portLevelMtls:
                            "9090": {mode: PERMISSIVE}
                        """)
                }
            }
            services += local
            n += 1
        }
    }

    func policyFiles() -> [PolicyFile] {
        files.keys.sorted().map { PolicyFile(name: "\($0).yaml", text: files[$0]!.joined(separator: "\n---\n") + "\n") }
    }

    /// Requests as a gateway sidecar would see them: mostly legitimate calls, some strangers, some
    /// plaintext, some to the ingress gateway.
    mutating func requests(_ count: Int) -> [CheckRequest] {
        var result: [CheckRequest] = []
        for _ in 0..<count {
            if !gatewayRoutes.isEmpty && rng.chance(10) {
                let route = rng.pick(gatewayRoutes)
                let path = rng.chance(80) ? route.prefix + "item-\(rng.int(1000))" : "/other/\(rng.int(10))"
                result.append(CheckRequest(
                    source: .init(principal: "cluster.local/ns/istio-ingress/sa/ingress-gateway", ip: IPAddress("10.1.2.3")),
                    destination: .init(namespace: "edge", labels: ["app": "ingress", "gateway.networking.k8s.io/gateway-name": "ingress"], port: 8080),
                    request: .init(method: "GET", path: path, host: route.host)))
                continue
            }
            guard !services.isEmpty else { break }
            let service = rng.pick(services)
            var principal: String? = rng.chance(75) ? rng.pick(service.callers) : rng.pick(services).principal
            if rng.chance(3) { principal = nil }
            let prefix = rng.chance(85) ? rng.pick(service.prefixes) : "/internal"
            let path = prefix + "/\(rng.int(100_000))" + (rng.chance(20) ? "?page=\(rng.int(9))" : "")
            let method = rng.pick(["GET", "GET", "GET", "POST", "PUT", "DELETE"])
            var headers: [String: String] = ["user-agent": "bench/1.0"]
            if rng.chance(20) { headers["x-tenant"] = rng.pick(["acme", "globex-eu", "initech"]) }
            result.append(CheckRequest(
                source: .init(principal: principal, ip: IPAddress("10.0.\(rng.int(256)).\(rng.int(256))"), mtls: principal != nil),
                destination: .init(namespace: service.namespace, labels: ["app": service.name, "version": "v1"], port: 8080),
                request: .init(method: method, path: path, host: "\(service.name).\(service.namespace).svc.cluster.local",
                               headers: headers)))
        }
        return result
    }
}

struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func int(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
    mutating func chance(_ percent: Int) -> Bool { int(100) < percent }
    mutating func pick<T>(_ items: [T]) -> T { items[int(items.count)] }
}
