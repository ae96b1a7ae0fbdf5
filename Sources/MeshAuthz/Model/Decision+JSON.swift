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
        writeJSON(into: &writer, closing: true)
    }

    /// `closing: false` leaves the object open for more members (`CheckAnswer`).
    func writeJSON(into writer: inout JSONWriter, closing: Bool) {
        // A fixed shape, written as fixed fragments around the escaped values (this is on every answer of
        // `/v1/check` and `/ext_authz`).
        writer.beginObject()
        writer.appendRaw(allowed ? #""allowed":true,"decision":"ALLOW","reason":"# : #""allowed":false,"decision":"DENY","reason":"#)
        writer.appendQuoted(reason)
        if let rule {
            writer.appendRaw(#","policy":"#)
            rule.writePolicy(into: &writer)
            writer.appendRaw(#","rule":"#)
            writer.appendInteger(rule.index)
            writer.appendRaw(#","ruleId":"#)
            writer.appendQuoted(rule.description)
        } else {
            writer.appendRaw(#","policy":null,"rule":null,"ruleId":null"#)
        }
        writer.appendRaw(#","stage":"#)
        writer.appendQuoted(stage.rawValue)
        // A resolved mode is never UNSET (the resolver starts from Istio's PERMISSIVE default); should one
        // reach here it is reported as that default.
        switch mtlsMode {
        case .strict: writer.appendRaw(#","mtlsMode":"STRICT","dryRun":["#)
        case .permissive, .unset: writer.appendRaw(#","mtlsMode":"PERMISSIVE","dryRun":["#)
        case .disable: writer.appendRaw(#","mtlsMode":"DISABLE","dryRun":["#)
        }
        for (position, report) in dryRun.enumerated() {
            writer.appendRaw(position == 0 ? #"{"action":"# : #",{"action":"#)
            writer.appendQuoted(report.action.rawValue)
            writer.appendRaw(#","policy":"#)
            report.writeRuleMembers(into: &writer)
            writer.appendRaw(#","wouldBe":"#)
            writer.appendQuoted(report.wouldBe)
            writer.appendRaw("}")
        }
        writer.appendRaw(#"],"audit":["#)
        for (position, report) in audit.enumerated() {
            writer.appendRaw(position == 0 ? #"{"policy":"# : #",{"policy":"#)
            report.writeRuleMembers(into: &writer)
            writer.appendRaw("}")
        }
        writer.appendRaw("]")
        if closing { writer.endObject() }
    }

    public var jsonBytes: [UInt8] {
        var writer = JSONWriter(capacity: 256 + reason.utf8.count + 160 * (dryRun.count + audit.count))
        writeJSON(into: &writer)
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

    /// `"ns/name","rule":N,"ruleId":"..."` after a `"policy":` the caller wrote.
    func writeRuleMembers(into writer: inout JSONWriter) {
        rule.writePolicy(into: &writer)
        writer.appendRaw(#","rule":"#)
        writer.appendInteger(rule.index)
        writer.appendRaw(#","ruleId":"#)
        writer.appendQuoted(rule.description)
    }
}

extension RuleID {
    /// `"namespace/name"`, without building the string.
    func writePolicy(into writer: inout JSONWriter) {
        writer.appendRaw("\"")
        writer.appendEscaped(policy.namespace)
        writer.appendRaw("/")
        writer.appendEscaped(policy.name)
        writer.appendRaw("\"")
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
