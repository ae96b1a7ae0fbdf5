import MeshAuthz
import MicroHTTPD
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

    /// Which entry point made a decision (`meshauthz_decisions_total{endpoint}`).
    public enum DecisionEndpoint: Int, Sendable, CaseIterable {
        case check, extAuthz

        public var label: String {
            switch self {
            case .check: return "/v1/check"
            case .extAuthz: return "/ext_authz"
            }
        }
    }

    /// Every stage, in the order of the decision counters.
    static let stages: [Decision.Stage] = [.peerAuthentication, .custom, .denyPolicy, .allowPolicy, .noAllowPolicy,
                                           .defaultDeny, .notReady, .requestAuthentication]

    @inline(__always)
    static func stageIndex(_ stage: Decision.Stage) -> Int {
        switch stage {
        case .peerAuthentication: return 0
        case .custom: return 1
        case .denyPolicy: return 2
        case .allowPolicy: return 3
        case .noAllowPolicy: return 4
        case .defaultDeny: return 5
        case .notReady: return 6
        case .requestAuthentication: return 7
        }
    }

    /// `stages.count`, as a constant for the request path (a static array is a lazy global).
    static let stageCount = 8
    /// The static tables below, per instance: loads from `self` on the request path instead of lazy-global
    /// accesses and retains.
    private let codes: [Int] = Metrics.codes
    private let decisionBounds: [UInt64] = Metrics.bucketBoundsNanoseconds
    private let requestBounds: [UInt64] = Metrics.requestBucketBoundsNanoseconds
    /// endpoint × stage × (deny, allow), preallocated.
    private let decisions: [Counter]
    /// Dry-run and AUDIT matches by policy (rare, so a lock is fine).
    public let shadows = ShadowCounters()
    /// Request duration per HTTP endpoint, non-cumulative buckets + overflow per endpoint.
    private let requestBuckets: [Counter]
    private let requestNanoseconds: [Counter]
    /// The decision log's counters, when there is one.
    let decisionLog: DecisionLog?
    /// Non-cumulative: one counter per bucket, plus the overflow (+Inf) at the end.
    private let buckets: [Counter]
    private let durationNanoseconds = Counter()
    private let httpRequests: [Counter]
    private let reloadSuccesses = Counter()
    private let reloadFailures = Counter()
    /// Token validations by issuer and result. Issuers come from the policy set (bounded by it), results
    /// are `JWTStatus.metricLabel`s, `valid` or `cached`.
    private let validations = Locked<[String: [String: UInt64]]>([:])
    private let jwksFetchSuccesses = Counter()
    private let jwksFetchFailures = Counter()

    /// Upper bounds (seconds) of the HTTP request duration buckets: 10 µs to 1 s.
    public static let requestBucketBounds: [Double] = [
        0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
        0.25, 0.5, 1,
    ]
    private static let requestBucketBoundsNanoseconds: [UInt64] = requestBucketBounds.map { UInt64(($0 * 1e9).rounded()) }

    public init(decisionLog: DecisionLog? = nil) {
        self.decisionLog = decisionLog
        precondition(Self.stages.count == Self.stageCount)
        decisions = (0..<(DecisionEndpoint.allCases.count * Self.stageCount * 2)).map { _ in Counter() }
        requestBuckets = (0..<(Endpoint.allCases.count * (Self.requestBucketBounds.count + 1))).map { _ in Counter() }
        requestNanoseconds = Endpoint.allCases.map { _ in Counter() }
        buckets = (0...Self.bucketBounds.count).map { _ in Counter() }
        httpRequests = (0..<(Endpoint.allCases.count * (Self.codes.count + 1))).map { _ in Counter() }
    }

    // MARK: Recording

    /// One decision and how long the engine took.
    @inline(__always)
    public func recordDecision(_ endpoint: DecisionEndpoint, _ decision: Decision, nanoseconds: UInt64) {
        decisions[(endpoint.rawValue * Self.stageCount + Self.stageIndex(decision.stage)) * 2 + (decision.allowed ? 1 : 0)].add()
        if decision.hasReports { shadows.record(decision) }
        durationNanoseconds.add(nanoseconds)
        buckets[Self.bucket(nanoseconds, decisionBounds)].add()
    }

    @inline(__always)
    public func recordHTTP(_ endpoint: Endpoint, status: Int, nanoseconds: UInt64? = nil) {
        let codes = self.codes
        var codeIndex = 0
        while codeIndex < codes.count && codes[codeIndex] != status { codeIndex += 1 }
        httpRequests[endpoint.rawValue * (codes.count + 1) + codeIndex].add()
        guard let nanoseconds else { return }
        requestNanoseconds[endpoint.rawValue].add(nanoseconds)
        requestBuckets[endpoint.rawValue * (requestBounds.count + 1) + Self.bucket(nanoseconds, requestBounds)].add()
    }

    /// The first bucket whose upper bound is at or above `nanoseconds`; `bounds.count` (+Inf) if none.
    @inline(__always)
    static func bucket(_ nanoseconds: UInt64, _ bounds: [UInt64]) -> Int {
        var index = 0
        while index < bounds.count && nanoseconds > bounds[index] { index += 1 }
        return index
    }

    public func recordValidations(_ list: [(issuer: String, result: String)]) {
        validations.withLock { table in
            for (issuer, result) in list { table[issuer, default: [:]][result, default: 0] += 1 }
        }
    }

    public func recordJWKSFetch(success: Bool) {
        (success ? jwksFetchSuccesses : jwksFetchFailures).add()
    }

    public func recordReload(success: Bool) {
        (success ? reloadSuccesses : reloadFailures).add()
    }

    // MARK: Exposition

    /// Prometheus text format 0.0.4.
    public func render(state: PolicyState, keySets: RemoteKeySets? = nil) -> String {
        var out = ""
        out.reserveCapacity(4096)
        out += "# HELP meshauthz_decisions_total Decisions made, by entry point, deciding stage and result.\n"
        out += "# TYPE meshauthz_decisions_total counter\n"
        for endpoint in DecisionEndpoint.allCases {
            for (stageIndex, stage) in Self.stages.enumerated() {
                // Every combination that can happen, from the start (a series that appears late breaks rate()):
                // allow-policy and no-allow-policy allow, every other stage denies.
                let allowed = stage == .allowPolicy || stage == .noAllowPolicy
                do {
                    let value = decisions[(endpoint.rawValue * Self.stages.count + stageIndex) * 2 + (allowed ? 1 : 0)].value
                    out += "meshauthz_decisions_total{endpoint=\"\(endpoint.label)\",stage=\"\(stage.rawValue)\",decision=\"\(allowed ? "allow" : "deny")\"} \(value)\n"
                }
            }
        }

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
        out += "meshauthz_policies_loaded{kind=\"RequestAuthentication\"} \(set?.requestAuthentications.count ?? 0)\n"

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

        out += "# HELP meshauthz_jwt_validations_total Tokens checked under a RequestAuthentication, by issuer and result (cached: verified earlier).\n"
        out += "# TYPE meshauthz_jwt_validations_total counter\n"
        let table = validations.withLock { $0 }
        for issuer in table.keys.sorted() {
            for (result, count) in table[issuer]!.sorted(by: { $0.key < $1.key }) {
                out += "meshauthz_jwt_validations_total{issuer=\"\(prometheusLabel(issuer))\",result=\"\(result)\"} \(count)\n"
            }
        }
        out += "# HELP meshauthz_jwks_fetches_total Fetches of jwksUri key sets, by result.\n"
        out += "# TYPE meshauthz_jwks_fetches_total counter\n"
        out += "meshauthz_jwks_fetches_total{result=\"success\"} \(jwksFetchSuccesses.value)\n"
        out += "meshauthz_jwks_fetches_total{result=\"failure\"} \(jwksFetchFailures.value)\n"
        out += "# HELP meshauthz_jwks_keys_loaded 1 when the issuer's jwksUri keys are loaded (0: its tokens fail), by issuer.\n"
        out += "# TYPE meshauthz_jwks_keys_loaded gauge\n"
        let fetched = keySets?.snapshot ?? [:]
        var issuers: [String: Bool] = [:]
        for ra in set?.requestAuthentications ?? [] {
            for rule in ra.jwtRules {
                guard let uri = rule.remoteURI else { continue }
                issuers[rule.issuer] = (issuers[rule.issuer] ?? true) && fetched[uri]?.keys != nil
            }
        }
        for (issuer, loaded) in issuers.sorted(by: { $0.key < $1.key }) {
            out += "meshauthz_jwks_keys_loaded{issuer=\"\(prometheusLabel(issuer))\"} \(loaded ? 1 : 0)\n"
        }

        out += "# HELP meshauthz_http_request_duration_seconds Time from a request's handler call to its answer, by endpoint.\n"
        out += "# TYPE meshauthz_http_request_duration_seconds histogram\n"
        for endpoint in Endpoint.allCases {
            let base = endpoint.rawValue * (Self.requestBucketBounds.count + 1)
            var total: UInt64 = 0
            for (index, bound) in Self.requestBucketBounds.enumerated() {
                total += requestBuckets[base + index].value
                out += "meshauthz_http_request_duration_seconds_bucket{endpoint=\"\(endpoint.label)\",le=\"\(formatBound(bound))\"} \(total)\n"
            }
            total += requestBuckets[base + Self.requestBucketBounds.count].value
            out += "meshauthz_http_request_duration_seconds_bucket{endpoint=\"\(endpoint.label)\",le=\"+Inf\"} \(total)\n"
            out += "meshauthz_http_request_duration_seconds_sum{endpoint=\"\(endpoint.label)\"} \(formatSeconds(requestNanoseconds[endpoint.rawValue].value))\n"
            out += "meshauthz_http_request_duration_seconds_count{endpoint=\"\(endpoint.label)\"} \(total)\n"
        }

        shadows.render(into: &out, label: prometheusLabel)
        if let decisionLog { renderDecisionLog(decisionLog, into: &out) }
        out += "# HELP meshauthz_build_info The running build (value 1).\n"
        out += "# TYPE meshauthz_build_info gauge\n"
        out += "meshauthz_build_info{version=\"\(prometheusLabel(BuildInfo.version))\",swift=\"\(prometheusLabel(BuildInfo.swift))\"} 1\n"
        ProcessMetrics.render(into: &out)
        return out
    }

    private func renderDecisionLog(_ log: DecisionLog, into out: inout String) {
        out += "# HELP meshauthz_decision_log_lines_total Decision log lines written.\n"
        out += "# TYPE meshauthz_decision_log_lines_total counter\n"
        out += "meshauthz_decision_log_lines_total \(log.written.value)\n"
        out += "# HELP meshauthz_decision_log_dropped_total Decision log lines dropped: the queue was full (decisions never wait for the log), or the write failed.\n"
        out += "# TYPE meshauthz_decision_log_dropped_total counter\n"
        out += "meshauthz_decision_log_dropped_total{reason=\"queue_full\"} \(log.droppedQueueFull.value)\n"
        out += "meshauthz_decision_log_dropped_total{reason=\"write_error\"} \(log.droppedWriteError.value)\n"
        out += "# HELP meshauthz_decision_log_reopens_total Times the decision log file was reopened (SIGUSR1).\n"
        out += "# TYPE meshauthz_decision_log_reopens_total counter\n"
        out += "meshauthz_decision_log_reopens_total \(log.reopens.value)\n"
    }

    /// A label value as the text format wants it: `\\`, `"` and newlines escaped (a kind comes from a file).
    func prometheusLabel(_ text: String) -> String {
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
