#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Clean shutdown on SIGINT/SIGTERM without signal handlers: block both signals in the calling thread
/// (every thread started afterwards, libmicrohttpd's included, inherits the mask), then `wait()` for one.
///
/// Call `block()` first thing in `main`, before starting any server or other threads.
public enum TerminationSignals {
    /// The signals handled: SIGINT and SIGTERM.
    public static let signals: [Int32] = [SIGINT, SIGTERM]

    /// Blocks SIGINT and SIGTERM in the calling thread (and threads it creates later).
    public static func block() {
        var set = signalSet()
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Waits until SIGINT or SIGTERM arrives and returns its number. Requires `block()` first.
    @discardableResult
    public static func wait() -> Int32 {
        var set = signalSet()
        var received: Int32 = 0
        while true {
            let rc = sigwait(&set, &received)
            if rc == 0 { return received }
            if rc != EINTR { return -1 }
        }
    }

    private static func signalSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for s in signals { sigaddset(&set, s) }
        return set
    }
}
