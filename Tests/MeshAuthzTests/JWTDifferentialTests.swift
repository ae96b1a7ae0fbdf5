import Foundation
import Testing
@testable import MeshAuthz

/// The compiled matcher against the oracle on requests whose identity comes from verified tokens: random
/// policies on `requestPrincipals` and `request.auth.*` (nested and list-valued claims, space-delimited ones,
/// audiences, presenter, globs), random signed tokens in the two rules' locations, authenticated once, then
/// decided by both engines. Every decision must be identical.
@Suite struct JWTDifferentialTests {
    static let first = TestIssuer("https://auth.test", kid: "a")
    /// An issuer with a `/` and the first one as a prefix: `requestPrincipals` split at the last `/`.
    static let second = TestIssuer("https://auth.test/tenants", kid: "b")

    static let principals = ["*", "https://auth.test/*", "*/alice", "https://auth.test/alice", "https://auth.test/tenants/bob",
                             "https://auth.test/tenants/*", "*", "https://auth.test/tenants", "*bob", "https://auth.test/x/y"]
    static let claimKeys = ["request.auth.claims[org][tenant]", "request.auth.claims[groups]", "request.auth.claims[roles]",
                            "request.auth.claims[scope]", "request.auth.claims[sub]", "request.auth.claims[iss]",
                            "request.auth.claims[org]", "request.auth.claims[level]", "request.auth.audiences",
                            "request.auth.presenter", "request.auth.principal",
                            // Headers jwt_authn changes: the token's (removed) and an output claim header (added).
                            "request.headers[authorization]", "request.headers[x-tenant-out]"]
    static let values = ["acme", "globex", "admins", "dev", "read", "write", "acme*", "*ex", "*", "api", "web",
                         "https://auth.test/alice", "alice", "x/y", "1"]

    static func policies(_ rng: inout SplitMix64) -> String {
        var docs: [String] = []
        for p in 0..<(1 + rng.int(3)) {
            let action = rng.pick(["ALLOW", "ALLOW", "DENY"])
            var rules: [String] = []
            for _ in 0..<(1 + rng.int(3)) {
                var parts: [String] = []
                if rng.chance(50) {
                    let field = rng.chance(75) ? "requestPrincipals" : "notRequestPrincipals"
                    parts.append("  - from: [{source: {\(field): [\(rng.some(principals).map { "\"\($0)\"" }.joined(separator: ", "))]}}]")
                }
                if rng.chance(70) || parts.isEmpty {
                    let conditions = (0..<(1 + rng.int(2))).map { _ -> String in
                        let field = rng.chance(80) ? "values" : "notValues"
                        return "{key: \"\(rng.pick(claimKeys))\", \(field): [\(rng.some(values).map { "\"\($0)\"" }.joined(separator: ", "))]}"
                    }
                    parts.append((parts.isEmpty ? "  - " : "    ") + "when: [\(conditions.joined(separator: ", "))]")
                }
                rules.append(parts.joined(separator: "\n"))
            }
            docs.append("""
                apiVersion: security.istio.io/v1
                kind: AuthorizationPolicy
                metadata: {name: p\(p), namespace: core}
                spec:
                  selector: {matchLabels: {app: api}}
                  action: \(action)
                  rules:
                \(rules.joined(separator: "\n"))
                """)
        }
        docs.append("""
            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata: {name: jwt, namespace: core}
            spec:
              selector: {matchLabels: {app: api}}
              jwtRules:
              - issuer: \(first.issuer)
                jwks: '\(first.jwks)'
                outputClaimToHeaders: [{header: x-tenant-out, claim: org.tenant}]
              - issuer: \(second.issuer)
                jwks: '\(second.jwks)'
                fromHeaders: [{name: x-token}]
                spaceDelimitedClaims: [roles]
            """)
        return docs.joined(separator: "\n---\n")
    }

    static func claims(_ rng: inout SplitMix64) -> String {
        func value(_ rng: inout SplitMix64) -> String {
            switch rng.int(5) {
            case 0: return "\"\(rng.pick(values))\""
            case 1: return "[\(rng.some(values, max: 3).map { "\"\($0)\"" }.joined(separator: ","))]"
            case 2: return "\"\(rng.pick(values)) \(rng.pick(values))\""
            case 3: return "\(rng.int(3))"
            default: return "{\"tenant\":\"\(rng.pick(values))\"}"
            }
        }
        var members: [String] = []
        switch rng.int(5) {
        case 0: break  // no sub
        case 1: members.append(#""sub":"""#)
        default: members.append("\"sub\":\"\(rng.pick(["alice", "bob", "x/y", "tenants/bob"]))\"")
        }
        if rng.chance(60) { members.append(#""org":{"tenant":\#(value(&rng))}"#) }
        for name in ["groups", "roles", "scope", "aud", "azp", "level"] where rng.chance(45) {
            members.append("\"\(name)\":\(value(&rng))")
        }
        return members.joined(separator: ",")
    }

    /// `request` as a gateway sends it (method, path, headers as bytes), with what `result` verified.
    static func gateway(_ request: CheckRequest, _ result: AuthenticationResult, _ body: (GatewayRequest) -> Decision) -> Decision {
        let method = Array((request.request.method ?? "GET").utf8), target = Array((request.request.path ?? "/").utf8)
        let namespace = Array((request.destination.namespace ?? "").utf8)
        let workload = Array(request.destination.labels.map { "\($0.key)=\($0.value)" }.joined(separator: ",").utf8)
        let headers = request.request.headers.map { (Array($0.key.utf8), Array($0.value.utf8)) }
        return withByteViews([method, target, namespace, workload] + headers.flatMap { [$0.0, $0.1] }) { views in
            let fields = (0..<headers.count).map { HeaderField(name: views[4 + 2 * $0], value: views[5 + 2 * $0]) }
            return fields.withUnsafeBufferPointer { fields in
                var gateway = GatewayRequest(method: views[0], target: views[1], host: nil, principal: nil, isMTLS: false,
                                             sourceIP: nil, namespace: views[2], workload: views[3], port: nil, headers: fields)
                let changes = HeaderChanges(removed: result.removedHeaders, added: result.upstreamHeaders)
                return GatewayAuthentication.with(claims: result.identity?.claims, headerChanges: changes) { effect in
                    gateway.authentication = effect
                    return body(gateway)
                }
            }
        }
    }

    @Test func verifiedIdentitiesAgreeWithReference() throws {
        var rng = SplitMix64(seed: 0x6A77_7464_6966_66)
        var compared = 0, gatewayCompared = 0, mismatches = 0, identified = 0, allowed = 0, rejected = 0
        let now = Int64(Date.now.timeIntervalSince1970)
        for setNumber in 0..<150 {
            let set = try PolicyLoader.load([PolicyFile(name: "p.yaml", text: Self.policies(&rng))]).get()
            let check = AuthenticatedCheck(set)
            let reference = ReferenceEvaluator(set)
            let compiled = [CompiledPolicySet(set), CompiledPolicySet(set, options: CompileOptions(indexThreshold: 0))]
            for _ in 0..<25 {
                var headers: [String: String] = [:]
                if rng.chance(70) { headers["authorization"] = "Bearer " + Self.first.token(Self.claims(&rng)) }
                if rng.chance(40) { headers["x-token"] = Self.second.token(Self.claims(&rng)) }
                if rng.chance(5) { headers["x-token"] = "garbage" }
                let request = CheckRequest(destination: .init(namespace: "core", labels: ["app": "api"]),
                                           request: .init(method: "GET", path: "/", headers: headers))
                let (expected, result) = try check.decide(request, now: now, evaluate: reference.evaluate)
                if result?.identity != nil { identified += 1 }
                if expected.allowed { allowed += 1 }
                if expected.stage == .requestAuthentication { rejected += 1 }
                for matcher in compiled {
                    let (actual, _) = try check.decide(request, now: now, evaluate: matcher.evaluate)
                    compared += 1
                    if actual != expected {
                        mismatches += 1
                        if mismatches <= 3 {
                            Issue.record("set #\(setNumber)\nclaims: \(String(describing: result?.identity?.claims))\nreference: \(expected)\ncompiled:  \(actual)")
                        }
                    }
                    // `/ext_authz`'s way: the gateway request read in place, with the payload and the changed headers.
                    guard let result, case .passed = result.verdict else { continue }
                    let actualGateway = Self.gateway(request, result) { matcher.evaluate($0).decision }
                    gatewayCompared += 1
                    if actualGateway != expected {
                        mismatches += 1
                        if mismatches <= 3 {
                            Issue.record("set #\(setNumber) (gateway)\nclaims: \(String(describing: result.identity?.claims))\nreference: \(expected)\ncompiled:  \(actualGateway)")
                        }
                    }
                }
            }
        }
        #expect(mismatches == 0, "\(mismatches) of \(compared + gatewayCompared) decisions differ")
        #expect(compared == 150 * 25 * 2)
        #expect(gatewayCompared > 2 * 2000, "\(gatewayCompared) gateway decisions")
        #expect(identified > 2000 && allowed > 300 && rejected > 50, "identified \(identified), allowed \(allowed), rejected \(rejected)")
        print("jwt differential: \(compared) decisions (and \(gatewayCompared) through the gateway path), \(identified) with a verified identity, \(allowed) allowed, \(rejected) rejected tokens")
    }
}
