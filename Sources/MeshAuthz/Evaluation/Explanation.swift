/// Why a request got its decision, field by field: what `POST /v1/check?explain=true`, `meshauthz explain`
/// and `meshauthz test` show. Built by `ReferenceEvaluator.explain`, which walks the same semantics as
/// `evaluate` (a test holds every rule's `matched` to the evaluator's own match, and the explained decision
/// to the compiled matcher's on every fixture check). Only computed when asked: never on the decision path.
public struct Explanation: Sendable, Hashable {
    /// The reference evaluator's decision for the request (the one served may come from the compiled matcher;
    /// they agree, and `explain.decision` in the answer lets anyone check it).
    public var decision: Decision
    public var peerAuthentication: PeerAuthenticationStep
    /// Every AuthorizationPolicy that applies to the destination, in evaluation order: CUSTOM, DENY, ALLOW,
    /// then AUDIT; within an action by rule id order (Envoy's). Dry-run policies are listed with their action.
    public var policies: [PolicyTrace]
    /// Policies that exist but do not apply to the destination, with why, at most `notApplicableLimit`.
    public var notApplicable: [NotApplicable]
    /// How many policies do not apply (`notApplicable` may show fewer).
    public var notApplicableCount: Int
    /// For a denial, the enforced ALLOW rule (or the escape from the deciding DENY rule) that needs the fewest
    /// changes to the request, in words; nil when allowed or when there is none.
    public var closestMiss: String?

    public static let notApplicableLimit = 50

    /// Which PeerAuthentication decided the mTLS mode, and whether the connection passed it.
    public struct PeerAuthenticationStep: Sendable, Hashable {
        public enum Level: String, Sendable, Hashable {
            /// No PeerAuthentication sets a mode: Istio's PERMISSIVE default.
            case `default` = "default"
            /// Namespace-wide in the root namespace.
            case mesh = "mesh"
            case namespace = "namespace"
            /// One with a selector matching the workload.
            case workload = "workload"
            /// `portLevelMtls` of the workload one, for the destination port.
            case port = "port"
        }

        public var mode: MTLSMode
        public var decidedBy: ResourceID?
        public var level: Level
        /// Whether the connection is mTLS (as the request says, or implied by a principal).
        public var mtls: Bool
        /// False only for plaintext under STRICT: then authorization is never reached.
        public var passed: Bool
        public var reason: String
    }

    /// How a policy came to apply to the destination.
    public enum SelectedBy: String, Sendable, Hashable {
        /// A policy of the workload's namespace without a selector.
        case namespaceWide = "namespace-wide"
        /// A policy of the workload's namespace whose selector matches the labels.
        case selector = "selector"
        /// A policy of the root namespace without a selector: mesh-wide.
        case rootNamespace = "root-namespace"
        /// A policy of the root namespace whose selector matches the labels.
        case rootNamespaceSelector = "root-namespace-selector"
        /// `targetRefs` naming the workload's Gateway.
        case targetRefs = "targetRefs"
    }

    public struct PolicyTrace: Sendable, Hashable {
        public var policy: ResourceID
        public var action: Action
        public var dryRun: Bool
        public var selectedBy: SelectedBy
        public var rules: [RuleTrace]
        public var file: SourceLocation
    }

    public struct RuleTrace: Sendable, Hashable {
        public var ruleId: RuleID
        public var matched: Bool
        /// One entry per constraint present in the rule, in the order of the policy's text.
        public var fields: [FieldTrace]
    }

    /// One constraint of a rule: `from[0].source.principals`, `to[1].operation.notPaths`, `when[2]`
    /// (a condition's `values`) or `when[2].notValues`.
    public struct FieldTrace: Sendable, Hashable {
        public var field: String
        /// The condition key (`request.headers[x-tenant]`) of a `when` entry; nil for `from`/`to` fields.
        public var key: String?
        /// A `not*` constraint (it holds when no value matches).
        public var negated: Bool
        /// Whether the constraint holds for this request.
        public var matched: Bool
        /// The policy's values, as written.
        public var values: [String]
        /// The request's value of the attribute; nil when it is absent (a plaintext connection has no principal).
        public var actual: JSONValue?

        /// The attribute's name for people: `source.principals` for `from[0].source.principals`.
        public var attribute: String {
            if let key { return key }
            guard let dot = field.firstIndex(of: ".") else { return field }
            return String(field[field.index(after: dot)...])
        }
    }

    public struct NotApplicable: Sendable, Hashable {
        public enum Cause: String, Sendable, Hashable {
            /// Neither the workload's namespace nor the root namespace.
            case namespace = "namespace"
            /// The selector's labels are not all the workload's: the usual place of a typo.
            case selector = "selector"
            /// `targetRefs` that do not name this workload's Gateway.
            case targetRefs = "targetRefs"
        }

        public var policy: ResourceID
        public var action: Action
        public var cause: Cause
        public var reason: String
    }
}
