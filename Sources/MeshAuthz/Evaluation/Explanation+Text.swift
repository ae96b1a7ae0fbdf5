/// The text form of an `Explanation` (`meshauthz explain`, failures of `meshauthz test`): what a person reads
/// at 3 a.m. One line for the decision, one for peer authentication, one per policy and per rule, one per
/// field with ✔ or ✘, the policies that do not apply, and last the closest miss.
///
///     DENY (default-deny): no rule of the ALLOW policies that apply (default/api-policy) matched
///     ✔ peer authentication: mTLS mode STRICT (PeerAuthentication default/default, namespace level); ...
///     ALLOW default/api-policy (selector, policies/default.yaml:12:1)
///       ✘ ns[default]-policy[api-policy]-rule[0]
///           ✘ from[0].source.principals: [cluster.local/ns/default/sa/frontend-sa], request: cluster.local/ns/default/sa/batch-sa
///           ✔ to[0].operation.methods: [GET, POST], request: GET
///     closest miss: rule ns[default]-policy[api-policy]-rule[0] would allow if source.principals contained ...
extension Explanation {
    public func text(indent: String = "") -> String {
        var lines: [String] = []
        let mark = { (ok: Bool) in ok ? "✔" : "✘" }
        let verdict = decision.allowed ? "ALLOW" : "DENY"
        lines.append("\(verdict) (\(decision.stage.rawValue)): \(decision.reason)")
        lines.append("\(mark(peerAuthentication.passed)) peer authentication: \(peerAuthentication.reason)")
        if policies.isEmpty { lines.append("no AuthorizationPolicy applies to this destination") }
        for policy in policies {
            var notes = [policy.selectedBy.rawValue]
            if policy.dryRun { notes.append("dry-run: reported, not enforced") }
            if policy.action == .audit { notes.append("audit only") }
            notes.append(policy.file.description)
            lines.append("\(policy.action.rawValue) \(policy.policy) (\(notes.joined(separator: ", ")))")
            if policy.rules.isEmpty { lines.append("    no rules: it matches no request") }
            for rule in policy.rules {
                let what = rule.fields.isEmpty ? " (no constraint: matches every request)" : ""
                lines.append("  \(mark(rule.matched)) \(rule.ruleId)\(what)")
                for field in rule.fields {
                    let name = field.key.map { "\(field.field) \($0)" } ?? field.field
                    let actual = field.actual.map(ClosestMiss.text) ?? "absent"
                    let values = "[" + field.values.joined(separator: ", ") + "]"
                    lines.append("      \(mark(field.matched)) \(name): \(field.negated ? "none of " : "")\(values), request: \(actual)")
                }
            }
        }
        if notApplicableCount > 0 {
            // Policies of other namespaces are the usual many: one line for them; the near misses (a selector
            // or targetRefs that did not select this workload, where typos hide) one line each.
            let elsewhere = notApplicable.filter { $0.cause == .namespace }
            let near = notApplicable.filter { $0.cause != .namespace }
            let unlisted = notApplicableCount - notApplicable.count
            lines.append("not applicable: \(notApplicableCount) polic\(notApplicableCount == 1 ? "y" : "ies")"
                         + (unlisted > 0 ? " (\(unlisted) not listed; --output json lists \(notApplicable.count))" : ""))
            for entry in near { lines.append("  - \(entry.action.rawValue) \(entry.policy): \(entry.reason)") }
            if !elsewhere.isEmpty {
                var namespaces: [String] = []
                for entry in elsewhere where !namespaces.contains(entry.policy.namespace) { namespaces.append(entry.policy.namespace) }
                lines.append("  - \(elsewhere.count) in other namespaces (\(namespaces.joined(separator: ", ")))")
            }
        }
        if let closestMiss { lines.append("closest miss: \(closestMiss)") }
        return lines.map { indent + $0 }.joined(separator: "\n") + "\n"
    }
}
