import MeshAuthz
import MicroHTTPD
import Synchronization

/// A policy set in force: its engine and what `/readyz` and `/v1/policies` report about it. Immutable.
public final class LoadedPolicySet: Sendable {
    public let engine: any DecisionEngine
    public let policySet: PolicySet
    /// 1 for the first successful load, +1 for every later one.
    public let generation: Int
    public let loadedAt: WallTime
    /// How many policy files were read.
    public let fileCount: Int
    /// The gateway answers of this set, one per `engine.outcomeCount`, built as they are first needed.
    public let answers: ResponseCache
    /// The gateway answers that report dry-run or AUDIT rules, by `OutcomeKey` (each combination of decision
    /// and reported rules that traffic brings, up to 4,096).
    public let reportingAnswers = KeyedResponseCache<OutcomeKey>(capacity: 4096)
    /// The gateway answers after a verified token, by outcome and output headers (a user's repeated requests).
    public let authenticatedAnswers = KeyedResponseCache<AuthenticatedAnswerKey>(capacity: 4096)
    /// The set's RequestAuthentications (jwt_authn) in front of the engine.
    public let authentication: AuthenticatedCheck
    /// Tokens verified under this set's keys.
    public let tokenCache: TokenCache
    /// Gateway destinations' authentication plans under this set.
    public let gatewayPlans = GatewayAuthenticationPlans()
    /// The workloads and Services of the manifests read with the set (`/v1/graph`); empty when none.
    public let inventory: Inventory
    /// `/v1/graph`'s answers for this set, built once per format.
    let graphAnswers = GraphAnswers()

    public init(engine: any DecisionEngine, policySet: PolicySet, generation: Int, loadedAt: WallTime, fileCount: Int,
                inventory: Inventory = Inventory()) {
        self.inventory = inventory
        self.engine = engine
        self.policySet = policySet
        self.generation = generation
        self.loadedAt = loadedAt
        self.fileCount = fileCount
        self.answers = ResponseCache(capacity: engine.outcomeCount)
        self.authentication = AuthenticatedCheck(policySet)
        self.tokenCache = TokenCache()
    }
}

/// Why a (re)load was refused, with every error found.
public struct LoadError: Sendable {
    public let errors: [PolicyError]
    public let at: WallTime

    public init(errors: [PolicyError], at: WallTime) {
        self.errors = errors
        self.at = at
    }

    /// One line: the first error, and how many more there are.
    public var summary: String {
        guard let first = errors.first else { return "no policy set loaded yet" }
        switch errors.count {
        case 1: return first.description
        case 2: return "\(first.description) (and 1 more error)"
        default: return "\(first.description) (and \(errors.count - 1) more errors)"
        }
    }

    /// The `LoadError` schema of openapi.yaml: the first error's location at the top, then all of them.
    public func writeJSON(into w: inout JSONWriter, maxErrors: Int = 100) {
        w.beginObject()
        w.key("message")
        w.string(summary)
        if let first = errors.first {
            writeLocation(first, into: &w)
        }
        w.key("errors")
        w.beginArray()
        for error in errors.prefix(maxErrors) {
            w.beginObject()
            writeLocation(error, into: &w)
            w.key("message")
            w.string(error.message)
            w.endObject()
        }
        w.endArray()
        w.endObject()
    }

    private func writeLocation(_ error: PolicyError, into w: inout JSONWriter) {
        w.key("code")
        w.string(error.code.rawValue)
        w.key("file")
        w.string(error.location.file)
        w.key("line")
        w.number(max(1, error.location.line))
        w.key("column")
        w.number(max(1, error.location.column))
        if !error.field.isEmpty {
            w.key("field")
            w.string(error.field)
        }
    }
}

/// Everything the request path needs, swapped as one immutable snapshot.
public final class PolicyState: Sendable {
    /// The set in force; nil until a first load succeeds (then decisions deny: fail closed).
    public let loaded: LoadedPolicySet?
    /// Why the last (re)load failed; nil when it succeeded.
    public let lastError: LoadError?
    /// The reason of a not-ready decision, computed once.
    public let notReadyDecision: Decision

    public init(loaded: LoadedPolicySet?, lastError: LoadError?) {
        self.loaded = loaded
        self.lastError = lastError
        self.notReadyDecision = Decision.notReady(lastError?.summary ?? "no policy set loaded yet")
    }

    /// The decision for a request under this snapshot.
    @inline(__always)
    public func evaluate(_ request: CheckRequest) -> Decision {
        guard let loaded else { return notReadyDecision }
        return loaded.engine.evaluate(request)
    }
}

/// Holds the current `PolicyState`. Readers (every decision) never take a lock: they go through
/// `RCUReference`, two atomic increments around the read; a writer (the reloader) swaps the pointer and
/// waits for the readers still holding the old snapshot before releasing it.
public final class PolicyStore: Sendable {
    private let cell: RCUReference<PolicyState>
    private let generations = Atomic<Int>(0)

    public init() {
        cell = RCUReference(PolicyState(loaded: nil, lastError: nil))
    }

    /// Runs `body` with the current snapshot; the snapshot stays valid for the duration of `body` only.
    @inline(__always)
    public func withCurrent<R>(_ body: (PolicyState) -> R) -> R {
        cell.read(body)
    }

    /// A strong reference to the current snapshot (for slow paths that keep it: `/readyz`, `/v1/policies`).
    public var current: PolicyState { cell.read { $0 } }

    /// Installs a freshly loaded set (clearing any previous error); returns it.
    @discardableResult
    public func install(_ set: PolicySet, engine: any DecisionEngine, fileCount: Int, at time: WallTime = .now(),
                        inventory: Inventory = Inventory()) -> LoadedPolicySet {
        let generation = generations.add(1, ordering: .sequentiallyConsistent).newValue
        let loaded = LoadedPolicySet(engine: engine, policySet: set, generation: generation, loadedAt: time,
                                     fileCount: fileCount, inventory: inventory)
        cell.replace(PolicyState(loaded: loaded, lastError: nil))
        return loaded
    }

    /// Records a refused (re)load: the set in force, if any, keeps serving.
    public func recordFailure(_ error: LoadError) {
        cell.update { PolicyState(loaded: $0.loaded, lastError: error) }
    }
}
