import MeshAuthz
import Synchronization

/// A monotonically increasing counter; `add` is one relaxed atomic add.
public final class Counter: Sendable {
    private let storage = Atomic<UInt64>(0)

    public init() {}

    @inline(__always)
    public func add(_ n: UInt64 = 1) {
        storage.wrappingAdd(n, ordering: .relaxed)
    }

    public var value: UInt64 { storage.load(ordering: .relaxed) }
}

/// The service's Prometheus metrics. Everything on the request path is a relaxed atomic add on a
/// preallocated counter; the text is only assembled when `/metrics` is scraped.
public final class Metrics: Sendable {
    /// `endpoint` label values of `meshauthz_http_requests_total`.
    public enum Endpoint: Int, Sendable, CaseIterable {
        case healthz, readyz, metrics, check, policies, graph, extAuthz, notFound

        public var label: String {
            switch self {
            case .healthz: return "/healthz"
            case .readyz: return "/readyz"
            case .metrics: return "/metrics"
            case .check: return "/v1/check"
            case .policies: return "/v1/policies"
            case .graph: return "/v1/graph"
            case .extAuthz: return "/ext_authz"
            case .notFound: return "other"
            }
        }
    }

    /// Status codes with their own counter; any other is counted under `code="other"`.
    static let codes: [Int] = [200, 400, 403, 404, 405, 413, 500, 503]

    /// Upper bounds (seconds) of the decision latency buckets: 1 µs to 10 ms.
    public static let bucketBounds: [Double] = [
        0.000_001, 0.000_002_5, 0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5,
        0.001, 0.002_5, 0.005, 0.01,
    ]
    private static let bucketBoundsNanoseconds: [UInt64] = bucketBounds.map { UInt64(($0 * 1e9).rounded()) }

    private let allowed = Counter()
    private let denied = Counter()
    /// Non-cumulative: one counter per bucket, plus the overflow (+Inf) at the end.
    private let buckets: [Counter]
    private let durationNanoseconds = Counter()
    private let httpRequests: [Counter]
    private let reloadSuccesses = Counter()
    private let reloadFailures = Counter()

    public init() {
        buckets = (0...Self.bucketBounds.count).map { _ in Counter() }
        httpRequests = (0..<(Endpoint.allCases.count * (Self.codes.count + 1))).map { _ in Counter() }
    }

    // MARK: Recording

    /// One decision and how long the engine took.
    @inline(__always)
    public func recordDecision(allowed isAllowed: Bool, nanoseconds: UInt64) {
        (isAllowed ? allowed : denied).add()
        durationNanoseconds.add(nanoseconds)
        let bounds = Self.bucketBoundsNanoseconds
        var index = 0
        while index < bounds.count && nanoseconds > bounds[index] { index += 1 }
        buckets[index].add()
    }

    @inline(__always)
    public func recordHTTP(_ endpoint: Endpoint, status: Int) {
        let codeIndex = Self.codes.firstIndex(of: status) ?? Self.codes.count
        httpRequests[endpoint.rawValue * (Self.codes.count + 1) + codeIndex].add()
    }

    public func recordReload(success: Bool) {
        (success ? reloadSuccesses : reloadFailures).add()
    }

    // MARK: Exposition

    /// Prometheus text format 0.0.4.
    public func render(state: PolicyState) -> String {
        var out = ""
        out.reserveCapacity(4096)
        out += "# HELP meshauthz_decisions_total Decisions made, by result.\n"
        out += "# TYPE meshauthz_decisions_total counter\n"
        out += "meshauthz_decisions_total{decision=\"allow\"} \(allowed.value)\n"
        out += "meshauthz_decisions_total{decision=\"deny\"} \(denied.value)\n"

        out += "# HELP meshauthz_decision_duration_seconds Time the decision engine took per decision.\n"
        out += "# TYPE meshauthz_decision_duration_seconds histogram\n"
        var cumulative: UInt64 = 0
        for (index, bound) in Self.bucketBounds.enumerated() {
            cumulative += buckets[index].value
            out += "meshauthz_decision_duration_seconds_bucket{le=\"\(formatBound(bound))\"} \(cumulative)\n"
        }
        cumulative += buckets[Self.bucketBounds.count].value
        out += "meshauthz_decision_duration_seconds_bucket{le=\"+Inf\"} \(cumulative)\n"
        out += "meshauthz_decision_duration_seconds_sum \(formatSeconds(durationNanoseconds.value))\n"
        out += "meshauthz_decision_duration_seconds_count \(cumulative)\n"

        let set = state.loaded?.policySet
        out += "# HELP meshauthz_policies_loaded Resources of the policy set in force, by kind (0 when none is loaded).\n"
        out += "# TYPE meshauthz_policies_loaded gauge\n"
        out += "meshauthz_policies_loaded{kind=\"AuthorizationPolicy\"} \(set?.authorizationPolicies.count ?? 0)\n"
        out += "meshauthz_policies_loaded{kind=\"PeerAuthentication\"} \(set?.peerAuthentications.count ?? 0)\n"

        out += "# HELP meshauthz_other_resources Resources of other kinds in the set in force (never used in decisions), by kind.\n"
        out += "# TYPE meshauthz_other_resources gauge\n"
        for (kind, count) in set?.otherResourceCounts ?? [] {
            out += "meshauthz_other_resources{kind=\"\(prometheusLabel(kind))\"} \(count)\n"
        }

        out += "# HELP meshauthz_policy_generation Generation of the policy set in force (0 when none is loaded).\n"
        out += "# TYPE meshauthz_policy_generation gauge\n"
        out += "meshauthz_policy_generation \(state.loaded?.generation ?? 0)\n"

        out += "# HELP meshauthz_http_requests_total HTTP requests answered, by endpoint and status code.\n"
        out += "# TYPE meshauthz_http_requests_total counter\n"
        for endpoint in Endpoint.allCases {
            for codeIndex in 0...Self.codes.count {
                let value = httpRequests[endpoint.rawValue * (Self.codes.count + 1) + codeIndex].value
                if value == 0 { continue }
                let code = codeIndex < Self.codes.count ? String(Self.codes[codeIndex]) : "other"
                out += "meshauthz_http_requests_total{endpoint=\"\(endpoint.label)\",code=\"\(code)\"} \(value)\n"
            }
        }

        out += "# HELP meshauthz_policy_reloads_total Policy (re)loads, by result.\n"
        out += "# TYPE meshauthz_policy_reloads_total counter\n"
        out += "meshauthz_policy_reloads_total{result=\"success\"} \(reloadSuccesses.value)\n"
        out += "meshauthz_policy_reloads_total{result=\"failure\"} \(reloadFailures.value)\n"
        return out
    }

    /// A label value as the text format wants it: `\\`, `"` and newlines escaped (a kind comes from a file).
    private func prometheusLabel(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    private func formatBound(_ bound: Double) -> String {
        // Exact decimal text for the fixed bounds ("1e-06" would be valid too, but less readable).
        let nanoseconds = UInt64((bound * 1e9).rounded())
        return formatSeconds(nanoseconds)
    }

    /// Nanoseconds as decimal seconds without floating-point noise: 2500 → "0.0000025".
    private func formatSeconds(_ nanoseconds: UInt64) -> String {
        let whole = nanoseconds / 1_000_000_000
        var fraction = String(nanoseconds % 1_000_000_000)
        if fraction == "0" { return "\(whole)" }
        fraction = String(repeating: "0", count: 9 - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return "\(whole).\(fraction)"
    }
}
