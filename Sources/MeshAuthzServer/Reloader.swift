import Logging
import MeshAuthz

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Loads the policy directory into a `PolicyStore`, and again whenever it changes.
///
/// `poll()` compares what `stat` says about the policy files (names, sizes, mtimes, inodes) with the
/// last load attempt and reloads once the change has settled: nothing changed for `settle` seconds
/// (`SettleGate`), so that a file caught between two writes is not served. The read itself is checked
/// (`PolicyDirectory.readStable`): files that change while being read are read again. `reload()` reloads
/// unconditionally (SIGHUP: catches an edit that kept size and mtime). A refused set (any error, or an
/// unintended empty set: see `allowEmpty`) never replaces the one in force: the error is logged (one line
/// per problem, `file:line:col: field: message`), counted and reported by `/readyz`.
///
/// Not thread-safe: one thread (the main one, between signals) drives it.
public final class Reloader {
    public let directory: String
    public let options: MeshOptions
    public let engineKind: EngineKind
    public let limits: LoadLimits
    /// A set with no AuthorizationPolicy and no PeerAuthentication is loaded only when this says it is
    /// intended; otherwise it is refused like a broken one (it would allow everything).
    public let allowEmpty: Bool
    private let store: PolicyStore
    private let metrics: Metrics
    private let logger: Logger
    private var gate: SettleGate<PolicyDirectory.Listing>

    public init(directory: String, options: MeshOptions, engine: EngineKind, store: PolicyStore, metrics: Metrics,
                logger: Logger, limits: LoadLimits = LoadLimits(), allowEmpty: Bool = false, settleSeconds: Double = 0.2) {
        self.directory = directory
        self.options = options
        self.engineKind = engine
        self.store = store
        self.metrics = metrics
        self.logger = logger
        self.limits = limits
        self.allowEmpty = allowEmpty
        self.gate = SettleGate(settleNanoseconds: Int64(max(0, settleSeconds) * 1e9))
    }

    /// When a change is settling, how soon (seconds) to poll again; nil otherwise.
    public private(set) var settlingDelay: Double?

    /// Reloads if the directory changed since the last load attempt and has settled; returns whether it tried.
    @discardableResult
    public func poll() -> Bool {
        let listing = PolicyDirectory.scan(directory)
        guard gate.look(at: listing, listings: [listing], settlingDelay: &settlingDelay) else { return false }
        load(why: store.current.loaded == nil && store.current.lastError == nil ? "initial load" : "the policy files changed")
        return true
    }

    /// The load at start-up, before the server listens (so that its first answers already reflect it):
    /// waits for the files to settle, at most `maxWaits` settle periods, then loads whatever is there
    /// (a read that keeps seeing changes is refused: `changed_while_reading`).
    public func initialLoad(maxWaits: Int = 10) {
        for _ in 0..<maxWaits {
            if poll() { return }
            guard let delay = settlingDelay else { return }
            usleep(UInt32(min(delay, 60) * 1e6))
        }
        reload(why: "initial load, files still changing")
    }

    /// Reloads now, whether or not anything changed.
    public func reload(why: String) {
        settlingDelay = nil
        load(why: why)
    }

    private func load(why: String) {
        let started = monotonicNanoseconds()
        let (listing, files, readErrors, stable) = PolicyDirectory.readStable(directory, limits: limits)
        if stable { gate.attempted(listing) } else { gate.forget() }
        let result = PolicyLoader.loadDirectory(directory, files: files, readErrors: readErrors, options: options,
                                                limits: limits, allowEmpty: allowEmpty)
        switch result {
        case .success(let set):
            let engine = engineKind.makeEngine(set)
            // The manifests among the files, for /v1/graph; read again only when there are any.
            let inventory = set.otherResources.contains { InventoryReader.readsKind($0.kind) }
                ? InventoryReader.read(files, limits: limits).inventory : Inventory()
            let loaded = store.install(set, engine: engine, fileCount: files.count, inventory: inventory)
            metrics.recordReload(success: true)
            metrics.shadows.prune(keeping: Set(set.authorizationPolicies.map(\.id)))
            let ms = Double((monotonicNanoseconds() - started) / 1000) / 1000
            let others = set.otherResourceCounts.map { "\($0.count) \($0.kind)" }.joined(separator: ", ")
            logger.info("""
                loaded policy set generation \(loaded.generation) from \(directory) (\(why)): \
                \(set.authorizationPolicies.count) AuthorizationPolicies, \(set.peerAuthentications.count) \
                PeerAuthentications, \(set.otherResources.count) other resources\(others.isEmpty ? "" : " (\(others))"), \
                in \(files.count) files, \(ms) ms (\(engineKind.rawValue) engine)
                """)
            if set.authorizationPolicies.isEmpty && set.peerAuthentications.isEmpty {
                logger.warning("no AuthorizationPolicy and no PeerAuthentication under \(directory): every request is allowed (--allow-empty)")
            }
        case .failure(let failure):
            let error = LoadError(errors: failure.errors.isEmpty
                                    ? [PolicyDirectory.unreadable(directory, "the policy set was refused")]
                                    : failure.errors,
                                  at: .now())
            store.recordFailure(error)
            metrics.recordReload(success: false)
            let serving = store.current.loaded.map { "generation \($0.generation) keeps serving" }
                ?? "no policy set is loaded: every decision denies and /readyz answers 503"
            logger.error("policy set in \(directory) refused (\(why)), \(error.errors.count) error(s); \(serving)")
            for problem in error.errors {
                logger.error("\(problem.description)")
            }
        }
    }
}
