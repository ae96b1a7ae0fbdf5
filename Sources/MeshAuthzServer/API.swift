import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import MeshAuthz
import MicroHTTPD

/// How requests are read: the gateway convention of `/ext_authz`, the destination it uses when the gateway
/// names none, and the path normalization every entry point applies (`serve --gateway`,
/// `--default-namespace`, `--default-workload`, `--path-normalization`).
public struct RequestReading: Sendable {
    public var convention: GatewayConvention
    /// Destination namespace when there is no `x-authz-namespace` header; nil: none, and such a request is refused.
    public var namespace: String?
    /// Destination workload labels when there is no `x-authz-workload` header; nil: none, and such a
    /// request is refused (an empty map is a configured workload with no labels).
    public var labels: [String: String]?
    public var pathNormalization: PathNormalizationMode
    /// `serve --workloads`: the destination of a request that names none, from its Host.
    /// `serve --workloads`: the Host routing, kept current (nil: requests name their destination).
    public var hostRouting: WorkloadRoutes?

    public init(convention: GatewayConvention = .any, namespace: String? = nil, labels: [String: String]? = nil,
                pathNormalization: PathNormalizationMode = .base, hostRouting: WorkloadRoutes? = nil) {
        self.convention = convention
        self.namespace = namespace
        self.labels = labels
        self.pathNormalization = pathNormalization
        self.hostRouting = hostRouting
    }
}

/// The HTTP API: maps each `HTTPRequest` to its `HTTPResponse`.
///
/// - `GET /healthz`, `GET /readyz`, `GET /metrics`, `GET /v1/policies`, `GET /v1/graph` (GraphEndpoint.swift)
/// - `POST /v1/check` (one request object or an array)
/// - `/ext_authz` and `/ext_authz/<path>`, any method (see `ExtAuthz`)
public final class API: Sendable {
    public let store: PolicyStore
    public let metrics: Metrics
    public let reading: RequestReading
    public let trust: ForwardedTrust
    /// Key sets fetched from `jwksUri`s.
    public let keySets: RemoteKeySets
    /// Told when a token names a key its `jwksUri` set lacks (nil: nothing fetches, as in tests of the API alone).
    public let fetcher: JWKSFetcher?
    let logger: Logger
    /// `serve --decision-log`: nil for none.
    let decisionLog: DecisionLog?
    /// `serve --no-explain` turns `?explain=true` away: a trace shows the values of every policy that applies.
    let explainEnabled: Bool
    /// The configured destination as the bytes the gateway path reads.
    private let defaultNamespaceBytes: ConstantBytes?
    private let defaultWorkloadBytes: ConstantBytes?

    public init(store: PolicyStore, metrics: Metrics, reading: RequestReading = RequestReading(),
                trust: ForwardedTrust = ForwardedTrust(), keySets: RemoteKeySets = RemoteKeySets(),
                fetcher: JWKSFetcher? = nil, logger: Logger, decisionLog: DecisionLog? = nil,
                explainEnabled: Bool = true) {
        self.explainEnabled = explainEnabled
        self.keySets = keySets
        self.fetcher = fetcher
        self.store = store
        self.metrics = metrics
        self.reading = reading
        self.trust = trust
        self.logger = logger
        self.decisionLog = decisionLog?.mode == DecisionLogMode.none ? nil : decisionLog
        defaultNamespaceBytes = reading.namespace.map(ConstantBytes.init)
        // Sorted so that the text (and a decision's explanation) does not depend on dictionary order.
        defaultWorkloadBytes = reading.labels.map { labels in
            ConstantBytes(labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))
        }
    }

    var defaultNamespace: UnsafeBufferPointer<UInt8>? { defaultNamespaceBytes?.bytes }
    var defaultWorkload: UnsafeBufferPointer<UInt8>? { defaultWorkloadBytes?.bytes }

    /// The server's handler.
    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        let started = monotonicNanoseconds()
        let (endpoint, response) = route(request, started: started)
        metrics.recordHTTP(endpoint, status: response.status, nanoseconds: monotonicNanoseconds() &- started)
        return response
    }

    /// The handler of the plaintext probe listener (`serve --health-listen`): `/healthz`, `/readyz` and
    /// `/metrics` only, so that probes and scrapers need no client certificate while decisions do.
    public func handleProbe(_ request: HTTPRequest) -> HTTPResponse {
        let started = monotonicNanoseconds()
        let (endpoint, response): (Metrics.Endpoint, HTTPResponse)
        switch request.rawPath {
        case "/healthz", "/readyz", "/metrics":
            (endpoint, response) = route(request, started: started)
        default:
            (endpoint, response) = (.notFound, Self.error(404, code: "not_found",
                                                          "this listener serves /healthz, /readyz and /metrics only"))
        }
        metrics.recordHTTP(endpoint, status: response.status, nanoseconds: monotonicNanoseconds() &- started)
        return response
    }

    /// `started`: when the handler was called (the decision log's `latencyMicros` counts from there).
    func route(_ request: HTTPRequest, started: UInt64) -> (Metrics.Endpoint, HTTPResponse) {
        // The gateway entry point first, read off the raw target's bytes (this runs on every decision).
        switch Self.extAuthzTarget(request.rawTarget) {
        case .bare: return (.extAuthz, extAuthz(request, forwardedPathAt: nil, started: started))
        case .forwarded(let offset): return (.extAuthz, extAuthz(request, forwardedPathAt: offset, started: started))
        case .other: break
        }
        let path = request.rawPath
        switch path {
        case "/v1/check":
            return (.check, check(request, started: started))
        case "/healthz":
            return (.healthz, onlyGET(request) ?? Self.json(Self.healthBody))
        case "/readyz":
            return (.readyz, onlyGET(request) ?? readyz())
        case "/metrics":
            if let refused = onlyGET(request) { return (.metrics, refused) }
            let text = metrics.render(state: store.current, keySets: keySets)
            return (.metrics, HTTPResponse(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                                           body: text))
        case "/v1/policies":
            return (.policies, onlyGET(request) ?? policies())
        case "/v1/graph":
            return (.graph, onlyGET(request) ?? graph(request))
        default:
            return (.notFound, Self.error(404, code: "not_found", "no such endpoint: \(path)"))
        }
    }

    enum ExtAuthzTarget {
        /// `/ext_authz` or `/ext_authz?...`: the original request is in headers.
        case bare
        /// `/ext_authz/<rest>`: the original target is `/<rest>`, query included, from this byte offset.
        case forwarded(Int)
        case other
    }

    static func extAuthzTarget(_ rawTarget: String) -> ExtAuthzTarget {
        let prefix: StaticString = "/ext_authz"
        let length = prefix.utf8CodeUnitCount
        var target = rawTarget
        let next: UInt8? = target.withUTF8 { bytes in
            guard bytes.count >= length, memcmp(bytes.baseAddress!, prefix.utf8Start, length) == 0 else { return 0 }
            return bytes.count == length ? nil : bytes[length]
        }
        switch next {
        case nil, UInt8(ascii: "?"): return .bare
        case UInt8(ascii: "/"): return .forwarded(length)
        default: return .other
        }
    }

    // MARK: /v1/check

    func check(_ request: HTTPRequest, started: UInt64) -> HTTPResponse {
        guard request.method == "POST" else {
            return Self.error(405, code: "method_not_allowed", "/v1/check accepts POST only, not \(request.method)",
                              headers: [("Allow", "POST")])
        }
        let explain: Bool
        switch Self.explainParameter(request.rawQuery) {
        case .success(let asked): explain = asked
        case .failure(let error): return HTTPResponse.json(bytes: error.jsonBytes, status: 400)
        }
        if explain && !explainEnabled {
            return Self.error(403, code: "explain_disabled", "this server does not explain decisions (serve --no-explain)")
        }
        var body: CheckRequestBody
        do {
            body = try CheckRequest.decodeBody(request.body)
        } catch {
            return HTTPResponse.json(bytes: error.jsonBytes, status: 400)
        }
        // Over the mTLS listener, a request that names no principal is about the caller itself.
        if request.isTLS, let own = request.peerCertificateURISANs.first {
            func fill(_ r: inout CheckRequest) {
                if r.source.principal == nil { r.source.principal = CheckRequest.Peer.withSPIFFEScheme(own) }
            }
            switch body {
            case .single(var one):
                fill(&one)
                body = .single(one)
            case .batch(var many):
                for i in many.indices { fill(&many[i]) }
                body = .batch(many)
            }
        }
        // Judged on the path the destination's proxy would see (the same normalization as /ext_authz).
        let requests: [CheckRequest]
        switch body {
        case .single(let one): requests = [one]
        case .batch(let many): requests = many
        }
        // A trace costs a reference evaluation and a walk of every policy: bounded per request, as the batch is.
        if explain && requests.count > Self.maxExplainedBatch {
            return HTTPResponse.json(bytes: RequestError.invalidRequest(
                "explain=true takes at most \(Self.maxExplainedBatch) requests per batch, not \(requests.count)",
                field: "explain").jsonBytes, status: 400)
        }
        var prepared: [(request: CheckRequest, normalizedPath: String?)] = []
        prepared.reserveCapacity(requests.count)
        do {
            for (position, one) in requests.enumerated() {
                let element: Int? = if case .batch = body { position } else { nil }
                prepared.append(try one.normalizingPath(reading.pathNormalization, element: element))
            }
        } catch {
            return HTTPResponse.json(bytes: error.jsonBytes, status: 400)
        }
        let isBatch: Bool = if case .batch = body { true } else { false }
        let now = Int64(WallTime.now().seconds)
        let outcome: Result<[CheckAnswer], RequestError> = store.withCurrent { state in
            var answers: [CheckAnswer] = []
            answers.reserveCapacity(prepared.count)
            for (position, one) in prepared.enumerated() {
                guard let loaded = state.loaded else {
                    answers.append(CheckAnswer(decision: decide(one.request, state), normalizedPath: one.normalizedPath))
                    continue
                }
                let decision: Decision
                let result: AuthenticationResult?
                var decided = one.request
                do throws(RequestError) {
                    (decision, result) = try loaded.authentication.decide(
                        one.request, now: now, element: isBatch ? position : nil, remoteKeys: keySets.keys(for:),
                        cache: loaded.tokenCache) { request in
                            decided = request
                            return decide(request, state)
                        }
                } catch {
                    return .failure(error)
                }
                if let result { recordAuthentication(result, decision) }
                // Only "nothing applies" decisions can come from a destination nothing applies to.
                let warnings = decision.stage == .noAllowPolicy ? loaded.policySet.destinationWarnings(one.request.destination) : []
                // The trace comes from the reference evaluator, under the same set, for the request as decided
                // (its verified identity included); the decision served stays the engine's. Computed only when
                // asked: it is far slower than a decision. A refused token has no authorization to explain.
                let explanation = explain && decision.stage != .requestAuthentication
                    ? ReferenceEvaluator(loaded.policySet).explain(decided) : nil
                answers.append(CheckAnswer(decision: decision, normalizedPath: one.normalizedPath, warnings: warnings,
                                           explanation: explanation, requestPrincipal: result?.identity?.requestPrincipal))
            }
            return .success(answers)
        }
        let answers: [CheckAnswer]
        switch outcome {
        case .success(let all): answers = all
        case .failure(let error): return HTTPResponse.json(bytes: error.jsonBytes, status: 400)
        }
        if let decisionLog {
            let requestID = request.header("x-request-id")
            for (one, answer) in zip(prepared, answers) where decisionLog.wants(allowed: answer.decision.allowed) {
                log(answer.decision, one.request, requestID: requestID, started: started, to: decisionLog)
            }
        }
        switch body {
        case .single: return HTTPResponse.json(bytes: answers[0].jsonBytes)
        case .batch: return HTTPResponse.json(bytes: CheckAnswer.jsonBytes(answers))
        }
    }

    /// The largest batch `?explain=true` answers.
    public static let maxExplainedBatch = 100

    /// `explain=true|false` of the query (absent: false). Any other value, or the parameter twice, is a 400:
    /// a misspelt `explain=yes` silently answering without a trace would look like a bug in the trace.
    static func explainParameter(_ query: Substring?) -> Result<Bool, RequestError> {
        guard let query else { return .success(false) }
        var found: Bool?
        for item in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts[0] == "explain" else { continue }
            let value = parts.count == 2 ? parts[1] : ""
            guard found == nil else {
                return .failure(RequestError.invalidRequest("explain is given more than once", field: "explain"))
            }
            switch value {
            case "true": found = true
            case "false": found = false
            default:
                return .failure(RequestError.invalidRequest("explain must be true or false, not \"\(value)\"", field: "explain"))
            }
        }
        return .success(found ?? false)
    }

    /// Counts a request's token validations, and a decision authentication made without the engine.
    func recordAuthentication(_ result: AuthenticationResult, _ decision: Decision) {
        if !result.validations.isEmpty { metrics.recordValidations(result.validations) }
        for uri in result.staleKeySets { fetcher?.refreshSoon(uri) }
        if decision.stage == .requestAuthentication { metrics.recordDecision(.check, decision, nanoseconds: 0) }
    }

    /// Decides under `state`, timing the engine and counting the result.
    @inline(__always)
    func decide(_ request: CheckRequest, _ state: PolicyState) -> Decision {
        timed(.check, { state.evaluate(request) }, decision: { $0 })
    }

    /// Runs an engine, recording its time and result in the metrics.
    @inline(__always)
    func timed<R>(_ endpoint: Metrics.DecisionEndpoint, _ evaluate: () -> R, decision: (R) -> Decision) -> R {
        let started = monotonicNanoseconds()
        let result = evaluate()
        metrics.recordDecision(endpoint, decision(result), nanoseconds: monotonicNanoseconds() &- started)
        return result
    }

    /// A `/v1/check` decision's log line (the request's strings lent as bytes for the length of the call).
    func log(_ decision: Decision, _ request: CheckRequest, requestID: String?, started: UInt64, to decisionLog: DecisionLog) {
        let labels = request.destination.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        func lend<R>(_ text: String?, _ body: (UnsafeBufferPointer<UInt8>?) -> R) -> R {
            guard var text else { return body(nil) }
            return text.withUTF8 { body($0) }
        }
        let line: [UInt8] = lend(request.source.principal) { principal in
            lend(request.destination.namespace) { namespace in
                lend(labels) { workload in
                    lend(request.request.method) { method in
                        lend(request.request.host) { host in
                            lend(request.request.path) { path in
                                DecisionLogLine.build(
                                    endpoint: .check, requestID: requestID, decision: decision,
                                    facts: .init(principal: principal, sourceIP: request.source.ip, namespace: namespace,
                                                 workload: workload, method: method, host: host, target: path,
                                                 mtls: request.source.isMTLS),
                                    latencyNanoseconds: monotonicNanoseconds() &- started)
                            }
                        }
                    }
                }
            }
        }
        decisionLog.enqueue(line)
    }

    // MARK: Operations

    static let healthBody: [UInt8] = Array(#"{"status":"ok"}"#.utf8)

    func readyz() -> HTTPResponse {
        let state = store.current
        var w = JSONWriter(capacity: 512)
        w.beginObject()
        guard let loaded = state.loaded else {
            w.key("status")
            w.string("not ready")
            w.key("error")
            (state.lastError ?? LoadError(errors: [], at: .now())).writeJSON(into: &w)
            w.endObject()
            return HTTPResponse.json(bytes: w.bytes, status: 503)
        }
        w.key("status")
        w.string("ready")
        w.key("policies")
        w.number(loaded.policySet.authorizationPolicies.count)
        w.key("peerAuthentications")
        w.number(loaded.policySet.peerAuthentications.count)
        w.key("otherResources")
        w.beginObject()
        for (kind, count) in loaded.policySet.otherResourceCounts {
            w.key(kind)
            w.number(count)
        }
        w.endObject()
        w.key("loadedAt")
        w.string(loaded.loadedAt.rfc3339)
        w.key("generation")
        w.number(loaded.generation)
        w.key("lastReloadError")
        if let error = state.lastError { error.writeJSON(into: &w) } else { w.null() }
        w.key("requestAuthentications")
        w.number(loaded.policySet.requestAuthentications.count)
        writeKeySets(loaded.policySet, into: &w)
        w.endObject()
        return HTTPResponse.json(bytes: w.bytes)
    }

    /// `"jwks": [...]`, one entry per `jwksUri` of the set: its issuers and whether its keys are loaded.
    func writeKeySets(_ set: PolicySet, into w: inout JSONWriter) {
        var issuers: [String: [String]] = [:]
        for ra in set.requestAuthentications {
            for rule in ra.jwtRules { if let uri = rule.remoteURI { issuers[uri, default: []].append(rule.issuer) } }
        }
        guard !issuers.isEmpty else { return }
        let fetched = keySets.snapshot
        w.key("jwks")
        w.beginArray()
        for uri in issuers.keys.sorted() {
            let status = fetched[uri]
            w.beginObject()
            w.key("uri"); w.string(uri)
            w.key("issuers"); w.beginArray(); for issuer in Set(issuers[uri]!).sorted() { w.string(issuer) }; w.endArray()
            w.key("status"); w.string(status?.keys != nil ? (status?.lastError == nil ? "ok" : "stale") : (status?.lastError == nil ? "pending" : "failing"))
            w.key("keys"); w.number(status?.keys?.keys.count ?? 0)
            w.key("lastError"); w.optionalString(status?.lastError)
            w.endObject()
        }
        w.endArray()
    }

    func policies() -> HTTPResponse {
        let state = store.current
        var w = JSONWriter(capacity: 4096)
        w.beginObject()
        w.key("policies")
        w.beginArray()
        if let set = state.loaded?.policySet {
            for policy in set.authorizationPolicies {
                w.beginObject()
                w.key("namespace"); w.string(policy.id.namespace)
                w.key("name"); w.string(policy.id.name)
                w.key("kind"); w.string("AuthorizationPolicy")
                w.key("action"); w.string(policy.action.rawValue)
                w.key("rules"); w.number(policy.rules.count)
                w.key("file"); w.string(policy.location.file)
                w.key("dryRun"); w.bool(policy.dryRun)
                w.endObject()
            }
            for ra in set.requestAuthentications {
                w.beginObject()
                w.key("namespace"); w.string(ra.id.namespace)
                w.key("name"); w.string(ra.id.name)
                w.key("kind"); w.string("RequestAuthentication")
                w.key("action"); w.null()
                w.key("rules"); w.number(ra.jwtRules.count)
                w.key("file"); w.string(ra.location.file)
                w.key("dryRun"); w.bool(false)
                w.endObject()
            }
            for peer in set.peerAuthentications {
                w.beginObject()
                w.key("namespace"); w.string(peer.id.namespace)
                w.key("name"); w.string(peer.id.name)
                w.key("kind"); w.string("PeerAuthentication")
                w.key("action"); w.null()
                w.key("rules"); w.number(0)
                w.key("file"); w.string(peer.location.file)
                w.key("dryRun"); w.bool(false)
                w.endObject()
            }
        }
        w.endArray()
        w.endObject()
        return HTTPResponse.json(bytes: w.bytes)
    }

    // MARK: Helpers

    /// nil for GET/HEAD, else a 405.
    func onlyGET(_ request: HTTPRequest) -> HTTPResponse? {
        if request.method == "GET" || request.method == "HEAD" { return nil }
        return Self.error(405, code: "method_not_allowed", "\(request.rawPath) accepts GET only, not \(request.method)",
                          headers: [("Allow", "GET, HEAD")])
    }

    static func json(_ bytes: [UInt8], status: Int = 200) -> HTTPResponse {
        HTTPResponse.json(bytes: bytes, status: status)
    }

    /// `{"error": {"code": ..., "message": ..., "field": null}}`, the shape of a 400.
    static func error(_ status: Int, code: String, _ message: String, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse.json(bytes: RequestError(code: code, message: message).jsonBytes, status: status, headers: headers)
    }
}

/// Bytes that live as long as their owner and never change.
final class ConstantBytes: @unchecked Sendable {
    // Written once in `init`; read-only afterwards.
    let bytes: UnsafeBufferPointer<UInt8>

    init(_ text: String) {
        let copy = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(text.utf8.count, 1))
        _ = copy.initialize(from: text.utf8)
        bytes = UnsafeBufferPointer(start: copy.baseAddress, count: text.utf8.count)
    }

    deinit { bytes.deallocate() }
}
