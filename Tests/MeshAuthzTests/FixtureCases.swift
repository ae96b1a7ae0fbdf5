import Foundation
import MeshAuthz
import Yams

/// The conformance and oracle cases under Tests/fixtures: policies plus checks with expected decisions.
struct FixtureCase: CustomStringConvertible {
    struct Check {
        let request: CheckRequest
        let expectAllowed: Bool
        let why: String
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
        checks = (root["checks"] as? [[String: Any]] ?? []).map { check in
            // Judged as /v1/check judges it: on the path the sidecar sees (Istio's default BASE normalization).
            Check(request: (try? FixtureCase.request(check).normalizingPath(.base).request) ?? FixtureCase.request(check),
                  expectAllowed: (check["expect"] as? String) == "ALLOW",
                  why: check["why"] as? String ?? "")
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
