#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A value guarded by a pthread mutex, with the `withLock` shape of `Synchronization.Mutex`.
///
/// Why not `Mutex` itself: on Linux (Swift 6.3.1) its lock and unlock are compiled into the Synchronization
/// library, which is not instrumented, and wait on a futex, so ThreadSanitizer sees no ordering between two
/// critical sections and reports the guarded value as raced (two threads incrementing a `Mutex<Int>` give a
/// "Swift access race" per run, with the right total). `pthread_mutex_lock` is intercepted by ThreadSanitizer,
/// so `make sanitize` checks what this guards instead of needing a suppression that would hide real races in
/// our own frames. None of these locks is on the per-request path. When `Mutex` is visible to the sanitizer,
/// replacing this type with it is a one-line change per use.
public final class Locked<Value>: @unchecked Sendable {  // `value` is only touched with `mutex` held
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    public func withLock<Result, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
