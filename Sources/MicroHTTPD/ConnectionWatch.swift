internal import CMicroHTTPD

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Closes what libmicrohttpd would keep open, from one thread per server that looks at every connection
/// a few times per header deadline:
///
/// - **Header deadline.** libmicrohttpd's connection timeout is an *idle* timeout: a client that
///   trickles one header byte every few seconds (slowloris), or sends nothing at all after connecting,
///   holds its connection forever. Here a connection that has not delivered a complete request head
///   within `headerTimeout` of starting it (of the accept, or of the first byte after a keep-alive
///   response) is shut down. An idle keep-alive connection with no byte of a next request is left to the
///   idle timeout, so that gateways' connection pools are not cut.
/// - **Half-closed peers.** A client that sends its request and shuts down its sending side gets its
///   answer, and then libmicrohttpd 0.9.75 waits for the idle timeout: the end-of-stream arrived with the
///   request and edge-triggered epoll never reports it again (1,188 such requests in 2 s left 1,021
///   connections stuck for the 60 s timeout). When a request completes and the peer has finished sending,
///   the socket's reading side is shut down, which wakes libmicrohttpd to read the end and close; the
///   sweep does the same for any idle connection in CLOSE_WAIT.
///
/// Connections are only shut down (`shutdown(2)`), never closed, and only while registered: libmicrohttpd
/// closes the descriptor itself, after reporting the close (which unregisters under the same lock).
final class ConnectionWatch: @unchecked Sendable {
    let headerTimeoutNanoseconds: UInt64
    let tickNanoseconds: UInt64
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wakeup = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var table: [ObjectIdentifier: ConnectionState] = [:]
    private var stopping = false
    private var thread: pthread_t?
    private var headerDeadlineCutOffs = 0
    private var halfClosedCutOffs = 0

    /// `headerTimeoutSeconds` 0 disables the deadline (half-closed connections are still closed).
    init(headerTimeoutSeconds: Double) {
        headerTimeoutNanoseconds = headerTimeoutSeconds > 0 ? UInt64(headerTimeoutSeconds * 1e9) : 0
        // A quarter of the deadline (a connection is cut at most 25% late), between 50 ms and 500 ms.
        let tick = headerTimeoutNanoseconds > 0 ? headerTimeoutNanoseconds / 4 : 500_000_000
        tickNanoseconds = min(max(tick, 50_000_000), 500_000_000)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        wakeup.initialize(to: pthread_cond_t())
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(wakeup, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        stop()
        pthread_cond_destroy(wakeup)
        pthread_mutex_destroy(mutex)
        wakeup.deallocate()
        mutex.deallocate()
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    // MARK: Events from libmicrohttpd's threads

    func opened(_ connection: ConnectionState) {
        locked {
            connection.registered = true
            table[ObjectIdentifier(connection)] = connection
        }
    }

    func closed(_ connection: ConnectionState) {
        locked {
            connection.registered = false
            table[ObjectIdentifier(connection)] = nil
        }
    }

    func headersComplete(_ connection: ConnectionState) {
        locked {
            connection.awaitingHeadersSince = 0
            connection.inRequest = true
        }
    }

    /// The response has been handed to the kernel (or the request was aborted).
    func requestCompleted(_ connection: ConnectionState) {
        // One non-blocking peek: a peer that sent its request and then its FIN is done with the connection.
        let finished = connection.fd >= 0 && mhz_peer_finished_sending(connection.fd) == 1
        locked {
            connection.inRequest = false
            connection.awaitingHeadersSince = 0
            connection.bytesAtRest = nil
            if finished { cutOff(connection, how: Int32(SHUT_RD), halfClosed: true) }
        }
    }

    /// Must hold the lock.
    private func cutOff(_ connection: ConnectionState, how: Int32, halfClosed: Bool) {
        guard connection.registered, !connection.cutOff, connection.fd >= 0 else { return }
        connection.cutOff = true
        _ = shutdown(connection.fd, how)
        if halfClosed { halfClosedCutOffs += 1 } else { headerDeadlineCutOffs += 1 }
    }

    // MARK: The sweeping thread

    var openConnections: Int { locked { table.count } }
    var cutOffs: (headerDeadline: Int, halfClosed: Int) { locked { (headerDeadlineCutOffs, halfClosedCutOffs) } }

    /// Starts the sweeping thread; false if it could not be created.
    func start() -> Bool {
        let box = Unmanaged.passRetained(self)
        var created = pthread_t()
        let rc = pthread_create(&created, nil, { raw in
            let watch = Unmanaged<ConnectionWatch>.fromOpaque(raw!).takeRetainedValue()
            watch.run()
            return nil
        }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            return false
        }
        locked { thread = created }
        return true
    }

    /// Stops and joins the sweeping thread. Idempotent.
    func stop() {
        let joining: pthread_t? = locked {
            stopping = true
            pthread_cond_broadcast(wakeup)
            defer { thread = nil }
            return thread
        }
        if let joining { pthread_join(joining, nil) }
    }

    private func run() {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while !stopping {
            var deadline = timespec()
            let wake = ConnectionWatch.now() + tickNanoseconds
            deadline.tv_sec = Int(wake / 1_000_000_000)
            deadline.tv_nsec = Int(wake % 1_000_000_000)
            _ = pthread_cond_timedwait(wakeup, mutex, &deadline)
            if stopping { break }
            sweep(now: ConnectionWatch.now())
        }
    }

    /// Must hold the lock. One `getsockopt` (TCP_INFO) per connection idle between requests, none for the
    /// others.
    private func sweep(now: UInt64) {
        for connection in table.values where !connection.cutOff && !connection.inRequest {
            if connection.awaitingHeadersSince != 0 {
                if headerTimeoutNanoseconds > 0, now &- connection.awaitingHeadersSince >= headerTimeoutNanoseconds {
                    cutOff(connection, how: Int32(SHUT_RDWR), halfClosed: false)
                }
                continue
            }
            var received: UInt64 = 0
            var closeWait: Int32 = 0
            guard connection.fd >= 0, mhz_tcp_progress(connection.fd, &received, &closeWait) == 0 else { continue }
            if closeWait != 0 {
                cutOff(connection, how: Int32(SHUT_RD), halfClosed: true)
            } else if let atRest = connection.bytesAtRest {
                // A next request has begun: its deadline starts (at most one tick late).
                if received > atRest { connection.awaitingHeadersSince = now }
            } else {
                // First look since the response. Bytes of a next request that arrived before it count as
                // rest: if that request is still incomplete, the deadline starts with its next byte, and a
                // client that sends nothing more is idle, under the idle timeout.
                connection.bytesAtRest = received
            }
        }
    }
}
