import MeshAuthz

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Dry-run and AUDIT matches by policy: `meshauthz_dry_run_total{policy, would_be}` and
/// `meshauthz_audit_total{policy}`. Bounded: a key is a policy of a set that was loaded (at most the policies ever
/// loaded by this process, times three outcomes), never a value taken from a request. Only decisions with such a
/// report take the lock.
public final class ShadowCounters: @unchecked Sendable {  // `dryRun` and `audit` only under `mutex`
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var dryRun: [ResourceID: [String: UInt64]] = [:]
    private var audit: [ResourceID: UInt64] = [:]

    public init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func record(_ decision: Decision) {
        pthread_mutex_lock(mutex)
        for report in decision.dryRun { dryRun[report.rule.policy, default: [:]][report.wouldBe, default: 0] += 1 }
        for report in decision.audit { audit[report.rule.policy, default: 0] += 1 }
        pthread_mutex_unlock(mutex)
    }

    /// After a reload: the counters of policies the new set no longer has go (their series leave `/metrics`,
    /// and a repo whose policies come and go does not grow them without bound).
    func prune(keeping policies: Set<ResourceID>) {
        pthread_mutex_lock(mutex)
        dryRun = dryRun.filter { policies.contains($0.key) }
        audit = audit.filter { policies.contains($0.key) }
        pthread_mutex_unlock(mutex)
    }

    func render(into out: inout String, label: (String) -> String) {
        pthread_mutex_lock(mutex)
        let dryRun = self.dryRun, audit = self.audit
        pthread_mutex_unlock(mutex)
        out += "# HELP meshauthz_dry_run_total Matches of dry-run policies' rules, by policy and what the policy would have done.\n"
        out += "# TYPE meshauthz_dry_run_total counter\n"
        for policy in dryRun.keys.sorted() {
            for (wouldBe, count) in dryRun[policy]!.sorted(by: { $0.key < $1.key }) {
                out += "meshauthz_dry_run_total{policy=\"\(label(policy.description))\",would_be=\"\(wouldBe)\"} \(count)\n"
            }
        }
        out += "# HELP meshauthz_audit_total Matches of AUDIT policies' rules, by policy.\n"
        out += "# TYPE meshauthz_audit_total counter\n"
        for policy in audit.keys.sorted() {
            out += "meshauthz_audit_total{policy=\"\(label(policy.description))\"} \(audit[policy]!)\n"
        }
    }
}
