import MeshAuthz
import MicroHTTPD

/// `/ext_authz`: the gateway entry point, any method. 200 allows, 403 denies, never anything else for a
/// request that reached the handler (nginx turns any other code into a 500; Envoy allows only on 200).
///
/// The original request:
/// - `/ext_authz/<rest>` (Envoy ext_authz HTTP, `path_prefix: /ext_authz`): `<method> /<rest>`, query
///   included, Host = the original host. The `X-Original-*` / `X-Forwarded-*` headers are ignored.
/// - bare `/ext_authz` with `X-Original-URI` (nginx `auth_request`): method from `X-Original-Method`
///   (else the request's own), host from `Host`.
/// - bare `/ext_authz` with `X-Forwarded-Uri` (Traefik `forwardAuth`): method from `X-Forwarded-Method`,
///   host from `X-Forwarded-Host` (else `Host`).
/// An empty header counts as absent (nginx removes a header by setting it to "").
///
/// The target goes through `PathNormalization.base` (Istio's default BASE normalization; a no-op on a
/// path Envoy already normalized), so the same request gets the same decision through every gateway.
///
/// The caller: `URI=` of the last element of `x-forwarded-client-cert` (mTLS exactly when there is one);
/// `source.ip` from `x-authz-source-ip`, else the TCP peer. Both only from a trusted forwarder
/// (`ForwardedTrust`: loopback by default); from another peer they are ignored. The destination: `x-authz-namespace`,
/// `x-authz-workload` (`k=v,k=v`), `x-authz-port`, defaulting to `serve --default-namespace` /
/// `--default-workload`. Every other header (names lower-cased, repeated ones joined with `,`) is a
/// request header for `request.headers[...]` conditions.
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
                for field in fields where h.read(field) {
                    (kept.baseAddress! + count).initialize(to: HeaderField(name: field.name, value: field.value))
                    count += 1
                }
                return extAuthz(request, forwardedPathAt: forwardedPathAt, h, UnsafeBufferPointer(rebasing: kept[..<count]))
            }
        }
    }

    private func extAuthz(_ request: HTTPRequest, forwardedPathAt: Int?, _ h: GatewayHeaders,
                          _ headers: UnsafeBufferPointer<HeaderField>) -> HTTPResponse {
        // The original request: method, target and host by the caller's convention.
        var target: Bytes
        var method: Bytes?
        var host = h.host
        if forwardedPathAt != nil {
            target = Bytes(start: nil, count: 0)  // set below, from the raw target
        } else if let uri = h.originalURI {
            target = uri
            method = h.originalMethod
        } else if let uri = h.forwardedURI {
            target = uri
            method = h.forwardedMethod
            host = h.forwardedHost ?? h.host
        } else {
            return Self.gatewayError(
                "no original request: call /ext_authz/<path>, or send X-Original-URI or X-Forwarded-Uri",
                field: "X-Original-URI")
        }
        var ownMethod = request.method
        var rawTarget = request.rawTarget
        return rawTarget.withUTF8 { own in
            if let start = forwardedPathAt { target = Bytes(rebasing: own[start...]) }
            return ownMethod.withUTF8 { requestMethod in
                PathNormalization.withBase(target) { normalized in
                    guard let normalized else {
                        return Self.gatewayError("the request target is not a valid origin-form path (Envoy would refuse it)",
                                                 field: "path")
                    }
                    return judge(request, h, GatewayRequest(
                        method: method ?? requestMethod, target: normalized, host: host, principal: nil, isMTLS: false,
                        sourceIP: nil, namespace: h.namespace ?? defaultNamespace, workload: h.workload ?? defaultWorkload,
                        port: nil, headers: headers))
                }
            }
        }
    }

    /// The caller (believed from a trusted forwarder only, see `ForwardedTrust`) and the destination, then
    /// the decision and its answer.
    private func judge(_ request: HTTPRequest, _ h: GatewayHeaders, _ question: GatewayRequest) -> HTTPResponse {
        var question = question
        let peerIP = request.peerIP.map { IPAddress(high: $0.high, low: $0.low, isV4: $0.isV4) }
        let trusted = (h.xfcc != nil || h.sourceIP != nil)
            && trust.believes(peerIP: peerIP, peerIdentities: { request.peerCertificateURISANs })
        question.sourceIP = peerIP
        if trusted, let text = h.sourceIP {
            guard let ip = IPAddress(String(decoding: text, as: UTF8.self)) else {
                return Self.gatewayError("x-authz-source-ip is not an IP address", field: "x-authz-source-ip")
            }
            question.sourceIP = ip
        }
        if h.workload != nil && !WorkloadLabels.isValid(question.workload) {
            return Self.gatewayError("x-authz-workload must be k=v pairs separated by commas", field: "x-authz-workload")
        }
        if let text = h.port {
            guard let port = parsePort(text) else {
                return Self.gatewayError("x-authz-port must be a port number (0-65535)", field: "x-authz-port")
            }
            question.port = port
        }
        guard trusted, let xfcc = h.xfcc else { return answer(question) }
        return ForwardedClientCert.withPrincipal(fromHeader: xfcc) { principal in
            question.principal = principal
            question.isMTLS = principal != nil
            return answer(question)
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
            let (decision, outcome) = timed({ loaded.engine.evaluate(question) }, allowed: { $0.decision.allowed })
            if logDecisions { logDecision(decision, question.checkRequest, via: "/ext_authz") }
            // Answers without reports depend on the decision alone: built once per outcome, then reused.
            guard outcome >= 0 else { return Self.gatewayAnswer(decision) }
            return loaded.answers.response(outcome) { Self.gatewayAnswer(decision) }
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

/// The headers `/ext_authz` reads itself, found in one pass over the request's headers (as bytes,
/// borrowed from libmicrohttpd for the handler call). An empty value counts as absent.
struct GatewayHeaders {
    var host: Bytes?
    var xfcc: Bytes?
    var namespace: Bytes?
    var workload: Bytes?
    var port: Bytes?
    var sourceIP: Bytes?
    var originalMethod: Bytes?
    var originalURI: Bytes?
    var forwardedMethod: Bytes?
    var forwardedURI: Bytes?
    var forwardedHost: Bytes?

    /// Notes `field` if it is one of ours; false for the PDP's own inputs (`x-authz-*`), which are not
    /// headers of the original request.
    @inline(__always)
    mutating func read(_ field: HTTPHeaderField) -> Bool {
        let name = field.name
        let value: Bytes? = field.value.isEmpty ? nil : field.value
        switch name.count {
        case 4 where name.isLowercase("host"): host = value
        case 12 where name.isLowercase("x-authz-port"): port = value; return false
        case 14 where name.isLowercase("x-original-uri"): originalURI = value
        case 15 where name.isLowercase("x-forwarded-uri"): forwardedURI = value
        case 16 where name.isLowercase("x-authz-workload"): workload = value; return false
        case 16 where name.isLowercase("x-forwarded-host"): forwardedHost = value
        case 17 where name.isLowercase("x-authz-namespace"): namespace = value; return false
        case 17 where name.isLowercase("x-authz-source-ip"): sourceIP = value; return false
        case 17 where name.isLowercase("x-original-method"): originalMethod = value
        case 18 where name.isLowercase("x-forwarded-method"): forwardedMethod = value
        case 23 where name.isLowercase("x-forwarded-client-cert"): xfcc = value
        default: break
        }
        return true
    }
}

extension UnsafeBufferPointer where Element == UInt8 {
    /// ASCII case-insensitive equality with a lower-case name of the same length.
    @inline(__always)
    func isLowercase(_ lower: StaticString) -> Bool {
        let expected = lower.utf8Start
        for i in 0..<count where (self[i] &- 65 < 26 ? self[i] | 0x20 : self[i]) != expected[i] { return false }
        return true
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
