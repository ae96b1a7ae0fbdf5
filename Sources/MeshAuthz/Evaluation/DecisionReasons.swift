/// The `reason` texts of a `Decision`, in one place so that the reference evaluator and the compiled
/// matcher say exactly the same thing (the differential test compares them byte for byte).
public enum DecisionReasons {
    /// Step 1: a STRICT PeerAuthentication refused a plaintext connection.
    public static func strictPlaintext(decidedBy: ResourceID?) -> String {
        let by = decidedBy.map { " (PeerAuthentication \($0))" } ?? ""
        return "mTLS mode is STRICT\(by) and the connection is plaintext"
    }

    /// Step 3: a CUSTOM rule matched; meshauthz cannot consult the provider and fails closed.
    public static func custom(rule: RuleID, provider: String) -> String {
        "CUSTOM rule \(rule) matched; its provider \"\(provider)\" cannot be consulted by meshauthz, so the request is denied (fail closed)"
    }

    /// Step 4: a DENY rule matched.
    public static func deny(rule: RuleID) -> String { "denied by DENY rule \(rule)" }

    /// Step 5: no enforced ALLOW policy applies.
    public static let noAllowPolicy = "no ALLOW policy applies to the workload, so nothing is required"

    /// Step 5: an ALLOW rule matched.
    public static func allow(rule: RuleID) -> String { "allowed by ALLOW rule \(rule)" }

    /// Step 5: ALLOW policies apply (named in evaluation order) and none of their rules matched.
    public static func defaultDeny<S: Sequence>(allowPolicies: S) -> String where S.Element == ResourceID {
        let names = allowPolicies.map(\.description).joined(separator: ", ")
        return "no rule of the ALLOW policies that apply (\(names)) matched"
    }
}
