/// The wire form of decisions and request errors (`POST /v1/check`, `meshauthz check`):
///
///     {"allowed": bool, "decision": "ALLOW"|"DENY", "reason": str, "policy": "ns/name"|null,
///      "rule": int|null, "ruleId": str|null, "stage": str, "mtlsMode": "STRICT"|"PERMISSIVE"|"DISABLE",
///      "dryRun": [{"action": str, "policy": "ns/name", "rule": int, "ruleId": str, "wouldBe": str}],
///      "audit": [{"policy": "ns/name", "rule": int, "ruleId": str}]}
///
/// Keys always appear, in this order; `openapi.yaml` describes the same shape.
extension Decision {
    public func writeJSON(into writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("allowed")
        writer.bool(allowed)
        writer.key("decision")
        writer.string(allowed ? "ALLOW" : "DENY")
        writer.key("reason")
        writer.string(reason)
        writer.key("policy")
        if let rule { writer.string(rule.policy.description) } else { writer.null() }
        writer.key("rule")
        if let rule { writer.number(rule.index) } else { writer.null() }
        writer.key("ruleId")
        if let rule { writer.string(rule.description) } else { writer.null() }
        writer.key("stage")
        writer.string(stage.rawValue)
        writer.key("mtlsMode")
        writer.string(mtlsMode.wireName)
        writer.key("dryRun")
        writer.beginArray()
        for report in dryRun {
            writer.beginObject()
            writer.key("action")
            writer.string(report.action.rawValue)
            report.writeRuleMembers(into: &writer)
            writer.key("wouldBe")
            writer.string(report.wouldBe)
            writer.endObject()
        }
        writer.endArray()
        writer.key("audit")
        writer.beginArray()
        for report in audit {
            writer.beginObject()
            report.writeRuleMembers(into: &writer)
            writer.endObject()
        }
        writer.endArray()
        writer.endObject()
    }

    public var jsonBytes: [UInt8] {
        var writer = JSONWriter(capacity: 256 + reason.utf8.count + 160 * (dryRun.count + audit.count))
        writeJSON(into: &writer)
        return writer.bytes
    }

    /// A batch answer: the decisions as one JSON array, in order.
    public static func jsonBytes(_ decisions: [Decision]) -> [UInt8] {
        var writer = JSONWriter(capacity: 2 + 320 * decisions.count)
        writer.beginArray()
        for decision in decisions { decision.writeJSON(into: &writer) }
        writer.endArray()
        return writer.bytes
    }
}

extension Decision.Report {
    /// What the matched policy would have done had it been enforced: a DENY policy's match would deny,
    /// an ALLOW policy's match would allow, an AUDIT match only audits ("AUDIT"), and a CUSTOM match
    /// would deny here, since meshauthz cannot consult the external provider and fails closed.
    public var wouldBe: String {
        switch action {
        case .allow: return "ALLOW"
        case .deny, .custom: return "DENY"
        case .audit: return "AUDIT"
        }
    }

    func writeRuleMembers(into writer: inout JSONWriter) {
        writer.key("policy")
        writer.string(rule.policy.description)
        writer.key("rule")
        writer.number(rule.index)
        writer.key("ruleId")
        writer.string(rule.description)
    }
}

extension MTLSMode {
    /// The effective mode as reported. A resolved mode is never UNSET (the resolver starts from Istio's
    /// PERMISSIVE default); should an UNSET reach here it is reported as that default.
    var wireName: String {
        switch self {
        case .strict: return "STRICT"
        case .permissive, .unset: return "PERMISSIVE"
        case .disable: return "DISABLE"
        }
    }
}

extension RequestError {
    public func writeJSON(into writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("error")
        writer.beginObject()
        writer.key("code")
        writer.string(code)
        writer.key("message")
        writer.string(message)
        writer.key("field")
        writer.optionalString(field)
        writer.endObject()
        writer.endObject()
    }

    /// `{"error": {"code": ..., "message": ..., "field": ...|null}}`
    public var jsonBytes: [UInt8] {
        var writer = JSONWriter(capacity: 64 + message.utf8.count + (field?.utf8.count ?? 4))
        writeJSON(into: &writer)
        return writer.bytes
    }
}
