/// The answer to a `CheckRequest`, with what a person needs to understand it.
public struct Decision: Sendable, Hashable {
    /// Which step of Istio's evaluation settled the answer.
    public enum Stage: String, Sendable, Hashable {
        /// A STRICT PeerAuthentication refused a plaintext connection.
        case peerAuthentication = "peer-authentication"
        /// A CUSTOM rule matched; meshauthz cannot consult the provider and denies.
        case custom = "custom"
        case denyPolicy = "deny-policy"
        case allowPolicy = "allow-policy"
        /// The workload has no enforced ALLOW policy, so nothing is required of the request.
        case noAllowPolicy = "no-allow-policy"
        /// ALLOW policies exist and none matched.
        case defaultDeny = "default-deny"
        /// No valid policy set is loaded (fail closed).
        case notReady = "not-ready"
    }

    /// A match in a policy that does not change the decision (dry-run or AUDIT).
    public struct Report: Sendable, Hashable {
        public let action: Action
        public let rule: RuleID
        public init(action: Action, rule: RuleID) {
            self.action = action
            self.rule = rule
        }
    }

    public var allowed: Bool
    public var stage: Stage
    public var reason: String
    /// The rule that settled the decision, when one did.
    public var rule: RuleID?
    public var mtlsMode: MTLSMode
    /// Dry-run policies whose rule matched (what they would have done).
    public var dryRun: [Report]
    /// AUDIT policies whose rule matched.
    public var audit: [Report]

    public init(allowed: Bool, stage: Stage, reason: String, rule: RuleID? = nil, mtlsMode: MTLSMode,
                dryRun: [Report] = [], audit: [Report] = []) {
        self.allowed = allowed
        self.stage = stage
        self.reason = reason
        self.rule = rule
        self.mtlsMode = mtlsMode
        self.dryRun = dryRun
        self.audit = audit
    }

    public static func notReady(_ why: String) -> Decision {
        Decision(allowed: false, stage: .notReady, reason: "no valid policy set is loaded: \(why)", mtlsMode: .strict)
    }
}
