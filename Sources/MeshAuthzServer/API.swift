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

    public init(convention: GatewayConvention = .any, namespace: String? = nil, labels: [String: String]? = nil,
                pathNormalization: PathNormalizationMode = .base) {
        self.convention = convention
        self.namespace = namespace
        self.labels = labels
        self.pathNormalization = pathNormalization
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
    let logger: Logger
    let logDecisions: Bool
    /// The configured destination as the bytes the gateway path reads.
    private let defaultNamespaceBytes: ConstantBytes?
    private let defaultWorkloadBytes: ConstantBytes?

    public init(store: PolicyStore, metrics: Metrics, reading: RequestReading = RequestReading(),
                trust: ForwardedTrust = ForwardedTrust(), logger: Logger, logDecisions: Bool = false) {
        self.store = store
        self.metrics = metrics
        self.reading = reading
        self.trust = trust
        self.logger = logger
        self.logDecisions = logDecisions
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
        let (endpoint, response) = route(request)
        metrics.recordHTTP(endpoint, status: response.status)
        return response
    }

    /// The handler of the plaintext probe listener (`serve --health-listen`): `/healthz`, `/readyz` and
    /// `/metrics` only, so that probes and scrapers need no client certificate while decisions do.
    public func handleProbe(_ request: HTTPRequest) -> HTTPResponse {
        let (endpoint, response): (Metrics.Endpoint, HTTPResponse)
        switch request.rawPath {
        case "/healthz", "/readyz", "/metrics":
            (endpoint, response) = route(request)
        default:
            (endpoint, response) = (.notFound, Self.error(404, code: "not_found",
                                                          "this listener serves /healthz, /readyz and /metrics only"))
        }
        metrics.recordHTTP(endpoint, status: response.status)
        return response
    }

    func route(_ request: HTTPRequest) -> (Metrics.Endpoint, HTTPResponse) {
        // The gateway entry point first, read off the raw target's bytes (this runs on every decision).
        switch Self.extAuthzTarget(request.rawTarget) {
        case .bare: return (.extAuthz, extAuthz(request, forwardedPathAt: nil))
        case .forwarded(let offset): return (.extAuthz, extAuthz(request, forwardedPathAt: offset))
        case .other: break
        }
        let path = request.rawPath
        switch path {
        case "/v1/check":
            return (.check, check(request))
        case "/healthz":
            return (.healthz, onlyGET(request) ?? Self.json(Self.healthBody))
        case "/readyz":
            return (.readyz, onlyGET(request) ?? readyz())
        case "/metrics":
            if let refused = onlyGET(request) { return (.metrics, refused) }
            let text = metrics.render(state: store.current)
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

    func check(_ request: HTTPRequest) -> HTTPResponse {
        guard request.method == "POST" else {
            return Self.error(405, code: "method_not_allowed", "/v1/check accepts POST only, not \(request.method)",
                              headers: [("Allow", "POST")])
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
        let answers = store.withCurrent { state in
            prepared.map { one in
                let decision = decide(one.request, state)
                // Only "nothing applies" decisions can come from a destination nothing applies to.
                let warnings = decision.stage == .noAllowPolicy
                    ? state.loaded?.policySet.destinationWarnings(one.request.destination) ?? [] : []
                return CheckAnswer(decision: decision, normalizedPath: one.normalizedPath, warnings: warnings)
            }
        }
        if logDecisions {
            for (one, answer) in zip(prepared, answers) { logDecision(answer.decision, one.request, via: "/v1/check") }
        }
        switch body {
        case .single: return HTTPResponse.json(bytes: answers[0].jsonBytes)
        case .batch: return HTTPResponse.json(bytes: CheckAnswer.jsonBytes(answers))
        }
    }

    /// Decides under `state`, timing the engine and counting the result.
    @inline(__always)
    func decide(_ request: CheckRequest, _ state: PolicyState) -> Decision {
        timed({ state.evaluate(request) }, allowed: \.allowed)
    }

    /// Runs an engine, recording its time and result in the metrics.
    @inline(__always)
    func timed<R>(_ evaluate: () -> R, allowed: (R) -> Bool) -> R {
        let started = monotonicNanoseconds()
        let result = evaluate()
        metrics.recordDecision(allowed: allowed(result), nanoseconds: monotonicNanoseconds() &- started)
        return result
    }

    func logDecision(_ decision: Decision, _ request: CheckRequest, via endpoint: String) {
        let rule = decision.rule?.description ?? "-"
        let method = request.request.method ?? "-"
        let path = request.request.path ?? "-"
        let principal = request.source.principal ?? "-"
        let namespace = request.destination.namespace ?? "-"
        logger.info("""
            decision \(decision.allowed ? "ALLOW" : "DENY") \(decision.stage.rawValue) rule=\(rule) via=\(endpoint) \
            method=\(method) path=\(path) principal=\(principal) destination=\(namespace)
            """)
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
        w.endObject()
        return HTTPResponse.json(bytes: w.bytes)
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
