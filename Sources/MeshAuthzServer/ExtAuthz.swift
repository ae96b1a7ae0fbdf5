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
    func extAuthz(_ request: HTTPRequest, forwardedPathAt: Int?, started: UInt64) -> HTTPResponse {
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
                        case .success(let facts): return judge(request, facts, headers, started: started)
                        }
                    }
                }
            }
        }
    }

    /// The destination, the caller (believed from a trusted forwarder only, see `ForwardedTrust`), the
    /// normalized target, then the decision and its answer.
    private func judge(_ request: HTTPRequest, _ facts: ForwardedRequest,
                       _ headers: UnsafeBufferPointer<HeaderField>, started: UInt64) -> HTTPResponse {
        // `serve --workloads`: a request that names no destination is judged for the Service its Host names.
        if facts.namespace == nil && facts.workload == nil, let routes = reading.hostRouting {
            // One routing for the whole judgement: the candidates' bytes live in it.
            return routes.read { routing in
                switch routing.lookup(facts.host) {
                case .refused(let why): return Self.gatewayError(why, field: "host")
                case .workloads(let service, let candidates, let hostPort):
                    return judge(request, facts, headers, namespace: candidates[0].namespace.bytes,
                                 workload: candidates[0].labels.bytes, byHost: (service, candidates, hostPort), started: started)
                }
            }
        }
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
        return judge(request, facts, headers, namespace: namespace, workload: workload, byHost: nil, started: started)
    }

    /// The rest of `judge` once the destination is known; `byHost`: the Service a Host named and its workloads
    /// (the first is `namespace`/`workload`), each of which must get the same decision.
    private func judge(_ request: HTTPRequest, _ facts: ForwardedRequest, _ headers: UnsafeBufferPointer<HeaderField>,
                       namespace: Bytes, workload: Bytes,
                       byHost: (service: ResourceID, candidates: [HostRouting.Candidate], hostPort: Int?)?,
                       started: UInt64) -> HTTPResponse {
        var port: Int? = byHost.flatMap { $0.candidates[0].destinationPort($0.hostPort) }
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
            guard trusted, let xfcc = facts.xfcc else {
                return answer(question, request, started: started, byHost: byHost, explicitPort: facts.port != nil)
            }
            return ForwardedClientCert.withPrincipal(fromHeader: xfcc, severalURIs: {
                Self.gatewayError(
                    "x-forwarded-client-cert names several URI SANs for the caller; Envoy would match each of them, meshauthz judges one identity",
                    field: "x-forwarded-client-cert")
            }) { principal in
                question.principal = principal
                question.isMTLS = principal != nil
                return answer(question, request, started: started, byHost: byHost, explicitPort: facts.port != nil)
            }
        }
    }

    /// A Service's workloads may be under different policies: the request is answered only when every one
    /// of them gets the same decision, since the gateway, not meshauthz, picks the pod. All are judged on one
    /// snapshot of the policy set (a reload between two of them cannot make them look alike), and the first
    /// workload's decision is the answer's (evaluated once).
    private func answer(_ question: GatewayRequest, _ request: HTTPRequest, started: UInt64,
                        byHost: (service: ResourceID, candidates: [HostRouting.Candidate], hostPort: Int?)?,
                        explicitPort: Bool) -> HTTPResponse {
        store.withCurrent { state in
            guard let byHost, byHost.candidates.count > 1, let loaded = state.loaded else {
                return answer(question, request, started: started, state: state, known: nil)
            }
            // With RequestAuthentication the workloads are compared on the request as sent (a token's identity
            // is verified for the answering workload only), and the answer is worked out afresh.
            let authenticates = !loaded.authentication.authenticator.isEmpty
            let first = authenticates ? loaded.engine.evaluate(question)
                : timed(.extAuthz, { loaded.engine.evaluate(question) }, decision: { $0.decision })
            for candidate in byHost.candidates.dropFirst() {
                var other = question
                other.namespace = candidate.namespace.bytes
                other.workload = candidate.labels.bytes
                if !explicitPort { other.port = candidate.destinationPort(byHost.hostPort) }
                let decision = loaded.engine.evaluate(other).decision
                if decision.allowed != first.decision.allowed || decision.stage != first.decision.stage
                    || decision.rule != first.decision.rule {
                    return Self.gatewayError(
                        "the Host names the Service \(byHost.service), whose workloads \(byHost.candidates[0].workload) and \(candidate.workload) are under different policies for this request; name the workload (x-authz-workload)",
                        field: "host")
                }
            }
            return answer(question, request, started: started, state: state, known: authenticates ? nil : first)
        }
    }

    /// `known`: the engine's answer for `question` on this `state`, when the caller has it already (and has
    /// counted it in the metrics); only without authentication, whose verified identity changes the question.
    private func answer(_ question: GatewayRequest, _ request: HTTPRequest, started: UInt64, state: PolicyState,
                        known: (decision: Decision, outcome: OutcomeKey?)?) -> HTTPResponse {
        guard let loaded = state.loaded else {
            let decision = state.notReadyDecision
            metrics.recordDecision(.extAuthz, decision, nanoseconds: 0)
            if let decisionLog { log(decision, question, request, started: started, to: decisionLog) }
            return Self.gatewayAnswer(decision)
        }
        if !loaded.authentication.authenticator.isEmpty,
           let response = authenticatedAnswer(question, loaded, request, started: started) {
            return response
        }
        let (decision, outcome) = known ?? timed(.extAuthz, { loaded.engine.evaluate(question) }, decision: { $0.decision })
        // Built here only when this decision is logged; written by the log's own thread.
        if let decisionLog, decisionLog.wants(allowed: decision.allowed) {
            log(decision, question, request, started: started, to: decisionLog)
        }
        // An answer depends on its outcome alone: built once per outcome, then reused.
        guard let outcome else { return Self.gatewayAnswer(decision) }
        guard outcome.reports.isEmpty else {
            return loaded.reportingAnswers.response(outcome) { Self.gatewayAnswer(decision) }
        }
        // The cache's slots are the keys' indices (`ResponseCache(capacity: engine.outcomeCount)`).
        return loaded.answers.response(outcome.index) { Self.gatewayAnswer(decision) }
    }

    func log(_ decision: Decision, _ question: GatewayRequest, _ request: HTTPRequest, started: UInt64,
                     to decisionLog: DecisionLog) {
        decisionLog.enqueue(DecisionLogLine.build(
            endpoint: .extAuthz, requestID: request.header("x-request-id"), decision: decision,
            facts: .init(principal: question.principal, sourceIP: question.sourceIP, namespace: question.namespace,
                         workload: question.workload, method: question.method, host: question.host,
                         target: question.target, mtls: question.isMTLS),
            latencyNanoseconds: monotonicNanoseconds() &- started))
    }

    /// 200 or 403, with the decision's headers and the decision itself as a small JSON body. Dry-run and AUDIT
    /// matches are in `x-meshauthz-dry-run` (`WOULD_BE rule-id`, comma-separated) and `x-meshauthz-audit`
    /// (rule ids), so a gateway can log them; such answers are never cached (they carry reports).
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
        if !decision.dryRun.isEmpty {
            let text = decision.dryRun.map { "\($0.wouldBe) \($0.rule.description)" }.joined(separator: ", ")
            headers.append(("x-meshauthz-dry-run", headerSafe(text, limit: 2048)))
        }
        if !decision.audit.isEmpty {
            headers.append(("x-meshauthz-audit", headerSafe(decision.audit.map(\.rule.description).joined(separator: ", "), limit: 2048)))
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
