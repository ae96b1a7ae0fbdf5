/// The wire form of an `Explanation`: the `explain` member of a `/v1/check?explain=true` answer and of
/// `meshauthz explain --output json` (`openapi.yaml`, schema `Explanation`, describes the same shape).
/// Keys always appear, in this order.
extension Explanation {
    public func writeJSON(into w: inout JSONWriter) {
        w.beginObject()
        w.key("decision"); w.string(decision.allowed ? "ALLOW" : "DENY")
        w.key("stage"); w.string(decision.stage.rawValue)
        w.key("ruleId"); w.optionalString(decision.rule?.description)
        w.key("peerAuthentication")
        w.beginObject()
        w.key("mode"); w.string(peerAuthentication.mode.rawValue)
        w.key("decidedBy"); w.optionalString(peerAuthentication.decidedBy?.description)
        w.key("level"); w.string(peerAuthentication.level.rawValue)
        w.key("mtls"); w.bool(peerAuthentication.mtls)
        w.key("passed"); w.bool(peerAuthentication.passed)
        w.key("reason"); w.string(peerAuthentication.reason)
        w.endObject()
        w.key("policies")
        w.beginArray()
        for policy in policies {
            w.beginObject()
            w.key("policy"); w.string(policy.policy.description)
            w.key("action"); w.string(policy.action.rawValue)
            w.key("dryRun"); w.bool(policy.dryRun)
            w.key("selectedBy"); w.string(policy.selectedBy.rawValue)
            w.key("file"); w.string(policy.file.description)
            w.key("rules")
            w.beginArray()
            for rule in policy.rules {
                w.beginObject()
                w.key("ruleId"); w.string(rule.ruleId.description)
                w.key("matched"); w.bool(rule.matched)
                w.key("fields")
                w.beginArray()
                for field in rule.fields {
                    w.beginObject()
                    w.key("field"); w.string(field.field)
                    w.key("key"); w.optionalString(field.key)
                    w.key("negated"); w.bool(field.negated)
                    w.key("matched"); w.bool(field.matched)
                    w.key("values")
                    w.beginArray()
                    for value in field.values { w.string(value) }
                    w.endArray()
                    w.key("actual")
                    if let actual = field.actual { w.value(actual) } else { w.null() }
                    w.endObject()
                }
                w.endArray()
                w.endObject()
            }
            w.endArray()
            w.endObject()
        }
        w.endArray()
        w.key("notApplicable")
        w.beginArray()
        for entry in notApplicable {
            w.beginObject()
            w.key("policy"); w.string(entry.policy.description)
            w.key("action"); w.string(entry.action.rawValue)
            w.key("cause"); w.string(entry.cause.rawValue)
            w.key("reason"); w.string(entry.reason)
            w.endObject()
        }
        w.endArray()
        w.key("notApplicableCount"); w.number(notApplicableCount)
        w.key("closestMiss"); w.optionalString(closestMiss)
        w.endObject()
    }
}
