import Testing
import MeshAuthz
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The compiled matcher against the oracle: random policy sets and requests from a fixed seed, drawn from
/// small vocabularies so that values collide (shared prefixes, `*` at either end, templates, notX with
/// absent attributes, DENY over ALLOW, AUDIT, CUSTOM, dry-run, selectors, root namespace, gateways,
/// PeerAuthentication), plus every fixture case. Every Decision must be identical: allowed, stage, reason,
/// rule, mTLS mode, dry-run and audit reports.
@Suite struct DifferentialTests {
    /// Compiled twice: with the default index threshold, and with tries in every bucket.
    static let modes = [CompileOptions(), CompileOptions(indexThreshold: 0)]

    /// `MESHAUTHZ_DIFFERENTIAL_SCALE=10 swift test --filter Differential` runs 10× the policy sets (same seed,
    /// the first ones identical); the default keeps `swift test` quick.
    static let scale = max(1, Int(ProcessInfoLite.environment("MESHAUTHZ_DIFFERENTIAL_SCALE") ?? "") ?? 1)

    @Test func randomPolicySetsAgreeWithReference() {
        var rng = SplitMix64(seed: 0x6D65_7368_6175_7468)
        var generator = PolicyGenerator()
        var compared = 0
        var mismatches = 0
        var stages: [Decision.Stage: Int] = [:]
        var withDryRun = 0, withAudit = 0, allowed = 0
        for setNumber in 0..<(1500 * Self.scale) {
            let set = generator.policySet(&rng, large: setNumber % 25 == 0)
            let reference = ReferenceEvaluator(set)
            let compiled = Self.modes.map { CompiledPolicySet(set, options: $0) }
            for _ in 0..<30 {
                let request = generator.request(&rng, for: set)
                let expected = reference.evaluate(request)
                stages[expected.stage, default: 0] += 1
                if !expected.dryRun.isEmpty { withDryRun += 1 }
                if !expected.audit.isEmpty { withAudit += 1 }
                if expected.allowed { allowed += 1 }
                for (mode, matcher) in zip(Self.modes, compiled) {
                    let actual = matcher.evaluate(request)
                    compared += 1
                    if actual != expected {
                        mismatches += 1
                        if mismatches <= 3 {
                            Issue.record("""
                                set #\(setNumber) (threshold \(mode.indexThreshold)) disagrees
                                policies: \(set.authorizationPolicies)
                                peerAuthentications: \(set.peerAuthentications)
                                root: \(set.options.rootNamespace)
                                request: \(request)
                                reference: \(expected)
                                compiled:  \(actual)
                                """)
                        }
                    }
                }
            }
        }
        #expect(mismatches == 0, "\(mismatches) of \(compared) decisions differ")
        #expect(compared == 1500 * Self.scale * 30 * 2)
        // The draw must reach every stage and both kinds of report, often.
        for stage in [Decision.Stage.peerAuthentication, .custom, .denyPolicy, .allowPolicy, .noAllowPolicy, .defaultDeny] {
            #expect(stages[stage, default: 0] >= 1000, "stage \(stage) reached \(stages[stage, default: 0]) times")
        }
        #expect(withDryRun >= 1000 && withAudit >= 1000 && allowed >= 5000)
        print("differential: \(compared) compiled decisions, stages \(stages.map { "\($0.key.rawValue)=\($0.value)" }.sorted()), dry-run reports \(withDryRun), audit reports \(withAudit), allowed \(allowed)")
    }

    /// Sets where one workload sees hundreds of rules, so the default threshold builds tries too.
    @Test func largeBucketsAgreeWithReference() {
        var rng = SplitMix64(seed: 42)
        var generator = PolicyGenerator()
        var mismatches = 0
        for _ in 0..<12 {
            let set = generator.crowdedPolicySet(&rng)
            let reference = ReferenceEvaluator(set)
            let compiled = CompiledPolicySet(set)
            #expect(compiled.statistics.indexedBuckets > 0)
            for _ in 0..<150 {
                let request = generator.request(&rng, for: set)
                let expected = reference.evaluate(request)
                let actual = compiled.evaluate(request)
                if actual != expected {
                    mismatches += 1
                    if mismatches <= 3 { Issue.record("request: \(request)\nreference: \(expected)\ncompiled:  \(actual)") }
                }
            }
        }
        #expect(mismatches == 0)
    }

    /// The gateway path: the compiled matcher reading a `GatewayRequest` in place (labels from `k=v` text,
    /// headers as sent, repeated, in any case) against the oracle reading the same request as a
    /// `CheckRequest`. Also: an outcome number always stands for one and the same decision.
    @Test func gatewayRequestsAgreeWithReference() {
        var rng = SplitMix64(seed: 0x6761_7465_7761_7973)
        var generator = PolicyGenerator()
        var compared = 0, mismatches = 0, numbered = 0
        for setNumber in 0..<(400 * Self.scale) {
            let set = generator.policySet(&rng, large: setNumber % 25 == 0)
            let reference = ReferenceEvaluator(set)
            let compiled = Self.modes.map { CompiledPolicySet(set, options: $0) }
            var byOutcome: [OutcomeKey: Decision] = [:]
            for _ in 0..<30 {
                let parts = GatewayParts(&rng, generator.request(&rng, for: set))
                parts.withRequest { gateway in
                    let expected = reference.evaluate(gateway.checkRequest)
                    for matcher in compiled {
                        let (actual, outcome) = matcher.evaluate(gateway)
                        compared += 1
                        if actual != expected {
                            mismatches += 1
                            if mismatches <= 3 {
                                Issue.record("set #\(setNumber): \(parts)\nreference: \(expected)\ncompiled:  \(actual)")
                            }
                        }
                        if let outcome { #expect(outcome.index >= 0 && outcome.index < matcher.outcomeCount) }
                        if let outcome, matcher === compiled[0] {
                            numbered += 1
                            if let earlier = byOutcome[outcome] { #expect(earlier == actual, "outcome \(outcome) stands for two decisions") }
                            byOutcome[outcome] = actual
                        }
                    }
                }
            }
        }
        #expect(mismatches == 0, "\(mismatches) of \(compared) gateway decisions differ")
        #expect(numbered > compared / 4)
    }

    static let fixtures = (try? FixtureCase.all()) ?? []

    @Test func fixturesArePresent() {
        #expect(Self.fixtures.count >= 60)
    }

    /// Every conformance, oracle and local fixture check, both ways.
    @Test(arguments: fixtures)
    func fixtureCaseAgreesWithReference(_ fixture: FixtureCase) throws {
        let set = try PolicyLoader.load(fixture.policyFiles).get()
        let reference = ReferenceEvaluator(set)
        // Tokens in a check are validated first (the example mesh's tenant checks carry some).
        let authentication = AuthenticatedCheck(set)
        let now = Int64(time(nil))
        for options in Self.modes {
            let compiled = CompiledPolicySet(set, options: options)
            for (index, check) in fixture.checks.enumerated() {
                let expected = try authentication.decide(check.request, now: now, evaluate: reference.evaluate).0
                let actual = try authentication.decide(check.request, now: now, evaluate: compiled.evaluate).0
                #expect(actual == expected, "check \(index) (\(check.why)), threshold \(options.indexThreshold)")
                #expect(check.mismatches(actual).isEmpty, "check \(index) (\(check.why)): \(check.mismatches(actual))")
            }
        }
    }
}

/// A random request as a gateway would hand it over: the labels as `k=v` text (with spaces, empty items
/// and repeated keys), header names in any case, a header sometimes sent twice.
struct GatewayParts: CustomStringConvertible {
    var method: [UInt8], target: [UInt8], host: [UInt8]?, principal: [UInt8]?, isMTLS: Bool
    var sourceIP: IPAddress?, namespace: [UInt8]?, workload: [UInt8], port: Int?
    var headers: [([UInt8], [UInt8])]

    init(_ rng: inout SplitMix64, _ request: CheckRequest) {
        method = Array((request.request.method ?? "GET").utf8)
        target = Array((request.request.path ?? "/").utf8)
        host = request.request.host.map { Array($0.utf8) }
        principal = request.source.principal.map { Array(CheckRequest.Peer.withSPIFFEScheme($0).utf8) }
        isMTLS = principal != nil && rng.chance(90)
        sourceIP = request.source.ip
        namespace = request.destination.namespace.map { Array($0.utf8) }
        var items = request.destination.labels.map { "\($0.key)=\($0.value)" }
        if rng.chance(20), let key = request.destination.labels.keys.first { items.insert("\(key)=stale", at: 0) }
        if rng.chance(20) { items.append("") }
        workload = Array(items.map { rng.chance(20) ? " \($0) " : $0 }.joined(separator: ",").utf8)
        port = request.destination.port
        headers = []
        if rng.chance(60) { headers.append((Array(rng.pick(["x-tenant", "X-Tenant", "X-TENANT"]).utf8), Array(rng.pick(["acme", "acme-corp", "", "corp", "ac"]).utf8))) }
        if rng.chance(15) { headers.append((Array("x-tenant".utf8), Array("corp".utf8))) }
        if rng.chance(30) { headers.append((Array(rng.pick(["host", "Host"]).utf8), Array("hdr.example.com".utf8))) }
        if rng.chance(30) { headers.append((Array("user-agent".utf8), Array("curl".utf8))) }
    }

    func withRequest<R>(_ body: (GatewayRequest) -> R) -> R {
        withByteViews([method, target, host ?? [], principal ?? [], namespace ?? [], workload] + headers.flatMap { [$0.0, $0.1] }) { views in
            let fields = (0..<headers.count).map { HeaderField(name: views[6 + 2 * $0], value: views[7 + 2 * $0]) }
            return fields.withUnsafeBufferPointer { fields in
                body(GatewayRequest(method: views[0], target: views[1], host: host == nil ? nil : views[2],
                                    principal: principal == nil ? nil : views[3], isMTLS: isMTLS, sourceIP: sourceIP,
                                    namespace: namespace == nil ? nil : views[4], workload: views[5], port: port, headers: fields))
            }
        }
    }

    var description: String {
        func t(_ b: [UInt8]?) -> String { b.map { String(decoding: $0, as: UTF8.self) } ?? "nil" }
        return "method=\(t(method)) target=\(t(target)) host=\(t(host)) principal=\(t(principal)) mtls=\(isMTLS) ip=\(sourceIP.map(\.description) ?? "nil") ns=\(t(namespace)) workload=\(t(workload)) port=\(port.map(String.init) ?? "nil") headers=\(headers.map { "\(t($0.0)): \(t($0.1))" })"
    }
}

/// `arrays` as buffers that stay put for the call (what a gateway request's byte fields point at).
func withByteViews<R>(_ arrays: [[UInt8]], _ body: ([UnsafeBufferPointer<UInt8>]) -> R) -> R {
    let pointers = arrays.map { bytes -> UnsafeMutableBufferPointer<UInt8> in
        let copy = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(bytes.count, 1))
        _ = copy.initialize(from: bytes)
        return copy
    }
    defer { pointers.forEach { $0.deallocate() } }
    return body(zip(pointers, arrays).map { UnsafeBufferPointer(start: $0.baseAddress, count: $1.count) })
}

// MARK: Deterministic randomness

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
    mutating func some<T>(_ items: [T], max: Int = 2) -> [T] { (0..<(1 + int(max))).map { _ in pick(items) } }
    mutating func maybe<T>(_ percent: Int, _ make: (inout SplitMix64) -> T) -> T? { chance(percent) ? make(&self) : nil }
}

// MARK: Policy and request generator

/// Values drawn so that policy values and request values often share prefixes, suffixes and segments.
struct PolicyGenerator {
    static let namespaces = ["default", "prod", "istio-system", "edge"]
    static let gatewayLabel = "gateway.networking.k8s.io/gateway-name"

    static let principals = [
        "cluster.local/ns/default/sa/frontend", "cluster.local/ns/default/sa/front", "cluster.local/ns/prod/sa/api",
        "cluster.local/ns/prod-eu/sa/api", "spiffe://cluster.local/ns/edge/sa/gateway", "other.td/ns/default/sa/frontend",
        "cluster.local/ns/a/sa/b/extra", "cluster.local/ns/default/x/sa/frontend", "cluster.local", "cluster.local/ns//sa/x",
        "/ns/default/sa/frontend", "td/ns/prod/sa/api/", "cluster.local/ns/ns/sa/sa", "cluster.local/ns/default//sa/frontend",
        "cluster.local/ns/prod/x/y/sa/api//",
        // Canonically equivalent to ASCII or composed forms: Envoy compares bytes, so these differ.
        "cluster.local/ns/default/sa/fronte\u{0301}nd", "cluster.local/ns/default/sa/frontend\u{212A}",
    ]
    static let principalPatterns = [
        "cluster.local/ns/default/sa/frontend", "cluster.local/ns/prod/sa/api", "cluster.local/ns/default/*",
        "cluster.local/ns/prod*", "*/sa/api", "*api", "*", "spiffe://cluster.local/ns/edge/sa/gateway", "*front",
        "cluster.local/ns/default/sa/front*", "other.td/ns/default/sa/frontend", "cluster.local/ns/edge/sa/gateway", "c*",
        "*fe://cluster.local", "*/", "cluster.local/ns/default/sa/front\u{00E9}nd", "*K",
    ]
    static let namespacePatterns = ["default", "prod", "prod*", "*eu", "*", "de*lt", "a", "ns", "edge"]
    static let serviceAccountPatterns = ["frontend", "default/frontend", "prod/api", "api", "b", "sa", "ns/sa", "edge/gateway"]
    static let trustDomainPatterns = ["cluster.local", "cluster*", "*.td", "*", "other.td", "*local", "td"]
    static let requestPrincipalPatterns = [
        "iss/sub", "*", "iss/*", "*/sub", "*ss/sub", "iss/su*", "*ub", "is*", "https://accounts.example.com/user1",
        "https://accounts.example.com/*", "iss", "*/", "iss/sub*",
    ]
    static let cidrs = ["10.0.0.0/8", "10.0.0.5", "10.0.1.0/24", "192.168.0.0/16", "::1", "2001:db8::/32", "0.0.0.0/0", "::/0", "10.0.0.5/32"]
    static let ips = ["10.0.0.5", "10.0.1.7", "192.168.1.1", "::1", "2001:db8::5", "::ffff:10.0.0.5", "172.16.0.1"]
    static let hostPatterns = ["api.example.com", "API.Example.com", "*.example.com", "api.*", "*", "api.example.com:*", "*:8080", "*.COM", "\u{212A}.example.com", "k.*"]
    static let hosts = ["api.example.com", "Api.Example.Com:8080", "web.example.com", "other.com", "", "API.EXAMPLE.COM", "api.example.com:8080", "\u{212A}.example.com", "K.example.com"]
    static let ports = [80, 443, 8080, 9090]
    static let methodPatterns = ["GET", "POST", "G*", "*T", "*", "get", "DELETE", "P*"]
    static let methods = ["GET", "POST", "PUT", "get", "", "DELETE", "PATCH"]
    static let pathPatterns = [
        "/api", "/api/*", "/api*", "*.json", "*", "/users/{*}/profile", "/static/{**}", "/{**}/edit", "/a/{*}",
        "/api/v1/*", "/api/v1/users", "*/admin", "/", "/{*}", "/{*}/{*}", "/static/{*}",
        "/users/*", "/api/v1/users/{*}", "/caf\u{00E9}", "/caf\u{00E9}/*",
    ]
    static let paths = [
        "/api", "/api/", "/api/v1/users", "/api/v1/users?x=1", "/users/42/profile", "/users/4=2/profile",
        "/users/a/b/profile", "/static/", "/static", "/static/css/site.css", "/x.json#frag", "/a/b", "/a/b/c",
        "/api?q=/static/", "/apiary", "/docs/edit", "/admin", "/x/admin", "", "?", "/a/[x]", "/api/v1/users/7",
        "/users/42/profile#top", "/a/b?c/d", "/x.json", "/caf\u{00E9}", "/cafe\u{0301}", "/cafe\u{0301}/x",
        "/caf\u{00E9}?\u{0301}x", "/api?\u{0301}",
    ]
    static let headerValues = ["acme", "ac*", "*me", "*", "acme-corp", "corp"]
    static let claimPaths: [[String]] = [["groups"], ["nested", "role"], ["scope"], ["iss"], ["sub"], ["num"], ["permission"], ["nested"]]
    static let claimValues = ["admin", "dev*", "owner", "read", "iss", "*", "*min", "write", "3", "sub"]

    var counter = 0

    mutating func policySet(_ rng: inout SplitMix64, large: Bool = false) -> PolicySet {
        let root = rng.chance(85) ? "istio-system" : "prod"
        var set = PolicySet(options: MeshOptions(rootNamespace: root))
        let count = large ? 20 + rng.int(40) : rng.int(12)
        for _ in 0..<count { set.authorizationPolicies.append(policy(&rng, namespace: rng.pick(Self.namespaces))) }
        for i in 0..<rng.int(4) { set.peerAuthentications.append(peerAuthentication(&rng, index: i)) }
        return set
    }

    /// Many policies on the same few workloads: the buckets exceed the default index threshold.
    mutating func crowdedPolicySet(_ rng: inout SplitMix64) -> PolicySet {
        var set = PolicySet()
        for _ in 0..<(150 + rng.int(150)) {
            var policy = self.policy(&rng, namespace: rng.pick(["default", "istio-system"]))
            policy.selector = rng.pick([nil, ["app": "a"], ["app": "a", "version": "v1"]])
            policy.targetRefs = []
            policy.rules = (0..<(1 + rng.int(4))).map { _ in rule(&rng, action: policy.action) }
            set.authorizationPolicies.append(policy)
        }
        return set
    }

    mutating func policy(_ rng: inout SplitMix64, namespace: String) -> AuthorizationPolicy {
        counter += 1
        // Names like p3 and p12 make the id text order differ from numeric order.
        let id = ResourceID(namespace: namespace, name: "p\(counter % 40)-\(counter)")
        let action = rng.pick([Action.allow, .allow, .allow, .allow, .deny, .deny, .audit, .custom])
        var policy = AuthorizationPolicy(id: id, action: action)
        policy.dryRun = rng.chance(12)
        if action == .custom { policy.provider = rng.chance(90) ? "ext-authz" : nil }
        switch rng.int(10) {
        case 0...2: policy.selector = nil
        case 3: policy.selector = [:]
        case 4: policy.selector = ["app": "a"]
        case 5: policy.selector = ["app": "b"]
        case 6: policy.selector = ["app": "a", "version": "v1"]
        case 7: policy.selector = ["version": "v2"]
        case 8: policy.selector = [Self.gatewayLabel: "gw1"]
        default:
            policy.targetRefs = rng.pick([
                [TargetRef(group: "gateway.networking.k8s.io", kind: "Gateway", name: "gw1")],
                [TargetRef(group: "gateway.networking.k8s.io", kind: "Gateway", name: "gw2"),
                 TargetRef(group: "gateway.networking.k8s.io", kind: "Gateway", name: "gw1")],
                [TargetRef(group: "", kind: "Service", name: "gw1")],
                [TargetRef(group: "networking.istio.io", kind: "Gateway", name: "gw1")],
            ])
        }
        let ruleCount = rng.chance(10) ? 0 : 1 + rng.int(3)
        policy.rules = (0..<ruleCount).map { _ in rule(&rng, action: action) }
        return policy
    }

    mutating func rule(_ rng: inout SplitMix64, action: Action) -> Rule {
        var rule = Rule()
        if rng.chance(60) { rule.from = (0..<(1 + rng.int(2))).map { _ in source(&rng) } }
        if rng.chance(65) { rule.to = (0..<(1 + rng.int(2))).map { _ in operation(&rng) } }
        if rng.chance(35) { rule.when = (0..<(1 + rng.int(2))).map { _ in condition(&rng) } }
        return rule
    }

    func split<T>(_ rng: inout SplitMix64, _ items: [T]) -> ([T], [T]) {
        switch rng.int(4) {
        case 0: return (rng.some(items), [])
        case 1: return ([], rng.some(items))
        case 2: return (rng.some(items), rng.some(items))
        default: return (rng.some(items, max: 3), [])
        }
    }

    mutating func source(_ rng: inout SplitMix64) -> Source {
        var source = Source()
        for _ in 0..<(1 + rng.int(2)) {
            switch rng.int(7) {
            case 0: (source.principals, source.notPrincipals) = split(&rng, Self.principalPatterns)
            case 1: (source.namespaces, source.notNamespaces) = split(&rng, Self.namespacePatterns)
            case 2: (source.serviceAccounts, source.notServiceAccounts) = split(&rng, Self.serviceAccountPatterns)
            case 3: (source.trustDomains, source.notTrustDomains) = split(&rng, Self.trustDomainPatterns)
            case 4: (source.requestPrincipals, source.notRequestPrincipals) = split(&rng, Self.requestPrincipalPatterns)
            case 5: (source.ipBlocks, source.notIpBlocks) = split(&rng, Self.cidrs.map { CIDR($0)! })
            default: (source.remoteIpBlocks, source.notRemoteIpBlocks) = split(&rng, Self.cidrs.map { CIDR($0)! })
            }
        }
        return source
    }

    mutating func operation(_ rng: inout SplitMix64) -> Operation {
        var operation = Operation()
        for _ in 0..<(1 + rng.int(3)) {
            switch rng.int(5) {
            case 0: (operation.hosts, operation.notHosts) = split(&rng, Self.hostPatterns)
            case 1: (operation.ports, operation.notPorts) = split(&rng, Self.ports)
            case 2: (operation.methods, operation.notMethods) = split(&rng, Self.methodPatterns)
            default: (operation.paths, operation.notPaths) = split(&rng, Self.pathPatterns)
            }
        }
        return operation
    }

    mutating func condition(_ rng: inout SplitMix64) -> Condition {
        let key: ConditionKey
        let vocabulary: [String]
        switch rng.int(17) {
        case 0: key = .requestHeader("x-tenant"); vocabulary = Self.headerValues
        case 1: key = .requestHeader(rng.pick([":authority", "host", ":method", ":path"])); vocabulary = ["api.example.com", "GET", "/api*", "*", "*.com", "hdr*"]
        case 2: key = .sourceIP; vocabulary = Self.cidrs
        case 3: key = .remoteIP; vocabulary = Self.cidrs
        case 4: key = .destinationIP; vocabulary = Self.cidrs
        case 5: key = .sourceNamespace; vocabulary = Self.namespacePatterns
        case 6: key = .sourcePrincipal; vocabulary = Self.principalPatterns
        case 7: key = .sourceServiceAccount; vocabulary = Self.serviceAccountPatterns
        case 8: key = .sourceTrustDomain; vocabulary = Self.trustDomainPatterns
        case 9: key = .requestAuthPrincipal; vocabulary = Self.requestPrincipalPatterns
        case 10: key = .requestAuthAudiences; vocabulary = ["api", "*", "we*", "*eb"]
        case 11: key = .requestAuthPresenter; vocabulary = ["web", "*", "w*"]
        case 12, 13: key = .requestAuthClaims(rng.pick(Self.claimPaths)); vocabulary = Self.claimValues
        case 14: key = .destinationPort; vocabulary = ["80", "8080", "+80", "abc", "9090", "08080"]
        case 15: key = .connectionSNI; vocabulary = ["api.example.com", "*.example.com", "*", "api*"]
        default: key = .experimentalEnvoyFilter("experimental.envoy.filters.http.x[y]"); vocabulary = ["a", "*"]
        }
        let (values, notValues) = split(&rng, vocabulary)
        return Condition(key: key, values: values, notValues: notValues)
    }

    mutating func peerAuthentication(_ rng: inout SplitMix64, index: Int) -> PeerAuthentication {
        let namespace = rng.pick(Self.namespaces)
        let selector: [String: String]? = rng.pick([nil, [:], ["app": "a"], ["app": "a", "version": "v1"], ["version": "v2"]])
        var peer = PeerAuthentication(id: ResourceID(namespace: namespace, name: "pa\(index)"), selector: selector,
                                      mode: rng.pick(MTLSMode.allCases))
        if rng.chance(40) { peer.portLevel = [rng.pick(Self.ports): rng.pick(MTLSMode.allCases)] }
        return peer
    }

    func request(_ rng: inout SplitMix64, for set: PolicySet) -> CheckRequest {
        var source = CheckRequest.Peer()
        let principal = rng.maybe(65) { $0.pick(Self.principals) }
        source = CheckRequest.Peer(
            principal: principal,
            namespace: rng.maybe(20) { $0.pick(Self.namespaces) },
            ip: rng.maybe(80) { IPAddress($0.pick(Self.ips))! },
            remoteIP: rng.maybe(30) { IPAddress($0.pick(Self.ips))! },
            requestPrincipal: rng.maybe(35) { $0.pick(["iss/sub", "https://accounts.example.com/user1", "iss", "iss/", "/sub", "a/b/sub"]) },
            mtls: rng.pick(principal == nil ? [false, false, nil, true] : [true, true, true, nil, false]))
        var labels: [String: String] = [:]
        if rng.chance(80) { labels["app"] = rng.pick(["a", "b", "c"]) }
        if rng.chance(40) { labels["version"] = rng.pick(["v1", "v2"]) }
        if rng.chance(25) { labels[Self.gatewayLabel] = rng.pick(["gw1", "gw2"]) }
        let destination = CheckRequest.Workload(
            namespace: rng.chance(95) ? rng.pick(Self.namespaces + Self.namespaces + ["other"]) : nil, labels: labels,
            port: rng.maybe(85) { $0.pick(Self.ports) }, ip: rng.maybe(50) { IPAddress($0.pick(Self.ips))! })
        var headers: [String: String] = [:]
        if rng.chance(50) { headers["X-Tenant"] = rng.pick(["acme", "acme-corp", "", "corp", "ac"]) }
        if rng.chance(15) { headers["host"] = "hdr.example.com" }
        var claims: [String: JSONValue]? = nil
        if rng.chance(40) {
            var c: [String: JSONValue] = [:]
            if rng.chance(70) { c["iss"] = .string(rng.pick(["iss", "https://accounts.example.com"])) }
            if rng.chance(70) { c["sub"] = .string(rng.pick(["sub", "user1", ""])) }
            if rng.chance(50) { c["aud"] = rng.pick([.string("api"), .array([.string("web"), .string("api")]), .array([]), .number(1)]) }
            if rng.chance(40) { c["azp"] = .string(rng.pick(["web", "", "mobile"])) }
            if rng.chance(50) { c["groups"] = rng.pick([.array([.string("admin"), .string("dev")]), .string("admin"), .array([.number(1), .string("developer")])]) }
            if rng.chance(40) { c["scope"] = .string(rng.pick(["read write", "read", " write  admin ", ""])) }
            if rng.chance(20) { c["permission"] = rng.pick([.string("write read"), .array([.string("read write")])]) }
            if rng.chance(30) { c["nested"] = .object(["role": rng.pick([.string("owner"), .array([.string("owner")]), .bool(true)])]) }
            if rng.chance(20) { c["num"] = .number(3) }
            claims = c
        }
        let http = CheckRequest.HTTP(
            method: rng.maybe(90) { $0.pick(Self.methods) }, path: rng.maybe(93) { $0.pick(Self.paths) },
            host: rng.maybe(75) { $0.pick(Self.hosts) }, headers: headers, claims: claims)
        return CheckRequest(source: source, destination: destination, request: http,
                            connection: .init(sni: rng.maybe(40) { $0.pick(["api.example.com", "", "web.example.com"]) }))
    }
}

/// An environment variable without Foundation.
enum ProcessInfoLite {
    static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}
