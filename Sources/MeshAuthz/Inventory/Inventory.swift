/// What a GitOps repo says runs in the mesh: workloads (from Deployments, Pods, ...), Services, service
/// accounts, namespaces and DestinationRules, each with the file and line it was read from. Policies
/// name workloads by labels and callers by principal; the inventory is what lets an analysis say
/// "this selector selects nothing" or "this host is served by these pods".
///
/// Built by `InventoryReader` from file contents (no I/O); every kind it does not use is counted in
/// `skipped`, never an error.
public struct Inventory: Sendable, Hashable {
    /// A pod, or the pods a controller (Deployment, StatefulSet, ...) makes from its template.
    public struct Workload: Sendable, Hashable {
        /// The manifest's kind: `Deployment`, `StatefulSet`, `DaemonSet`, `ReplicaSet`, `Pod`, `Job`, `CronJob`.
        public var kind: String
        /// The controller's (or pod's) namespace and name; the namespace is `default` when unset.
        public var id: ResourceID
        /// The pod template's labels (a Pod's own): what selectors match.
        public var labels: [String: String]
        /// `serviceAccountName` (or the deprecated `serviceAccount`), `default` when unset, as Kubernetes does.
        public var serviceAccount: String
        public var ports: [ContainerPort]
        public var location: SourceLocation

        public init(kind: String, id: ResourceID, labels: [String: String], serviceAccount: String = "default",
                    ports: [ContainerPort] = [], location: SourceLocation) {
            self.kind = kind
            self.id = id
            self.labels = labels
            self.serviceAccount = serviceAccount
            self.ports = ports
            self.location = location
        }

        /// `spiffe://` less principal its pods run as: `TD/ns/NS/sa/SA`.
        public func principal(trustDomain: String) -> String {
            "\(trustDomain)/ns/\(id.namespace)/sa/\(serviceAccount)"
        }
    }

    public struct ContainerPort: Sendable, Hashable {
        public var name: String?
        public var port: Int
        public init(name: String? = nil, port: Int) {
            self.name = name
            self.port = port
        }
    }

    public struct Service: Sendable, Hashable {
        public var id: ResourceID
        /// nil: no selector (endpoints managed elsewhere), which selects no workload here.
        public var selector: [String: String]?
        public var ports: [ServicePort]
        public var location: SourceLocation

        public init(id: ResourceID, selector: [String: String]?, ports: [ServicePort] = [], location: SourceLocation) {
            self.id = id
            self.selector = selector
            self.ports = ports
            self.location = location
        }
    }

    public struct ServicePort: Sendable, Hashable {
        public enum Target: Sendable, Hashable {
            case number(Int)
            /// A container port's name.
            case name(String)
        }
        public var name: String?
        public var port: Int
        /// `targetPort`; Kubernetes defaults it to `port`.
        public var targetPort: Target

        public init(name: String? = nil, port: Int, targetPort: Target? = nil) {
            self.name = name
            self.port = port
            self.targetPort = targetPort ?? .number(port)
        }
    }

    public struct ServiceAccount: Sendable, Hashable {
        public var id: ResourceID
        public var location: SourceLocation
        public init(id: ResourceID, location: SourceLocation) {
            self.id = id
            self.location = location
        }
    }

    public struct Namespace: Sendable, Hashable {
        public var name: String
        public var location: SourceLocation
        public init(name: String, location: SourceLocation) {
            self.name = name
            self.location = location
        }
    }

    public var workloads: [Workload]
    public var services: [Service]
    public var serviceAccounts: [ServiceAccount]
    public var namespaces: [Namespace]
    public var destinationRules: [DestinationRule]
    public var virtualServices: [VirtualService] = []
    /// Kinds read and not used, by kind (AuthorizationPolicy and PeerAuthentication included: the
    /// policy loader reads those).
    public var skipped: [String: Int]

    public init(workloads: [Workload] = [], services: [Service] = [], serviceAccounts: [ServiceAccount] = [],
                namespaces: [Namespace] = [], destinationRules: [DestinationRule] = [], skipped: [String: Int] = [:]) {
        self.workloads = workloads
        self.services = services
        self.serviceAccounts = serviceAccounts
        self.namespaces = namespaces
        self.destinationRules = destinationRules
        self.skipped = skipped
    }

    /// Whether any workload manifest was read: analyses that need to know what runs are skipped without.
    public var hasWorkloads: Bool { !workloads.isEmpty }
}
