import Yams

/// One check of a policy test file: a request in the shape of `POST /v1/check`, and what its answer must be.
public struct PolicyTestCheck: Sendable {
    /// One optional `expect*` key, typed: a value that could never match (an unknown stage) is refused at load.
    public enum Expectation: Sendable, Hashable {
        case stage(Decision.Stage)
        /// `namespace/name` of the deciding policy (`null`: none decided).
        case policy(String?)
        case rule(Int?)
        case ruleId(String?)
        case mtlsMode(MTLSMode)
        case reasonContains(String)
        /// A dry-run report with these members (`action`, `policy`, `rule`, `ruleId`, `wouldBe`).
        case dryRun([String: String])
    }

    public let index: Int
    public let name: String?
    public let location: SourceLocation
    public let request: CheckRequest
    public let expectAllowed: Bool
    public let expectations: [Expectation]

    /// `#3 frontend may GET`, or `#3` without a name.
    public var displayName: String { name.map { "#\(index) \($0)" } ?? "#\(index)" }

    static let requestKeys: Set<String> = ["source", "destination", "request", "connection"]
    static let keys: Set<String> = requestKeys.union([
        "name", "why", "expect", "expectStage", "expectPolicy", "expectRule", "expectRuleId", "expectMtlsMode",
        "expectReasonContains", "expectDryRun",
    ])
    static let dryRunKeys: Set<String> = ["action", "policy", "rule", "ruleId", "wouldBe"]

    /// What contradicts the check in `decision`; empty when it passes.
    public func failures(_ decision: Decision) -> [String] {
        var out: [String] = []
        let verdict = { (allowed: Bool) in allowed ? "ALLOW" : "DENY" }
        if decision.allowed != expectAllowed {
            out.append("expected \(verdict(expectAllowed)), got \(verdict(decision.allowed)) (\(decision.stage.rawValue): \(decision.reason))")
        }
        for expectation in expectations {
            switch expectation {
            case .stage(let stage) where decision.stage != stage:
                out.append("expected stage \(stage.rawValue), got \(decision.stage.rawValue)")
            case .policy(let policy) where decision.rule?.policy.description != policy:
                out.append("expected policy \(policy ?? "null"), got \(decision.rule?.policy.description ?? "null")")
            case .rule(let rule) where decision.rule?.index != rule:
                out.append("expected rule \(rule.map(String.init) ?? "null"), got \(decision.rule.map { String($0.index) } ?? "null")")
            case .ruleId(let ruleId) where decision.rule?.description != ruleId:
                out.append("expected rule id \(ruleId ?? "null"), got \(decision.rule?.description ?? "null")")
            case .mtlsMode(let mode) where decision.mtlsMode != mode:
                out.append("expected mTLS mode \(mode.rawValue), got \(decision.mtlsMode.rawValue)")
            case .reasonContains(let text) where !decision.reason.contains(text):
                out.append("expected the reason to contain \"\(text)\", got \"\(decision.reason)\"")
            case .dryRun(let want):
                let found = decision.dryRun.contains { report in
                    let have = ["action": report.action.rawValue, "policy": report.rule.policy.description,
                                "rule": String(report.rule.index), "ruleId": report.rule.description, "wouldBe": report.wouldBe]
                    return want.allSatisfy { have[$0.key] == $0.value }
                }
                if !found {
                    let wanted = want.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
                    out.append("expected a dry-run report {\(wanted)}, got \(decision.dryRun.map(\.rule.description))")
                }
            case .stage, .policy, .rule, .ruleId, .mtlsMode, .reasonContains:
                continue
            }
        }
        return out
    }

    // MARK: Reading

    static func parse(_ node: Node, index: Int, _ r: YAMLReader) -> PolicyTestCheck? {
        let path = "checks[\(index)]"
        guard let entries = r.mapping(node, path, allowed: keys) else { return nil }
        let before = r.errors.count
        var requestMembers: [String: JSONValue] = [:]
        var name: String?
        var expect: Bool?
        var expectations: [Expectation] = []
        for (key, value) in entries {
            let field = "\(path).\(key)"
            if requestKeys.contains(key) {
                if let json = jsonValue(value, field, r) { requestMembers[key] = json }
                continue
            }
            switch key {
            case "name": name = r.string(value, field)
            case "why": _ = r.string(value, field)
            case "expect":
                switch r.string(value, field) {
                case "ALLOW"?: expect = true
                case "DENY"?: expect = false
                // jwt-oracle's third value: the token is refused before any policy (Envoy's 401).
                case "UNAUTHENTICATED"?:
                    expect = false
                    expectations.append(.stage(.requestAuthentication))
                case let other?: r.fail(.invalidValue, value, field, "expect must be ALLOW, DENY or UNAUTHENTICATED, not \"\(other)\"")
                case nil: break
                }
            case "expectStage":
                guard let text = r.string(value, field) else { break }
                guard let stage = Decision.Stage(rawValue: text) else {
                    r.fail(.invalidValue, value, field, "unknown stage \"\(text)\"; expected one of: "
                           + ["request-authentication", "peer-authentication", "custom", "deny-policy", "allow-policy", "no-allow-policy",
                              "default-deny", "not-ready"].joined(separator: ", "))
                    break
                }
                expectations.append(.stage(stage))
            case "expectPolicy": expectations.append(.policy(r.isNull(value) ? nil : r.string(value, field)))
            case "expectRuleId": expectations.append(.ruleId(r.isNull(value) ? nil : r.string(value, field)))
            case "expectRule":
                if r.isNull(value) { expectations.append(.rule(nil)); break }
                guard let text = r.string(value, field), let rule = Int(text), rule >= 0 else {
                    r.fail(.invalidValue, value, field, "expectRule is a rule index (0, 1, ...) or null")
                    break
                }
                expectations.append(.rule(rule))
            case "expectMtlsMode":
                guard let text = r.string(value, field) else { break }
                guard let mode = MTLSMode(rawValue: text), mode != .unset else {
                    r.fail(.invalidValue, value, field, "expectMtlsMode is STRICT, PERMISSIVE or DISABLE")
                    break
                }
                expectations.append(.mtlsMode(mode))
            case "expectReasonContains":
                expectations += r.strings(value, field).map { .reasonContains($0.value) }
            case "expectDryRun":
                for (position, item) in (r.sequence(value, field) ?? []).enumerated() {
                    let members = r.stringMap(item, "\(field)[\(position)]")
                    if let unknown = members.keys.sorted().first(where: { !dryRunKeys.contains($0) }) {
                        r.fail(.unknownField, item, "\(field)[\(position)].\(unknown)",
                               "unknown dry-run member; expected one of: " + dryRunKeys.sorted().joined(separator: ", "))
                    }
                    expectations.append(.dryRun(members))
                }
            default:
                preconditionFailure("key \(key) passed the allowed set but has no reader")
            }
        }
        if expect == nil && entries.allSatisfy({ $0.key != "expect" }) {
            r.fail(.missingField, node, "\(path).expect", "every check needs expect: ALLOW, DENY or UNAUTHENTICATED")
        }
        // The request is read by /v1/check's own decoder, so a test means what the endpoint would mean.
        let request: CheckRequest
        do {
            guard case .single(let one) = try CheckRequest.decodeBody(JSONValue.object(requestMembers).jsonBytes) else {
                preconditionFailure("an object decodes to a single request")
            }
            request = one
        } catch {
            r.fail(.invalidValue, node, error.field.map { "\(path).\($0)" } ?? path, error.message)
            return nil
        }
        guard r.errors.count == before, let expect else { return nil }
        return PolicyTestCheck(index: index, name: name, location: r.location(node), request: request,
                               expectAllowed: expect, expectations: expectations)
    }

    /// A YAML value as the JSON `/v1/check` would receive: plain scalars typed as YAML 1.1 reads them (as the
    /// conformance runner's PyYAML does), quoted ones strings.
    static func jsonValue(_ node: Node, _ field: String, _ r: YAMLReader) -> JSONValue? {
        switch node {
        case .scalar(let scalar):
            if scalar.style != .plain { return .string(scalar.string) }
            if r.isNull(node) { return .null }
            if let flag = node.bool { return .bool(flag) }
            if let integer = node.int { return .number(Double(integer)) }
            if let number = node.float, number.isFinite { return .number(number) }
            return .string(scalar.string)
        case .sequence(let sequence):
            var items: [JSONValue] = []
            for (index, item) in sequence.enumerated() {
                guard let value = jsonValue(item, "\(field)[\(index)]", r) else { return nil }
                items.append(value)
            }
            return .array(items)
        case .mapping:
            var members: [String: JSONValue] = [:]
            for (key, value) in r.mapping(node, field) ?? [] {
                guard let json = jsonValue(value, r.join(field, key), r) else { return nil }
                members[key] = json
            }
            return .object(members)
        case .alias:
            r.fail(.wrongType, node, field, "aliases are not supported in checks")
            return nil
        }
    }
}
