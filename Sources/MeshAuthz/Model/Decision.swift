/// The answer to a `CheckRequest`, with what a person needs to understand it.
public struct Decision: Sendable, Hashable {
    /// Which step of Istio's evaluation settled the answer.
    public enum Stage: String, Sendable, Hashable {
        /// A STRICT PeerAuthentication refused a plaintext connection.
        case peerAuthentication = "peer-authentication"
        /// A RequestAuthentication rejected the request's token (Envoy's jwt_authn: 401, or 403 for an audience).
        case requestAuthentication = "request-authentication"
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
    public var mtlsMode: MTLSMode
    /// Reason, rule and reports live in one immutable shared object: a decision is then three bytes and
    /// one reference, and returning one retains a single object instead of three or four strings and
    /// arrays (each in its own cache line). The compiled matcher keeps one per rule and hands it out.
    var details: Details

    public var reason: String {
        get { details.reason }
        set { details = Details(reason: newValue, rule: details.rule, dryRun: details.dryRun, audit: details.audit) }
    }
    /// The rule that settled the decision, when one did.
    public var rule: RuleID? {
        get { details.rule }
        set { details = Details(reason: details.reason, rule: newValue, dryRun: details.dryRun, audit: details.audit) }
    }
    /// Dry-run policies whose rule matched (what they would have done).
    public var dryRun: [Report] {
        get { details.dryRun }
        set { details = Details(reason: details.reason, rule: details.rule, dryRun: newValue, audit: details.audit) }
    }
    /// AUDIT policies whose rule matched.
    public var audit: [Report] {
        get { details.audit }
        set { details = Details(reason: details.reason, rule: details.rule, dryRun: details.dryRun, audit: newValue) }
    }
    /// Whether any dry-run or AUDIT rule matched (one load: this is asked of every decision the server counts).
    public var hasReports: Bool { details.hasReports }

    public init(allowed: Bool, stage: Stage, reason: String, rule: RuleID? = nil, mtlsMode: MTLSMode,
                dryRun: [Report] = [], audit: [Report] = []) {
        self.init(allowed: allowed, stage: stage, mtlsMode: mtlsMode,
                  details: Details(reason: reason, rule: rule, dryRun: dryRun, audit: audit))
    }

    init(allowed: Bool, stage: Stage, mtlsMode: MTLSMode, details: Details) {
        self.allowed = allowed
        self.stage = stage
        self.mtlsMode = mtlsMode
        self.details = details
    }

    /// What a decision says besides its verdict. Compared and hashed by value.
    final class Details: Sendable, Hashable {
        let reason: String
        let rule: RuleID?
        let dryRun: [Report]
        let audit: [Report]
        let hasReports: Bool

        init(reason: String, rule: RuleID? = nil, dryRun: [Report] = [], audit: [Report] = []) {
            self.reason = reason
            self.rule = rule
            self.dryRun = dryRun
            self.audit = audit
            hasReports = !dryRun.isEmpty || !audit.isEmpty
        }

        static func == (a: Details, b: Details) -> Bool {
            a === b || (a.reason == b.reason && a.rule == b.rule && a.dryRun == b.dryRun && a.audit == b.audit)
        }

        func hash(into hasher: inout Hasher) {
            hasher.combine(reason)
            hasher.combine(rule)
            hasher.combine(dryRun)
            hasher.combine(audit)
        }
    }

    public static func notReady(_ why: String) -> Decision {
        Decision(allowed: false, stage: .notReady, reason: "no valid policy set is loaded: \(why)", mtlsMode: .strict)
    }
}
