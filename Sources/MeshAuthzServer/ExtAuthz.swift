import MeshAuthz
import MicroHTTPD

/// `/ext_authz`: the gateway entry point, any method. 200 allows, 403 denies, never anything else for a
/// request that reached the handler (nginx turns any other code into a 500; Envoy allows only on 200).
///
/// Where each fact of the original request is read depends on the gateway convention (`serve --gateway`,
/// `GatewayConvention` has the table): `/ext_authz/<rest>` is Envoy's, a bare `/ext_authz` with
/// `X-Original-URI` nginx's, with `X-Forwarded-Uri` Traefik's; a request mixing them, repeating a header
/// meshauthz reads, or with a method that is not an upper-case token is refused (403 with the reason).
///
/// The target goes through the configured path normalization (`serve --path-normalization`, Istio's
/// `BASE` by default; a no-op on a path Envoy already normalized), so the same request gets the same
/// decision through every gateway and through `/v1/check`.
///
/// The caller (`URI=` of the last element of `x-forwarded-client-cert`, mTLS exactly when there is one) and
/// `x-authz-source-ip` are believed only from a trusted forwarder (`ForwardedTrust`: loopback by default);
/// from another peer they are ignored and `source.ip` is the TCP peer. The destination is
/// `x-authz-namespace`, `x-authz-workload` (`k=v,k=v`) and `x-authz-port`, else `serve --default-namespace` /
/// `--default-workload`; a request whose destination is neither named nor configured is refused: there is
/// no implicit destination (a namespace where no policy applies would allow everything). Every other
/// header (names lower-cased, repeated ones joined with `,`) is a request header for
/// `request.headers[...]` conditions.
///
/// No Foundation, no JSON parsing, no regular expressions on this path.
extension API {
    /// `forwardedPathAt`: where the original target starts in the raw target (`/ext_authz/<rest>`); nil for
    /// bare `/ext_authz`.
    func extAuthz(_ request: HTTPRequest, forwardedPathAt: Int?) -> HTTPResponse {
        request.withHeaderFields { fields in
            withUnsafeTemporaryAllocation(of: HeaderField.self, capacity: max(fields.count, 1)) { kept in
                var h = GatewayHeaders()
                var count = 0
                for field in fields where h.read(name: field.name, value: field.value) {
                    precondition(count < kept.count, "more kept headers than headers")
                    (kept.baseAddress! + count).initialize(to: HeaderField(name: field.name, value: field.value))
                    count += 1
                }
                let headers = UnsafeBufferPointer(rebasing: kept[..<count])
                var ownMethod = request.method
                var rawTarget = request.rawTarget
                return rawTarget.withUTF8 { own in
                    ownMethod.withUTF8 { method in
                        let forwarded = forwardedPathAt.map { Bytes(rebasing: own[$0...]) }
                        switch h.resolve(reading.convention, ownMethod: method, forwardedTarget: forwarded) {
                        case .failure(let refusal): return Self.gatewayError(refusal.message, field: refusal.field)
                        case .success(let facts): return judge(request, facts, headers)
                        }
                    }
                }
            }
        }
    }

    /// The destination, the caller (believed from a trusted forwarder only, see `ForwardedTrust`), the
    /// normalized target, then the decision and its answer.
    private func judge(_ request: HTTPRequest, _ facts: ForwardedRequest,
                       _ headers: UnsafeBufferPointer<HeaderField>) -> HTTPResponse {
        guard let namespace = facts.namespace ?? defaultNamespace else {
            return Self.gatewayError(
                "no destination namespace: the gateway sends none (x-authz-namespace) and serve has no --default-namespace",
                field: "x-authz-namespace")
        }
        guard let workload = facts.workload ?? defaultWorkload else {
            return Self.gatewayError(
                "no destination workload: the gateway sends none (x-authz-workload) and serve has no --default-workload",
                field: "x-authz-workload")
        }
        if facts.workload != nil && !WorkloadLabels.isValid(workload) {
            return Self.gatewayError("x-authz-workload must be k=v pairs separated by commas", field: "x-authz-workload")
        }
        var port: Int?
        if let text = facts.port {
            guard let value = parsePort(text) else {
                return Self.gatewayError("x-authz-port must be a port number (0-65535)", field: "x-authz-port")
            }
            port = value
        }
        let peerIP = request.peerIP.map { IPAddress(high: $0.high, low: $0.low, isV4: $0.isV4) }
        let trusted = (facts.xfcc != nil || facts.sourceIP != nil)
            && trust.believes(peerIP: peerIP, peerIdentities: { request.peerCertificateURISANs })
        var sourceIP = peerIP
        if trusted, let text = facts.sourceIP {
            guard let ip = IPAddress(String(decoding: text, as: UTF8.self)) else {
                return Self.gatewayError("the forwarded source address is not an IP address",
                                         field: facts.convention == .traefik ? "X-Forwarded-For" : "x-authz-source-ip")
            }
            sourceIP = ip
        }
        return PathNormalization.with(reading.pathNormalization, facts.target) { normalized in
            guard let normalized else {
                return Self.gatewayError("the request target is not a valid origin-form path (Envoy would refuse it)",
                                         field: "path")
            }
            var question = GatewayRequest(
                method: facts.method, target: normalized, host: facts.host, principal: nil, isMTLS: false,
                sourceIP: sourceIP, namespace: namespace, workload: workload, port: port, headers: headers)
            guard trusted, let xfcc = facts.xfcc else { return answer(question) }
            return ForwardedClientCert.withPrincipal(fromHeader: xfcc, severalURIs: {
                Self.gatewayError(
                    "x-forwarded-client-cert names several URI SANs for the caller; Envoy would match each of them, meshauthz judges one identity",
                    field: "x-forwarded-client-cert")
            }) { principal in
                question.principal = principal
                question.isMTLS = principal != nil
                return answer(question)
            }
        }
    }

    private func answer(_ question: GatewayRequest) -> HTTPResponse {
        store.withCurrent { state in
            guard let loaded = state.loaded else {
                let decision = state.notReadyDecision
                metrics.recordDecision(allowed: false, nanoseconds: 0)
                if logDecisions { logDecision(decision, question.checkRequest, via: "/ext_authz") }
                return Self.gatewayAnswer(decision)
            }
            if !loaded.authentication.authenticator.isEmpty, let response = authenticatedAnswer(question, loaded) {
                return response
            }
            let (decision, outcome) = timed({ loaded.engine.evaluate(question) }, allowed: { $0.decision.allowed })
            if logDecisions { logDecision(decision, question.checkRequest, via: "/ext_authz") }
            // Answers without reports depend on the decision alone: built once per outcome, then reused.
            guard let outcome else { return Self.gatewayAnswer(decision) }
            // The cache's slots are the keys' indices (`ResponseCache(capacity: engine.outcomeCount)`).
            return loaded.answers.response(outcome.index) { Self.gatewayAnswer(decision) }
        }
    }

    /// 200 or 403, with the decision's headers and the decision itself as a small JSON body.
    static func gatewayAnswer(_ decision: Decision) -> HTTPResponse {
        var headers: [(String, String)] = [
            ("Content-Type", "application/json"),
            ("x-meshauthz-decision", decision.allowed ? "ALLOW" : "DENY"),
            ("x-meshauthz-reason", headerSafe(decision.reason)),
        ]
        if let rule = decision.rule {
            headers.append(("x-meshauthz-policy", headerSafe(rule.policy.description)))
            headers.append(("x-meshauthz-rule-id", headerSafe(rule.description)))
        }
        return HTTPResponse(status: decision.allowed ? 200 : 403, headers: headers, body: decision.jsonBytes)
    }

    /// A gateway request meshauthz cannot judge: denied (403, fail closed), with the reason.
    static func gatewayError(_ message: String, field: String?) -> HTTPResponse {
        let headers: [(String, String)] = [
            ("Content-Type", "application/json"),
            ("x-meshauthz-decision", "DENY"),
            ("x-meshauthz-reason", headerSafe("bad gateway request: " + message)),
        ]
        return HTTPResponse(status: 403, headers: headers,
                            body: RequestError(code: "invalid_request", message: message, field: field).jsonBytes)
    }
}

typealias Bytes = UnsafeBufferPointer<UInt8>

/// A decimal port, 0-65535.
func parsePort(_ text: Bytes) -> Int? {
    guard !text.isEmpty, text.count <= 5 else { return nil }
    var value = 0
    for byte in text {
        guard byte >= 0x30 && byte <= 0x39 else { return nil }
        value = value * 10 + Int(byte - 0x30)
    }
    return value <= 65535 ? value : nil
}

/// `app=api-service,version=v1` (see `WorkloadLabels`); nil when an item has no `=` or an empty key.
public func parseWorkloadLabels(_ text: String) -> [String: String]? {
    Array(text.utf8).withUnsafeBufferPointer(WorkloadLabels.dictionary)
}

extension Substring {
    func trimmingSpaces() -> Substring {
        var s = self
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return s
    }
}

/// Printable ASCII only (others become `?`), at most 200 bytes: safe as a header value anywhere.
func headerSafe(_ text: String, limit: Int = 200) -> String {
    var copy = text
    return copy.withUTF8 { bytes in
        var clean = bytes.count <= limit
        for byte in bytes where byte < 0x20 || byte > 0x7E {
            clean = false
            break
        }
        if clean { return text }
        var safe: [UInt8] = []
        safe.reserveCapacity(min(bytes.count, limit))
        for byte in bytes {
            if bytes.count > limit && safe.count == limit - 3 {
                safe.append(contentsOf: [0x2E, 0x2E, 0x2E])
                break
            }
            safe.append(byte < 0x20 || byte > 0x7E ? 0x3F : byte)
        }
        return String(decoding: safe, as: UTF8.self)
    }
}
