import MeshAuthz
import MicroHTTPD

/// `/ext_authz` behind the sidecar's jwt_authn: when a RequestAuthentication applies to the destination, its
/// tokens are read from the original request (headers, query, cookies) and checked before authorization.
/// A rejected token is Envoy's 401 (403 for an audience) with its `www-authenticate` header and body text;
/// a verified one is the identity the policies see, and on allow its output headers (`outputClaimToHeaders`,
/// `outputPayloadToHeader`) are response headers the gateway passes upstream (`allowed_upstream_headers`).
///
/// Requests without a token and destinations without a RequestAuthentication stay on the gateway fast path;
/// only a verified identity (or a client-sent header the sidecar would strip) costs a `CheckRequest`.
extension API {
    /// nil: authentication changes nothing, the fast path answers.
    func authenticatedAnswer(_ question: GatewayRequest, _ loaded: LoadedPolicySet, _ request: HTTPRequest,
                             started: UInt64) -> HTTPResponse? {
        func text(_ bytes: UnsafeBufferPointer<UInt8>?) -> String? { bytes.map { String(decoding: $0, as: UTF8.self) } }
        let authentication = loaded.authentication
        let plan = loaded.gatewayPlans.plan(namespace: question.namespace, workload: question.workload) { namespace in
            let workload = CheckRequest.Workload(namespace: namespace, labels: WorkloadLabels.dictionary(question.workload) ?? [:])
            let rules = authentication.authenticator.rules(for: workload)
            return GatewayAuthenticationPlans.Plan(
                key: "", rules: rules, workload: workload,
                readsParameters: rules.contains { !$0.paramLocations.isEmpty },
                wanted: rules.isEmpty ? [] : authentication.authenticator.headerNames(for: rules).sorted().map { Array($0.utf8) },
                strict: authentication.peerAuthentication.mode(for: workload).mode == .strict)
        }
        let rules = plan.rules
        guard !rules.isEmpty else { return nil }
        // Only the headers the extractor reads are copied out of the request.
        var headers: [(name: String, value: String)] = []
        for field in question.headers {
            for name in plan.wanted where asciiCaseInsensitiveEqual(field.name, name) {
                headers.append((String(decoding: name, as: UTF8.self), String(decoding: field.value, as: UTF8.self)))
            }
        }
        let input = AuthenticationInput(method: text(question.method), target: text(question.target),
                                        host: text(question.host), headers: headers)
        let now = Int64(WallTime.now().seconds)
        // The same destination, token-bearing headers (and query, when a rule reads parameters): the same result
        // while the tokens are valid. Not for a preflight, whose result depends on more headers.
        var key: TokenKey?
        if !headers.isEmpty && input.method != "OPTIONS" {
            var text = plan.key
            for header in headers { text += "\u{0}" + header.name + "\u{0}" + header.value }
            if plan.readsParameters, let target = input.target, target.utf8.contains(UInt8(ascii: "?")) { text += "\u{0}?" + target }
            key = TokenKey(text)
        }
        var result: AuthenticationResult
        if let key, let known = loaded.tokenCache.result(for: key, now: now) {
            result = known
            result.validations = known.validations.map { ($0.issuer, "cached") }
        } else {
            result = authentication.authenticator.authenticate(
                input, rules: rules, now: now, remoteKeys: keySets.keys(for:), cache: loaded.tokenCache)
            if let key, result.identity != nil, result.staleKeySets.isEmpty, case .passed = result.verdict {
                loaded.tokenCache.keep(result, for: key)
            }
        }
        if !result.validations.isEmpty { metrics.recordValidations(result.validations) }
        for uri in result.staleKeySets { fetcher?.refreshSoon(uri) }
        switch result.verdict {
        case .notApplicable:
            return nil
        case .failed(let status):
            // STRICT mTLS refuses a plaintext connection before any filter runs: the fast path says so.
            if plan.strict && !question.isMTLS { return nil }
            // A failed token decides without the engine (the closure is not called).
            let decision = authentication.decide(question.checkRequest, result) { _ in loaded.engine.evaluate(question.checkRequest) }
            metrics.recordDecision(.extAuthz, decision, nanoseconds: 0)
            if let decisionLog, decisionLog.wants(allowed: false) { log(decision, question, request, started: started, to: decisionLog) }
            return Self.unauthenticated(status, host: input.host ?? "", target: input.target ?? "/")
        case .passed:
            let stripped = result.removedHeaders.map { Array($0.utf8) }
            let strips = question.headers.contains { field in stripped.contains { asciiCaseInsensitiveEqual(field.name, $0) } }
            if result.identity == nil && !strips { return nil }
            // The gateway request itself, with the verified payload and the headers as jwt_authn leaves them: the
            // compiled matcher reads it in place, as on the fast path.
            let changes = HeaderChanges(removed: result.removedHeaders, added: result.upstreamHeaders)
            let (decision, outcome) = GatewayAuthentication.with(claims: result.identity?.claims, headerChanges: changes) { effect in
                var authenticated = question
                authenticated.authentication = effect
                return timed(.extAuthz, { loaded.engine.evaluate(authenticated) }, decision: { $0.decision })
            }
            if let decisionLog, decisionLog.wants(allowed: decision.allowed) {
                log(decision, question, request, started: started, to: decisionLog)
            }
            let answer = { Self.authenticatedAnswer(decision, result) }
            guard let outcome else { return answer() }
            // The answer depends on the outcome and on what the token adds or removes upstream: a user's repeated
            // requests (and every user's, without output headers) reuse one.
            let key = AuthenticatedAnswerKey(outcome: outcome, upstreamHeaders: result.upstreamHeaders.map { [$0.name, $0.value] },
                                             removedHeaders: result.removedHeaders)
            return loaded.authenticatedAnswers.response(key, answer)
        }
    }

    /// The decision's answer, and on allow the headers the gateway passes upstream.
    static func authenticatedAnswer(_ decision: Decision, _ result: AuthenticationResult) -> HTTPResponse {
        var response = Self.gatewayAnswer(decision)
        if decision.allowed {
            for (name, value) in result.upstreamHeaders { response.headers.append((name, headerSafe(value, limit: 8192))) }
            // Envoy's ext_authz removes these from the upstream request, as jwt_authn would have. Not the ones
            // set just above: Envoy applies the removal after them, and a set header replaces the client's anyway.
            let set = Set(result.upstreamHeaders.map(\.name))
            let removed = result.removedHeaders.filter { !set.contains($0) }
            if !removed.isEmpty {
                response.headers.append(("x-envoy-auth-headers-to-remove", removed.joined(separator: ",")))
            }
        }
        return response
    }

    /// Envoy's jwt_authn rejection: 401 (403 for an audience), `www-authenticate`, the status text as body.
    static func unauthenticated(_ status: JWTStatus, host: String, target: String) -> HTTPResponse {
        let headers: [(String, String)] = [
            ("Content-Type", "text/plain"),
            ("www-authenticate", headerSafe("Bearer realm=\"http://\(host)\(target)\", error=\"invalid_token\"", limit: 8192)),
            ("x-meshauthz-decision", "DENY"),
            ("x-meshauthz-reason", headerSafe("request authentication failed: " + status.message)),
        ]
        return HTTPResponse(status: status.httpStatus, headers: headers, body: Array(status.message.utf8))
    }
}

/// What an authenticated `/ext_authz` answer depends on: the engine's outcome and the token's effect upstream.
public struct AuthenticatedAnswerKey: Hashable, Sendable {
    let outcome: OutcomeKey
    let upstreamHeaders: [[String]]
    let removedHeaders: [String]
}

/// Header names compared as HTTP does (ASCII case-insensitively).
func asciiCaseInsensitiveEqual(_ a: UnsafeBufferPointer<UInt8>, _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    for i in 0..<a.count {
        var x = a[i], y = b[i]
        if x &- 65 < 26 { x |= 0x20 }
        if y &- 65 < 26 { y |= 0x20 }
        if x != y { return false }
    }
    return true
}

/// Per policy set: what a gateway destination (namespace and `k=v` workload text, as the gateway sends them)
/// needs for authentication, worked out once: the rules that apply, the headers they read, whether STRICT mTLS
/// answers first. Bounded: past `capacity` destinations, plans are worked out per request and not kept.
public final class GatewayAuthenticationPlans: Sendable {
    public struct Plan: Sendable {
        /// The destination as text, unique per plan (a prefix of the result cache's keys).
        var key: String
        let rules: [JWTRule]
        let workload: CheckRequest.Workload
        let readsParameters: Bool
        let wanted: [[UInt8]]
        let strict: Bool
    }

    private let plans = Locked<[String: Plan]>([:])
    let capacity: Int

    public init(capacity: Int = 4096) { self.capacity = capacity }

    func plan(namespace: UnsafeBufferPointer<UInt8>?, workload: UnsafeBufferPointer<UInt8>,
              make: (String?) -> Plan) -> Plan {
        let ns = namespace.map { String(decoding: $0, as: UTF8.self) }
        let key = (ns ?? "") + "\u{0}" + String(decoding: workload, as: UTF8.self) + (ns == nil ? "\u{0}" : "")
        if let known = plans.withLock({ $0[key] }) { return known }
        var made = make(ns)
        made.key = key
        plans.withLock { if $0.count < capacity { $0[key] = made } }
        return made
    }
}
