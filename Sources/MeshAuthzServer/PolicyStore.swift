import MeshAuthz
import MicroHTTPD
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

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

    public init(engine: any DecisionEngine, policySet: PolicySet, generation: Int, loadedAt: WallTime, fileCount: Int) {
        self.engine = engine
        self.policySet = policySet
        self.generation = generation
        self.loadedAt = loadedAt
        self.fileCount = fileCount
        self.answers = ResponseCache(capacity: engine.outcomeCount)
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
    public func install(_ set: PolicySet, engine: any DecisionEngine, fileCount: Int, at time: WallTime = .now()) -> LoadedPolicySet {
        let generation = generations.add(1, ordering: .sequentiallyConsistent).newValue
        let loaded = LoadedPolicySet(engine: engine, policySet: set, generation: generation, loadedAt: time,
                                     fileCount: fileCount)
        cell.replace(PolicyState(loaded: loaded, lastError: nil))
        return loaded
    }

    /// Records a refused (re)load: the set in force, if any, keeps serving.
    public func recordFailure(_ error: LoadError) {
        cell.update { PolicyState(loaded: $0.loaded, lastError: error) }
    }
}

/// A reference to an immutable object that many threads read and one occasionally replaces, without
/// locks on the read side (a small sleepable RCU with two reader counters).
///
/// Reader: read the epoch `e`, increment `readers[e % 2]`, re-read the epoch (if it moved, undo and
/// retry), then load the pointer and use it unretained; decrement when done.
/// Writer (serialized by a mutex): exchange the pointer, advance the epoch, wait until
/// `readers[old % 2]` is zero, then release the old object.
///
/// Why it is safe: a reader that loaded the old pointer did so before the exchange, so its epoch
/// re-check (earlier still) saw the epoch of before the exchange, and its increment of that epoch's
/// counter precedes the writer's advance of the epoch; the writer therefore sees the reader counted
/// until it is done. Readers of an older epoch with the same parity only add transient increments that
/// they undo on their re-check (the writer may wait a little longer, never too little). All atomics are
/// sequentially consistent.
// `@unchecked`: the raw pointer is an owned (+1) reference to a `Sendable` object, handed out as above.
public final class RCUReference<Object: AnyObject & Sendable>: @unchecked Sendable {
    private let pointer: Atomic<UnsafeMutableRawPointer>
    private let epoch = Atomic<Int>(0)
    private let readersEven = Atomic<Int>(0)
    private let readersOdd = Atomic<Int>(0)
    private let writer = Mutex<Void>(())

    public init(_ object: Object) {
        pointer = Atomic(Unmanaged.passRetained(object).toOpaque())
    }

    deinit {
        Unmanaged<Object>.fromOpaque(pointer.load(ordering: .sequentiallyConsistent)).release()
    }

    @inline(__always)
    private func counterAdd(_ parity: Int, _ delta: Int) {
        if parity == 0 {
            readersEven.wrappingAdd(delta, ordering: .sequentiallyConsistent)
        } else {
            readersOdd.wrappingAdd(delta, ordering: .sequentiallyConsistent)
        }
    }

    private func readers(_ parity: Int) -> Int {
        parity == 0
            ? readersEven.load(ordering: .sequentiallyConsistent)
            : readersOdd.load(ordering: .sequentiallyConsistent)
    }

    @inline(__always)
    public func read<R>(_ body: (Object) -> R) -> R {
        var parity: Int
        while true {
            let e = epoch.load(ordering: .sequentiallyConsistent)
            parity = e & 1
            counterAdd(parity, 1)
            if epoch.load(ordering: .sequentiallyConsistent) == e { break }
            counterAdd(parity, -1)
        }
        defer { counterAdd(parity, -1) }
        let raw = pointer.load(ordering: .sequentiallyConsistent)
        return Unmanaged<Object>.fromOpaque(raw)._withUnsafeGuaranteedRef { body($0) }
    }

    /// Replaces the object; returns once no reader can still see the old one.
    public func replace(_ object: Object) {
        writer.withLock { _ in swapAndRetire(object) }
    }

    /// Replaces the object with one computed from the current one, atomically with respect to other writers.
    public func update(_ transform: (Object) -> Object) {
        writer.withLock { _ in
            let current = Unmanaged<Object>.fromOpaque(pointer.load(ordering: .sequentiallyConsistent))
                .takeUnretainedValue()
            swapAndRetire(transform(current))
        }
    }

    private func swapAndRetire(_ object: Object) {
        let old = pointer.exchange(Unmanaged.passRetained(object).toOpaque(), ordering: .sequentiallyConsistent)
        let oldEpoch = epoch.load(ordering: .sequentiallyConsistent)
        epoch.store(oldEpoch &+ 1, ordering: .sequentiallyConsistent)
        var spins = 0
        while readers(oldEpoch & 1) != 0 {
            spins += 1
            if spins < 100 { sched_yield() } else { usleep(100) }
        }
        Unmanaged<Object>.fromOpaque(old).release()
    }
}
