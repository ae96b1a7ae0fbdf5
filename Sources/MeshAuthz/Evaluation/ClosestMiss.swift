/// The last line of an explanation: for a denial, the smallest change to the request that the policies would
/// have accepted, in words ("rule ns[default]-policy[api-policy]-rule[0] would allow if source.principals
/// contained cluster.local/ns/default/sa/batch-sa"). A hint for a person, never an input to a decision.
enum ClosestMiss {
    static func describe(decision: Decision, peer: Explanation.PeerAuthenticationStep,
                         policies: [Explanation.PolicyTrace]) -> String? {
        switch decision.stage {
        case .allowPolicy, .noAllowPolicy, .notReady:
            return nil
        case .requestAuthentication:
            return "the request would need a valid token for the RequestAuthentication that applies"
        case .peerAuthentication:
            let by = peer.decidedBy.map { " (PeerAuthentication \($0) sets STRICT)" } ?? ""
            return "the request would get past peer authentication over mTLS\(by)"
        case .custom, .denyPolicy:
            guard let rule = decision.rule,
                  let trace = policies.lazy.flatMap(\.rules).first(where: { $0.ruleId == rule }) else { return nil }
            let held = trace.fields.filter(\.matched)
            if held.isEmpty { return "rule \(rule) has no constraint: it matches every request of this workload" }
            return "rule \(rule) would not match if any of these changed: "
                + held.map(phrase(holding:)).joined(separator: "; ")
        case .defaultDeny:
            var best: (rule: RuleID, misses: [Explanation.FieldTrace])?
            for policy in policies where policy.action == .allow && !policy.dryRun {
                for rule in policy.rules {
                    let misses = fewestMisses(rule)
                    if best == nil || misses.count < best!.misses.count { best = (rule.ruleId, misses) }
                }
            }
            guard let best else { return "the ALLOW policies that apply have no rules: nothing can be allowed" }
            return "rule \(best.rule) would allow if " + best.misses.map(phrase(missing:)).joined(separator: " and ")
        }
    }

    /// The failed constraints of the cheapest way to match `rule`: every failed `when`, plus, for `from` and
    /// for `to`, the alternative with the fewest failures (one alternative of each must hold entirely).
    static func fewestMisses(_ rule: Explanation.RuleTrace) -> [Explanation.FieldTrace] {
        var alternatives: [String: [Explanation.FieldTrace]] = [:]
        var order: [String] = []
        var misses: [Explanation.FieldTrace] = []
        for field in rule.fields {
            if field.field.hasPrefix("when[") {
                if !field.matched { misses.append(field) }
                continue
            }
            let alternative = String(field.field.prefix { $0 != "." })
            if alternatives[alternative] == nil { order.append(alternative) }
            alternatives[alternative, default: []].append(field)
        }
        for part in ["from[", "to["] {
            let candidates = order.filter { $0.hasPrefix(part) }.map { alternatives[$0]!.filter { !$0.matched } }
            if let cheapest = candidates.min(by: { $0.count < $1.count }) { misses = cheapest + misses }
        }
        return misses
    }

    static func phrase(missing field: Explanation.FieldTrace) -> String {
        guard let actual = field.actual else {
            return field.negated
                ? "\(field.attribute) were present (the request has none)"
                : "the request had \(field.attribute) (one of \(field.values.joined(separator: ", ")); it has none)"
        }
        return field.negated ? "\(field.attribute) did not contain \(text(actual))" : "\(field.attribute) contained \(text(actual))"
    }

    static func phrase(holding field: Explanation.FieldTrace) -> String {
        let actual = field.actual.map(text) ?? "absent"
        return field.negated ? "\(field.attribute) is \(actual), not one of the excluded values"
            : "\(field.attribute) is \(actual)"
    }

    /// A JSON value as a person reads it: strings bare, integers without `.0`, the rest as JSON.
    static func text(_ value: JSONValue) -> String {
        switch value {
        case .string(let s): return s
        case .number(let n) where n == n.rounded() && abs(n) < 1e15: return String(Int(n))
        case .null, .bool, .number, .array, .object: return String(decoding: value.jsonBytes, as: UTF8.self)
        }
    }
}
