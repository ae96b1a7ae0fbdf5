/// Who may call whom, from the policies (and the manifests when present). Nodes are the destinations
/// (workloads of the manifests, or without them the workloads the policies select), the callers the
/// policies name (mapped to workloads when a manifest runs as them), and two pseudo callers: any
/// authenticated (mTLS) caller and any caller at all, plaintext included. An edge says that some request
/// from that caller can be allowed; it carries the rules that allow it, their methods, paths and ports, and
/// a witness request, `confirmed` when the decision engine allowed it.
public struct AccessGraph: Sendable {
    public struct Node: Sendable, Hashable {
        public enum Kind: String, Sendable, Hashable {
            case workload
            /// A principal no manifest runs as (or a pattern).
            case principal
            /// Any workload of a namespace no manifest declares.
            case namespace
            case anyAuthenticated = "any-authenticated"
            case anyPlaintext = "any-plaintext"
        }
        public let id: String
        public let kind: Kind
        public let label: String
        /// The group it is drawn in (a workload's namespace); nil for callers outside the manifests.
        public let namespace: String?
        /// The caller identity a witness uses: a principal without `spiffe://`; nil for plaintext.
        public let principal: String?
        /// The labels a request to it names (destinations only).
        public let labels: [String: String]?
    }

    public struct Edge: Sendable, Hashable {
        public let from: String
        public let to: String
        /// Rule ids (`ns[NS]-policy[NAME]-rule[I]`), or `no ALLOW policy` when none applies to the destination.
        public var rules: [String]
        /// Empty: any.
        public var methods: [String]
        public var paths: [String]
        public var ports: [Int]
        /// A request the rules would allow, and whether the decision engine did.
        public var witness: CheckRequest?
        public var witnessRule: String?
        public var confirmed: Bool

        /// `GET,POST /api/* :8080`, `*` for anything.
        public var label: String {
            let parts = [methods.joined(separator: ","), paths.joined(separator: ","), ports.isEmpty ? "" : ":" + ports.map(String.init).joined(separator: ",")]
                .filter { !$0.isEmpty }
            return parts.isEmpty ? "*" : parts.joined(separator: " ")
        }
    }

    public var nodes: [Node]
    public var edges: [Edge]

    public static let anyAuthenticatedID = "any-authenticated"
    public static let anyPlaintextID = "any-plaintext"
    public static let noAllowPolicy = "no ALLOW policy"
}
