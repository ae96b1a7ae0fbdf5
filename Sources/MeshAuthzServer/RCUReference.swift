import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Kept hand-made rather than a `Mutex<Object>` from the Synchronization module: a read here is a few atomic
// operations and no lock, and it is on every decision. Measured (BENCHMARKS.md, "PolicyStore's read path";
// Benchmarks/sync/main.swift compiles this file as it is): 5-6 ns a read on one thread, 13-25 ns with two
// threads reading at once, against 10-15 ns and 31-99 ns for a reader taking a strong reference under a `Mutex`.
// Only Atomics are used, which ThreadSanitizer sees (they compile to instrumented instructions).

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
