// PolicyStore's read path (every decision reads the current policy set): the hand-made RCUReference against
// the Synchronization module's Mutex, one thread reading alone and two reading at once. Build and run:
//   swiftc -O Sources/MeshAuthzServer/RCUReference.swift Benchmarks/sync/main.swift -o /tmp/syncbench && /tmp/syncbench
// Figures are ns per read (the slowest thread's time / reads), 5 runs; BENCHMARKS.md keeps a run.
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

final class State: Sendable { let value: Int; init(_ v: Int) { value = v } }

/// The alternative from the Synchronization module: a Mutex holding the reference; a reader takes a strong
/// reference under the lock and uses it after (so readers do not hold the lock during a decision).
final class MutexReference<Object: AnyObject & Sendable>: Sendable {
    private let cell: Mutex<Object>
    init(_ o: Object) { cell = Mutex(o) }
    @inline(__always) func read<R>(_ body: (Object) -> R) -> R { let o = cell.withLock { $0 }; return body(o) }
    func replace(_ o: Object) { cell.withLock { $0 = o } }
}

func now() -> UInt64 { var t = timespec(); clock_gettime(CLOCK_MONOTONIC, &t); return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec) }

let iterations = 20_000_000
let sink = Atomic<Int>(0)

/// ns per read, `threads` threads reading at once (each `iterations` reads).
func measure(_ threads: Int, _ read: @escaping @Sendable () -> Int) -> Double {
    let go = Atomic<Int>(0)
    let done = Atomic<Int>(0)
    let elapsed = Mutex<[UInt64]>([])
    var ids: [pthread_t] = []
    final class Box: @unchecked Sendable { let f: () -> Void; init(_ f: @escaping () -> Void) { self.f = f } }
    for _ in 0..<threads {
        let box = Box {
            while go.load(ordering: .acquiring) == 0 {}
            let t0 = now()
            var acc = 0
            for _ in 0..<iterations { acc &+= read() }
            let t1 = now()
            sink.wrappingAdd(acc, ordering: .relaxed)
            elapsed.withLock { $0.append(t1 - t0) }
            done.wrappingAdd(1, ordering: .relaxed)
        }
        var id = pthread_t()
        pthread_create(&id, nil, { p in Unmanaged<Box>.fromOpaque(p!).takeRetainedValue().f(); return nil }, Unmanaged.passRetained(box).toOpaque())
        ids.append(id)
    }
    go.store(1, ordering: .releasing)
    for id in ids { pthread_join(id, nil) }
    let times = elapsed.withLock { $0 }
    return Double(times.max()!) / Double(iterations)
}

let rcu = RCUReference(State(1))
let mutex = MutexReference(State(1))
var rows: [String] = []
for run in 0..<5 {
    let r1 = measure(1) { rcu.read { $0.value } }
    let m1 = measure(1) { mutex.read { $0.value } }
    let r2 = measure(2) { rcu.read { $0.value } }
    let m2 = measure(2) { mutex.read { $0.value } }
    func f(_ x: Double) -> String { String(Double(Int(x * 10)) / 10) }
    print("run \(run): 1 thread: RCU \(f(r1)) ns, Mutex \(f(m1)) ns; 2 threads: RCU \(f(r2)) ns, Mutex \(f(m2)) ns")
}
print("sink", sink.load(ordering: .relaxed) & 1)
