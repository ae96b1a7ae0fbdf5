import Testing
@testable import MeshAuthz

/// One row per rule field and per `when` key (FieldSpec.swift): a value that matches the request below and
/// one that does not, each as the field's values and as its `not` values, through both engines and both
/// index modes. Adding a `when` key means adding its rows here.
@Suite struct FieldSpecTests {
    /// Key paths are immutable values (not marked Sendable by the standard library).
    enum Place: @unchecked Sendable {
        case from(WritableKeyPath<Source, [String]>, not: WritableKeyPath<Source, [String]>)
        case fromIP(WritableKeyPath<Source, [CIDR]>, not: WritableKeyPath<Source, [CIDR]>)
        case to(WritableKeyPath<Operation, [String]>, not: WritableKeyPath<Operation, [String]>)
        case port
        case when(ConditionKey)
    }

    struct Row: CustomTestStringConvertible, Sendable {
        let place: Place
        let value: String
        let matches: Bool
        var testDescription: String { "\(place) \(value)" }
    }

    static let rows: [Row] = [
        Row(place: .from(\.principals, not: \.notPrincipals), value: "cluster.local/ns/default/sa/frontend", matches: true),
        Row(place: .from(\.principals, not: \.notPrincipals), value: "*/sa/frontend", matches: true),
        Row(place: .from(\.principals, not: \.notPrincipals), value: "cluster.local/ns/other/*", matches: false),
        Row(place: .from(\.namespaces, not: \.notNamespaces), value: "default", matches: true),
        Row(place: .from(\.namespaces, not: \.notNamespaces), value: "other", matches: false),
        Row(place: .from(\.serviceAccounts, not: \.notServiceAccounts), value: "frontend", matches: true),
        Row(place: .from(\.serviceAccounts, not: \.notServiceAccounts), value: "other/frontend", matches: false),
        Row(place: .from(\.trustDomains, not: \.notTrustDomains), value: "cluster.local", matches: true),
        Row(place: .from(\.trustDomains, not: \.notTrustDomains), value: "other.local", matches: false),
        Row(place: .from(\.requestPrincipals, not: \.notRequestPrincipals), value: "https://issuer.example/user-1", matches: true),
        Row(place: .from(\.requestPrincipals, not: \.notRequestPrincipals), value: "*/user-2", matches: false),
        Row(place: .fromIP(\.ipBlocks, not: \.notIpBlocks), value: "10.0.0.0/8", matches: true),
        Row(place: .fromIP(\.ipBlocks, not: \.notIpBlocks), value: "192.168.0.0/16", matches: false),
        Row(place: .fromIP(\.remoteIpBlocks, not: \.notRemoteIpBlocks), value: "10.0.0.5", matches: true),
        Row(place: .fromIP(\.remoteIpBlocks, not: \.notRemoteIpBlocks), value: "10.0.0.6/32", matches: false),
        Row(place: .port, value: "8080", matches: true),
        Row(place: .port, value: "9090", matches: false),
        Row(place: .to(\.methods, not: \.notMethods), value: "GET", matches: true),
        Row(place: .to(\.methods, not: \.notMethods), value: "get", matches: false),
        Row(place: .to(\.paths, not: \.notPaths), value: "/api/*", matches: true),
        Row(place: .to(\.paths, not: \.notPaths), value: "/api/{*}/users", matches: true),
        Row(place: .to(\.paths, not: \.notPaths), value: "/admin", matches: false),
        Row(place: .to(\.hosts, not: \.notHosts), value: "API.example.com", matches: true),
        Row(place: .to(\.hosts, not: \.notHosts), value: "*.other.com", matches: false),
        Row(place: .when(.requestHeader("x-tenant")), value: "tenant-a", matches: true),
        Row(place: .when(.requestHeader("x-tenant")), value: "tenant-b", matches: false),
        Row(place: .when(.requestHeader(":authority")), value: "api.example.com", matches: true),
        Row(place: .when(.requestHeader(":method")), value: "GET", matches: true),
        Row(place: .when(.requestHeader(":path")), value: "/api/v1/users?page=2", matches: true),
        Row(place: .when(.requestHeader(":path")), value: "/api/v1/users", matches: false),
        Row(place: .when(.sourceIP), value: "10.0.0.0/24", matches: true),
        Row(place: .when(.remoteIP), value: "10.1.0.0/16", matches: false),
        Row(place: .when(.destinationIP), value: "10.9.9.9", matches: true),
        Row(place: .when(.destinationPort), value: "8080", matches: true),
        Row(place: .when(.destinationPort), value: "80", matches: false),
        Row(place: .when(.connectionSNI), value: "api.default.svc", matches: true),
        Row(place: .when(.sourceNamespace), value: "default", matches: true),
        Row(place: .when(.sourcePrincipal), value: "cluster.local/ns/default/sa/frontend", matches: true),
        Row(place: .when(.sourcePrincipal), value: "cluster.local/ns/default/sa/backend", matches: false),
        Row(place: .when(.sourceServiceAccount), value: "default/frontend", matches: true),
        Row(place: .when(.sourceTrustDomain), value: "cluster.local", matches: true),
        Row(place: .when(.requestAuthPrincipal), value: "https://issuer.example/user-1", matches: true),
        Row(place: .when(.requestAuthAudiences), value: "api", matches: true),
        Row(place: .when(.requestAuthPresenter), value: "web", matches: true),
        Row(place: .when(.requestAuthPresenter), value: "cli", matches: false),
        Row(place: .when(.requestAuthClaims(["groups"])), value: "admin", matches: true),
        Row(place: .when(.requestAuthClaims(["scope"])), value: "write", matches: true),
        Row(place: .when(.requestAuthClaims(["tenant", "id"])), value: "a", matches: true),
        Row(place: .when(.requestAuthClaims(["tenant", "id"])), value: "b", matches: false),
        Row(place: .when(.experimentalEnvoyFilter("experimental.envoy.filters.a.b[c]")), value: "x", matches: false),
    ]

    static let request = CheckRequest(
        source: .init(principal: "cluster.local/ns/default/sa/frontend", ip: IPAddress("10.0.0.5"),
                      requestPrincipal: "https://issuer.example/user-1", mtls: true),
        destination: .init(namespace: "default", labels: ["app": "api"], port: 8080, ip: IPAddress("10.9.9.9")),
        request: .init(method: "GET", path: "/api/v1/users?page=2", host: "api.example.com",
                       headers: ["x-tenant": "tenant-a"],
                       claims: ["iss": .string("https://issuer.example"), "sub": .string("user-1"), "aud": .string("api"),
                                "azp": .string("web"), "groups": .array([.string("admin")]), "scope": .string("read write"),
                                "tenant": .object(["id": .string("a")])]),
        connection: .init(sni: "api.default.svc"))

    static func rule(_ place: Place, _ value: String, negated: Bool) -> Rule {
        var source = Source(), operation = Operation()
        switch place {
        case .from(let values, let not): source[keyPath: negated ? not : values] = [value]
        case .fromIP(let values, let not): source[keyPath: negated ? not : values] = [CIDR(value)!]
        case .to(let values, let not): operation[keyPath: negated ? not : values] = [value]
        case .port:
            if negated { operation.notPorts = [Int(value)!] } else { operation.ports = [Int(value)!] }
        case .when(let key):
            return Rule(when: [negated ? Condition(key: key, notValues: [value]) : Condition(key: key, values: [value])])
        }
        switch place {
        case .from, .fromIP: return Rule(from: [source])
        case .to, .port, .when: return Rule(to: [operation])
        }
    }

    @Test(arguments: rows) func eachFieldMatchesAsItsSpecSays(_ row: Row) {
        for negated in [false, true] {
            let set = PolicySet(authorizationPolicies: [
                AuthorizationPolicy(id: ResourceID(namespace: "default", name: "p"), selector: ["app": "api"], action: .allow,
                                    rules: [Self.rule(row.place, row.value, negated: negated)]),
            ])
            let expected = ReferenceEvaluator(set).evaluate(Self.request)
            #expect(expected.allowed == (row.matches != negated), "reference, negated: \(negated)")
            for options in [CompileOptions(), CompileOptions(indexThreshold: 0)] {
                #expect(CompiledPolicySet(set, options: options).evaluate(Self.request) == expected,
                        "threshold \(options.indexThreshold), negated: \(negated)")
            }
        }
    }

    /// The index files a rule under keys made from the same string forms as its matcher: a value the
    /// matcher accepts is always found under the key (candidates are a superset).
    @Test func indexKeysComeFromTheMatchersForms() {
        typealias Key = Compiler.IndexKey
        let cases: [(MatcherForm, String, Key?)] = [
            (.principal, "*", .present),
            (.principal, "cluster.local/ns/a/*", .prefix(Array("spiffe://cluster.local/ns/a/".utf8))),
            (.principal, "*/sa/x", .suffix(Array("/sa/x".utf8))),
            (.principal, "td/ns/a/sa/x", .exact(Array("spiffe://td/ns/a/sa/x".utf8))),
            (.string(star: .present, lowered: true), "API.Example.com", .exact(Array("api.example.com".utf8))),
            (.string(star: .present, lowered: false), "GET", .exact(Array("GET".utf8))),
            (.path, "/api/{*}/users", .prefix(Array("/api/".utf8))),
            (.path, "{**}", .prefix([])),
            (.path, "/a*", .prefix(Array("/a".utf8))),
            (.port, "8080", .port(8080)),
            (.namespace, "default", nil),
            (.ip, "10.0.0.0/8", nil),
            (.requestPrincipal, "iss/sub", nil),
        ]
        for (form, value, expected) in cases {
            #expect(form.indexKey(value) == expected, "\(form) \(value)")
        }
        // Only the fields with an index dimension file rules.
        #expect(FieldSpec.of(.principals).index == .principal)
        #expect(FieldSpec.of(.condition(.sourcePrincipal)).index == .principal)
        #expect(FieldSpec.of(.namespaces).index == nil)
        #expect(FieldSpec.of(.condition(.requestHeader(":method"))).index == nil)
    }
}
