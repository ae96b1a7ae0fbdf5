#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Which decisions `serve --decision-log` writes.
public enum DecisionLogMode: String, Sendable, CaseIterable {
    case none, deny, all
}

/// The decision log: one JSON object per line, to a file (reopened on SIGUSR1, for logrotate) or standard output.
///
/// Decisions never wait for it. A decision thread appends its line to a bounded in-memory queue under a mutex
/// held only for that append; a thread of its own takes the whole queue at once and writes it. When the queue is
/// full (the disk is slow, the pipe is not read), the line is dropped and counted
/// (`meshauthz_decision_log_dropped_total{reason="queue_full"}`); a failed write drops its lines too
/// (`reason="write_error"`), and the next batch is tried again.
public final class DecisionLog: @unchecked Sendable {  // mutable state only under `mutex`
    public let mode: DecisionLogMode
    public let path: String?
    public let capacityLines: Int
    public let capacityBytes: Int

    public let written = Counter()
    public let droppedQueueFull = Counter()
    public let droppedWriteError = Counter()
    public let reopens = Counter()

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let wake: UnsafeMutablePointer<pthread_cond_t>
    private var queue: [[UInt8]] = []
    private var queuedBytes = 0
    private var writerWaiting = false
    private var stopping = false
    private var reopenRequested = false
    private var thread: pthread_t?
    /// Only the writer thread touches it (and `init`/`stop`, before it starts and after it ends).
    private var fd: Int32 = -1

    /// Opens the file (appending) now, so a bad path fails `serve` at start; nil path: standard output.
    public init(mode: DecisionLogMode, path: String?, capacityLines: Int = 65_536, capacityBytes: Int = 32 << 20) throws(DecisionLogError) {
        self.mode = mode
        self.path = path
        self.capacityLines = capacityLines
        self.capacityBytes = capacityBytes
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        wake = .allocate(capacity: 1)
        wake.initialize(to: pthread_cond_t())
        pthread_cond_init(wake, nil)
        if mode != .none {
            fd = try Self.openLog(path)
            start()
        }
    }

    deinit {
        stop()
        pthread_cond_destroy(wake)
        pthread_mutex_destroy(mutex)
        wake.deallocate()
        mutex.deallocate()
    }

    /// Whether a decision with this result is logged at all (checked before its line is built).
    @inline(__always)
    public func wants(allowed: Bool) -> Bool {
        switch mode {
        case .none: return false
        case .deny: return !allowed
        case .all: return true
        }
    }

    /// Queues one line (without its newline). Never blocks beyond the append; drops when full.
    public func enqueue(_ line: [UInt8]) {
        pthread_mutex_lock(mutex)
        guard !stopping, queue.count < capacityLines, queuedBytes + line.count <= capacityBytes else {
            pthread_mutex_unlock(mutex)
            droppedQueueFull.add()
            return
        }
        queue.append(line)
        queuedBytes += line.count + 1
        let signal = writerWaiting
        if signal { writerWaiting = false }
        pthread_mutex_unlock(mutex)
        if signal { pthread_cond_signal(wake) }
    }

    /// SIGUSR1: the file is closed and opened again by name before the next write (after logrotate moved it).
    public func reopen() {
        pthread_mutex_lock(mutex)
        reopenRequested = true
        writerWaiting = false
        pthread_mutex_unlock(mutex)
        pthread_cond_signal(wake)
    }

    /// Writes what is queued, then ends the writer thread.
    public func stop() {
        pthread_mutex_lock(mutex)
        guard let running = thread else {
            pthread_mutex_unlock(mutex)
            return
        }
        stopping = true
        writerWaiting = false
        pthread_mutex_unlock(mutex)
        pthread_cond_signal(wake)
        pthread_join(running, nil)
        pthread_mutex_lock(mutex)
        thread = nil
        pthread_mutex_unlock(mutex)
        if fd > 2 { close(fd) }
        fd = -1
    }

    // MARK: The writer thread

    private func start() {
        let unmanaged = Unmanaged.passUnretained(self)
        var created = pthread_t()
        let status = pthread_create(&created, nil, { context in
            Unmanaged<DecisionLog>.fromOpaque(context!).takeUnretainedValue().writerLoop()
            return nil
        }, unmanaged.toOpaque())
        precondition(status == 0, "cannot start the decision log writer thread: \(status)")
        thread = created
    }

    private func writerLoop() {
        var batch: [[UInt8]] = []
        var buffer: [UInt8] = []
        while true {
            pthread_mutex_lock(mutex)
            while queue.isEmpty && !stopping && !reopenRequested {
                writerWaiting = true
                pthread_cond_wait(wake, mutex)
            }
            if queue.isEmpty && stopping {
                pthread_mutex_unlock(mutex)
                return
            }
            swap(&batch, &queue)
            queuedBytes = 0
            let reopenNow = reopenRequested
            reopenRequested = false
            pthread_mutex_unlock(mutex)

            if reopenNow, let path {
                reopens.add()
                if let fresh = try? Self.openLog(path) {
                    if fd > 2 { close(fd) }
                    fd = fresh
                }
            }
            if batch.isEmpty { continue }
            buffer.removeAll(keepingCapacity: true)
            for line in batch {
                buffer.append(contentsOf: line)
                buffer.append(0x0A)
            }
            if writeAll(buffer) {
                written.add(UInt64(batch.count))
            } else {
                droppedWriteError.add(UInt64(batch.count))
            }
            batch.removeAll(keepingCapacity: true)
            if buffer.capacity > 4 << 20 { buffer = [] }  // a burst's buffer is not kept forever
        }
    }

    private func writeAll(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += n
        }
        return true
    }

    private static func openLog(_ path: String?) throws(DecisionLogError) -> Int32 {
        guard let path else { return 1 }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw DecisionLogError(path: path, reason: errnoText()) }
        return fd
    }
}

public struct DecisionLogError: Error, Sendable, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "cannot open the decision log \(path): \(reason)" }
}
