/// Decides when a changed policy directory may be read: only once it has been still for a settle time.
///
/// Why: a poll that reads a file between two writes of its writer sees a valid prefix (cut at a `---`)
/// and would serve it until the next poll. Waiting until nothing changed for `settle` nanoseconds (and
/// re-reading when files change during the read, `StableRead`) keeps the half file out, as long as the
/// writer's pauses are shorter than the settle time. Writers that replace files atomically (rename, a
/// ConfigMap's `..data` swap) are never caught half-way at all.
///
/// Pure: the caller passes what it saw and the clocks, so the rules are tested without a file system.
public struct SettleGate<Snapshot: Equatable> {
    public enum Verdict: Equatable {
        /// Same as what was last loaded (or last tried): nothing to do.
        case unchanged
        /// Changed, but not still for long enough yet: look again after this many nanoseconds.
        case wait(nanoseconds: Int64)
        /// Changed and still: read and load it now.
        case load
    }

    public let settleNanoseconds: Int64
    private var attempted: Snapshot?
    private var pending: (snapshot: Snapshot, since: Int64)?

    public init(settleNanoseconds: Int64) {
        self.settleNanoseconds = max(0, settleNanoseconds)
    }

    /// True while a change is waiting to settle (the caller should look again soon).
    public var isSettling: Bool { pending != nil }

    /// `now`: a monotonic clock. `quietFor`: how long ago the newest file was last modified or changed
    /// status (wall clock, nil when unknown or in the future): files untouched for the settle time
    /// already need no further wait, so a change made a while before the poll loads at once.
    public mutating func observe(_ snapshot: Snapshot, now: Int64, quietFor: Int64?) -> Verdict {
        if let attempted, attempted == snapshot {
            pending = nil
            return .unchanged
        }
        if let quietFor, quietFor >= settleNanoseconds { return .load }
        if let pending, pending.snapshot == snapshot {
            let still = now - pending.since
            return still >= settleNanoseconds ? .load : .wait(nanoseconds: settleNanoseconds - still)
        }
        // The files have been still since their newest change, not just since this look: count from
        // there (a server started right after its files were written waits only the rest of the time).
        let still = max(0, quietFor ?? 0)
        if still >= settleNanoseconds { return .load }  // a settle time of 0
        pending = (snapshot, now - still)
        return .wait(nanoseconds: settleNanoseconds - still)
    }

    /// Forgets the last attempt (its read saw the files change): the next look starts a new settle wait,
    /// even if the files then look like the last snapshot taken during that read.
    public mutating func forget() {
        attempted = nil
        pending = nil
    }

    /// Records that `snapshot` was loaded (or refused): it is not tried again until it changes.
    public mutating func attempted(_ snapshot: Snapshot) {
        attempted = snapshot
        pending = nil
    }
}

/// Reads a set of files so that they did not change while being read: a snapshot (size, mtime, inode
/// of every file) before and after, retried a bounded number of times when they differ.
public enum StableRead {
    /// `read` returns its value and whether it saw every file as the snapshot described (sizes match).
    /// nil when `attempts` reads in a row saw changes.
    public static func read<Snapshot: Equatable, Value>(
        attempts: Int, snapshot: () -> Snapshot, read: (Snapshot) -> (value: Value, consistent: Bool)
    ) -> (snapshot: Snapshot, value: Value)? {
        var before = snapshot()
        for _ in 0..<max(1, attempts) {
            let (value, consistent) = read(before)
            let after = snapshot()
            if consistent && after == before { return (after, value) }
            before = after
        }
        return nil
    }
}
