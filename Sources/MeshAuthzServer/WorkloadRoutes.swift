import Logging
import MeshAuthz

/// `serve --workloads PATH...`: the Host routing in force, read from the manifests at start and again when
/// they change (`WorkloadsWatcher`), swapped whole. A request reads one routing for its whole judgement.
public final class WorkloadRoutes: Sendable {
    public let paths: [String]
    public let limits: LoadLimits
    private let cell: RCUReference<Routing>

    final class Routing: Sendable {
        let routing: HostRouting
        init(_ routing: HostRouting) { self.routing = routing }
    }

    /// Reads the manifests of `paths`; fails (with the first problem) when they do not read or name no
    /// Service: a destination guessed from half the manifests would be a wrong one.
    public init(paths: [String], limits: LoadLimits) throws(RoutingError) {
        self.paths = paths
        self.limits = limits
        cell = RCUReference(Routing(try Self.read(paths, limits: limits).routing))
    }

    public struct RoutingError: Error, CustomStringConvertible {
        public let description: String
    }

    /// The manifests' routing and a one-line summary, or why there is none.
    static func read(_ paths: [String], limits: LoadLimits) throws(RoutingError) -> (routing: HostRouting, summary: String) {
        let (files, readErrors) = PolicyPaths.read(paths, limits: limits)
        let (inventory, errors) = InventoryReader.read(files, limits: limits)
        if let first = (readErrors + errors).first { throw RoutingError(description: first.description) }
        guard !inventory.services.isEmpty else {
            throw RoutingError(description: "no Service in \(paths.joined(separator: ", ")): no Host could name a destination")
        }
        let routing = HostRouting(inventory, clusterDomain: "cluster.local")
        return (routing, "\(routing.serviceCount) Services, \(inventory.workloads.count) workloads")
    }

    /// Calls `body` with the routing in force (kept alive for the call, whatever a reload does meanwhile).
    public func read<R>(_ body: (HostRouting) -> R) -> R {
        cell.read { body($0.routing) }
    }

    func replace(_ routing: HostRouting) {
        cell.replace(Routing(routing))
    }
}

/// Looks at the `--workloads` paths on the policy poll and on SIGHUP, as `Reloader` looks at the policy
/// directory: a change is read once it has settled; manifests that do not read, or name no Service, keep
/// the routing in force (logged with the first problem). Not thread-safe: the main thread drives it.
public final class WorkloadsWatcher {
    let routes: WorkloadRoutes
    private let logger: Logger
    private var gate: SettleGate<[PolicyDirectory.Listing]>
    /// When a change is settling, how soon (seconds) to poll again; nil otherwise.
    public private(set) var settlingDelay: Double?

    public init(routes: WorkloadRoutes, logger: Logger, settleSeconds: Double = 0.2) {
        self.routes = routes
        self.logger = logger
        gate = SettleGate(settleNanoseconds: Int64(max(0, settleSeconds) * 1e9))
        // What start-up read is what is in force: only a later change is read again.
        gate.attempted(PolicyPaths.scan(routes.paths))
    }

    /// Reads the manifests again if they changed and have settled; returns whether it tried.
    @discardableResult
    public func poll() -> Bool {
        let listings = PolicyPaths.scan(routes.paths)
        guard gate.look(at: listings, listings: listings, settlingDelay: &settlingDelay) else { return false }
        gate.attempted(listings)
        reload(why: "the workload manifests changed")
        return true
    }

    /// Reads the manifests now, whether or not anything changed.
    public func reload(why: String) {
        settlingDelay = nil
        do {
            let (routing, summary) = try WorkloadRoutes.read(routes.paths, limits: routes.limits)
            routes.replace(routing)
            logger.info("host routing reloaded (\(why)): \(summary) from --workloads")
        } catch {
            logger.error("--workloads not reloaded (\(why)): \(error.description); the routing read before stays in force")
        }
    }
}
