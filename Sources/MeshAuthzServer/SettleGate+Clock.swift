import MeshAuthz

extension SettleGate {
    /// One look at watched files (`Reloader`, `WorkloadsWatcher`): `observe` with the clocks read now and the
    /// newest change among `listings`. True when `snapshot` should be loaded; while a change settles,
    /// `settlingDelay` says how soon (seconds) to look again, and it is nil otherwise.
    mutating func look(at snapshot: Snapshot, listings: [PolicyDirectory.Listing], settlingDelay: inout Double?) -> Bool {
        let wall = WallTime.now()
        let now = Int64(wall.seconds) * 1_000_000_000 + Int64(wall.nanoseconds)
        let quiet = listings.compactMap { $0.quietFor(nowWallNanoseconds: now) }.min()
        switch observe(snapshot, now: Int64(monotonicNanoseconds()), quietFor: quiet) {
        case .unchanged:
            settlingDelay = nil
            return false
        case .wait(let nanoseconds):
            settlingDelay = Double(nanoseconds) / 1e9
            return false
        case .load:
            settlingDelay = nil
            return true
        }
    }
}
