import Foundation
import MeshAuthz
import Yams

/// The conformance and oracle cases under Tests/fixtures: policies plus checks with expected decisions.
struct FixtureCase: CustomStringConvertible {
    struct Check {
        let request: CheckRequest
        let expectAllowed: Bool
        /// `expect: UNAUTHENTICATED` (jwt-oracle): Envoy's jwt_authn 401, a DENY at stage request-authentication.
        let expectUnauthenticated: Bool
        let why: String
        /// The optional `expect*` keys (`expectStage`, `expectPolicy`, ...) as text, as the e2e harness reads them;
        /// `expectReasonContains` and `expectDryRun` as lists.
        let expectations: [String: String]
        let reasonContains: [String]
        let dryRun: [[String: String]]

        /// What in `decision` contradicts the check's expectations (empty: it agrees with all of them).
        func mismatches(_ decision: Decision) -> [String] {
            var problems: [String] = []
            if decision.allowed != expectAllowed { problems.append("decision \(decision.allowed ? "ALLOW" : "DENY")") }
            if expectUnauthenticated && decision.stage != .requestAuthentication {
                problems.append("stage \(decision.stage.rawValue), not request-authentication")
            }
            let actual: [String: String?] = [
                "expectStage": decision.stage.rawValue,
                "expectPolicy": decision.rule.map { "\($0.policy.namespace)/\($0.policy.name)" },
                "expectRule": decision.rule.map { "\($0.index)" },
                "expectRuleId": decision.rule?.description,
                "expectMtlsMode": decision.mtlsMode.rawValue,
            ]
            for (key, expected) in expectations.sorted(by: { $0.key < $1.key }) {
                guard let value = actual[key] else {
                    problems.append("\(key) is not an expectation this runner knows")
                    continue
                }
                if (value ?? "null") != expected { problems.append("\(key): \(value ?? "null") != \(expected)") }
            }
            for text in reasonContains where !decision.reason.contains(text) { problems.append("reason lacks \(text)") }
            for want in dryRun {
                let found = decision.dryRun.contains { report in
                    let fields = ["action": report.action.rawValue,
                                  "policy": "\(report.rule.policy.namespace)/\(report.rule.policy.name)",
                                  "rule": "\(report.rule.index)", "ruleId": report.rule.description, "wouldBe": report.wouldBe]
                    // An unknown key never matches: the check fails loudly.
                    return want.allSatisfy { fields[$0.key] == $0.value }
                }
                if !found { problems.append("dryRun lacks \(want)") }
            }
            return problems
        }
    }

    /// Every key a check may have; anything else is a typo that would make a check silently weaker.
    static let checkKeys: Set<String> = [
        "source", "destination", "request", "connection", "expect", "why", "name",
        "expectStage", "expectPolicy", "expectRule", "expectRuleId", "expectMtlsMode", "expectReasonContains", "expectDryRun",
    ]

    struct InvalidCheck: Error, CustomStringConvertible {
        let description: String
    }

    let file: String
    let policyFiles: [PolicyFile]
    let checks: [Check]

    var description: String { file }

    static let fixturesDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fixtures")

    static func all(in subdirectories: [String] = ["conformance", "oracle", "oracle/derived", "local", "istio-integration"]) throws -> [FixtureCase] {
        var cases: [FixtureCase] = []
        for subdirectory in subdirectories {
            let directory = fixturesDirectory.appendingPathComponent(subdirectory)
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { continue }
            for name in names.sorted() where name.hasSuffix(".yaml") {
                let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
                cases.append(try FixtureCase(file: "\(subdirectory)/\(name)", text: text))
            }
        }
        return cases
    }

    init(file: String, text: String) throws {
        self.file = file
        let root = try Yams.load(yaml: text) as? [String: Any] ?? [:]
        let policies = root["policies"] as? [Any] ?? []
        let stream = try policies.map { try Yams.dump(object: $0) }.joined(separator: "---\n")
        policyFiles = policies.isEmpty ? [] : [PolicyFile(name: "policies.yaml", text: stream)]
        checks = try (root["checks"] as? [[String: Any]] ?? []).enumerated().map { index, check in
            let unknown = Set(check.keys).subtracting(FixtureCase.checkKeys)
            guard unknown.isEmpty else { throw InvalidCheck(description: "\(file) check \(index): unknown keys \(unknown.sorted())") }
            guard let expect = check["expect"] as? String, ["ALLOW", "DENY", "UNAUTHENTICATED"].contains(expect) else {
                throw InvalidCheck(description: "\(file) check \(index): expect must be ALLOW, DENY or UNAUTHENTICATED")
            }
            // Judged as /v1/check judges it: on the path the sidecar sees (Istio's default BASE normalization).
            let request = try FixtureCase.request(check).normalizingPath(.base).request
            let scalars = ["expectStage", "expectPolicy", "expectRule", "expectRuleId", "expectMtlsMode"]
            return Check(request: request, expectAllowed: expect == "ALLOW", expectUnauthenticated: expect == "UNAUTHENTICATED", why: check["why"] as? String ?? "",
                         expectations: check.filter { scalars.contains($0.key) }.mapValues { "\($0)" },
                         reasonContains: check["expectReasonContains"] as? [String] ?? [],
                         dryRun: (check["expectDryRun"] as? [[String: Any]] ?? []).map { $0.mapValues { "\($0)" } })
        }
    }

    static func request(_ check: [String: Any]) -> CheckRequest {
        let source = check["source"] as? [String: Any] ?? [:]
        let destination = check["destination"] as? [String: Any] ?? [:]
        let request = check["request"] as? [String: Any] ?? [:]
        let connection = check["connection"] as? [String: Any] ?? [:]
        func string(_ dict: [String: Any], _ key: String) -> String? { dict[key].map { "\($0)" } }
        return CheckRequest(
            source: .init(principal: string(source, "principal"), namespace: string(source, "namespace"),
                          ip: string(source, "ip").flatMap(IPAddress.init), remoteIP: string(source, "remoteIp").flatMap(IPAddress.init),
                          requestPrincipal: string(source, "requestPrincipal"), mtls: source["mtls"] as? Bool),
            destination: .init(namespace: string(destination, "namespace"),
                               labels: (destination["labels"] as? [String: Any] ?? [:]).mapValues { "\($0)" },
                               port: destination["port"] as? Int, ip: string(destination, "ip").flatMap(IPAddress.init)),
            request: .init(method: string(request, "method"), path: string(request, "path"), host: string(request, "host"),
                           headers: (request["headers"] as? [String: Any] ?? [:]).mapValues { "\($0)" },
                           claims: (request["claims"] as? [String: Any]).map { $0.mapValues(json) }),
            connection: .init(sni: string(connection, "sni")))
    }

    static func json(_ value: Any) -> JSONValue {
        switch value {
        case let s as String: return .string(s)
        case let b as Bool: return .bool(b)
        case let i as Int: return .number(Double(i))
        case let d as Double: return .number(d)
        case let a as [Any]: return .array(a.map(json))
        case let o as [String: Any]: return .object(o.mapValues(json))
        default: return .null
        }
    }
}
