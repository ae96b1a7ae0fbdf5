import Logging
import MeshAuthz

/// Loads the policy directory into a `PolicyStore`, and again whenever it changes.
///
/// `poll()` compares what `stat` says about the policy files (names, sizes, mtimes, inodes) with the
/// previous look and reloads when anything differs; `reload()` reloads unconditionally (SIGHUP: catches
/// an edit that kept size and mtime). A refused set never replaces the one in force: the error is logged
/// (one line per problem, `file:line:col: field: message`), counted and reported by `/readyz`.
///
/// Not thread-safe: one thread (the main one, between signals) drives it.
public final class Reloader {
    public let directory: String
    public let options: MeshOptions
    public let engineKind: EngineKind
    private let store: PolicyStore
    private let metrics: Metrics
    private let logger: Logger
    private var lastListing: PolicyDirectory.Listing?

    public init(directory: String, options: MeshOptions, engine: EngineKind, store: PolicyStore, metrics: Metrics,
                logger: Logger) {
        self.directory = directory
        self.options = options
        self.engineKind = engine
        self.store = store
        self.metrics = metrics
        self.logger = logger
    }

    /// Reloads if the directory changed since the last load attempt; returns whether it tried.
    @discardableResult
    public func poll() -> Bool {
        let listing = PolicyDirectory.scan(directory)
        guard listing != lastListing else { return false }
        load(listing, why: lastListing == nil ? "initial load" : "the policy files changed")
        return true
    }

    /// Reloads now, whether or not anything changed.
    public func reload(why: String) {
        load(PolicyDirectory.scan(directory), why: why)
    }

    private func load(_ listing: PolicyDirectory.Listing, why: String) {
        lastListing = listing
        let started = monotonicNanoseconds()
        let (files, readErrors) = PolicyDirectory.read(listing)
        let result: Result<PolicySet, PolicyLoadFailure> =
            readErrors.isEmpty ? PolicyLoader.load(files, options: options) : .failure(PolicyLoadFailure(errors: readErrors))
        switch result {
        case .success(let set):
            let engine = engineKind.makeEngine(set)
            let loaded = store.install(set, engine: engine, fileCount: files.count)
            metrics.recordReload(success: true)
            let ms = Double((monotonicNanoseconds() - started) / 1000) / 1000
            logger.info("""
                loaded policy set generation \(loaded.generation) from \(directory) (\(why)): \
                \(set.authorizationPolicies.count) AuthorizationPolicies, \(set.peerAuthentications.count) \
                PeerAuthentications, \(set.otherResources.count) other resources, in \(files.count) files, \
                \(ms) ms (\(engineKind.rawValue) engine)
                """)
            if files.isEmpty {
                logger.warning("no *.yaml or *.yml file under \(directory): nothing is enforced")
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
