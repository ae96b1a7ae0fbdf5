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
    func extAuthz(_ request: HTTPRequest, forwardedPath: Substring?) -> HTTPResponse {
        var h = GatewayHeaders()
        request.forEachHeader { name, value in h.add(name, value) }

        let method: String
        let target: Substring
        let host: String?
        if let forwardedPath {
            method = request.method
            target = forwardedPath
            host = h.host
        } else if let uri = h.originalURI {
            method = h.originalMethod ?? request.method
            target = uri[...]
            host = h.host
        } else if let uri = h.forwardedURI {
            method = h.forwardedMethod ?? request.method
            target = uri[...]
            host = h.forwardedHost ?? h.host
        } else {
            return Self.gatewayError(
                "no original request: call /ext_authz/<path>, or send X-Original-URI or X-Forwarded-Uri",
                field: "X-Original-URI")
        }
        guard let normalized = PathNormalization.base(target) else {
            return Self.gatewayError("the request target is not a valid origin-form path (Envoy would refuse it)",
                                     field: "path")
        }

        var check = CheckRequest()
        check.request.method = method
        check.request.path = normalized.pathWithQuery
        check.request.host = host
        check.request.headers = h.headers

        // The caller: believed from a trusted forwarder only (see `ForwardedTrust`).
        let peerText = request.peerAddress
        let peerIP = peerText.flatMap { IPAddress($0) }
        let trusted = (h.xfcc != nil || h.sourceIP != nil)
            && trust.believes(peerIP: peerIP, peerIdentities: { request.peerCertificateURISANs })
        if trusted, let xfcc = h.xfcc, let principal = ForwardedClientCert.principal(fromHeader: xfcc) {
            check.source.principal = CheckRequest.Peer.withSPIFFEScheme(principal)
            check.source.mtls = true
        } else {
            check.source.mtls = false
        }
        if trusted, let text = h.sourceIP {
            guard let ip = IPAddress(text) else {
                return Self.gatewayError("x-authz-source-ip is not an IP address", field: "x-authz-source-ip")
            }
            check.source.ip = ip
        } else {
            check.source.ip = peerIP
        }

        check.destination.namespace = h.namespace ?? defaults.namespace
        if let workload = h.workload {
            guard let labels = parseWorkloadLabels(workload) else {
                return Self.gatewayError("x-authz-workload must be k=v pairs separated by commas", field: "x-authz-workload")
            }
            check.destination.labels = labels
        } else {
            check.destination.labels = defaults.labels
        }
        if let text = h.port {
            guard let port = Int(text), (0...65535).contains(port) else {
                return Self.gatewayError("x-authz-port must be a port number (0-65535)", field: "x-authz-port")
            }
            check.destination.port = port
        }

        let decision = store.withCurrent { decide(check, $0) }
        if logDecisions { logDecision(decision, check, via: "/ext_authz") }
        return Self.gatewayAnswer(decision)
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

/// The headers `/ext_authz` reads, gathered in one pass over the request's headers.
struct GatewayHeaders {
    var headers: [String: String] = [:]
    var host: String?
    var xfcc: String?
    var namespace: String?
    var workload: String?
    var port: String?
    var sourceIP: String?
    var originalMethod: String?
    var originalURI: String?
    var forwardedMethod: String?
    var forwardedURI: String?
    var forwardedHost: String?

    init() { headers.reserveCapacity(16) }

    mutating func add(_ rawName: String, _ value: String) {
        let name = asciiLowercased(rawName)
        let present: String? = value.isEmpty ? nil : value
        switch name {
        // The PDP's own inputs: not headers of the original request.
        case "x-authz-namespace": namespace = present; return
        case "x-authz-workload": workload = present; return
        case "x-authz-port": port = present; return
        case "x-authz-source-ip": sourceIP = present; return
        case "host": host = present
        case "x-forwarded-client-cert": xfcc = present
        case "x-original-method": originalMethod = present
        case "x-original-uri": originalURI = present
        case "x-forwarded-method": forwardedMethod = present
        case "x-forwarded-uri": forwardedURI = present
        case "x-forwarded-host": forwardedHost = present
        default: break
        }
        if let previous = headers[name] {
            headers[name] = previous + "," + value
        } else {
            headers[name] = value
        }
    }
}

/// ASCII lower-casing; the string itself when it has no upper-case letter (the usual case).
@inline(__always)
func asciiLowercased(_ s: String) -> String {
    guard s.utf8.contains(where: { $0 &- 65 < 26 }) else { return s }
    return String(decoding: s.utf8.map { $0 &- 65 < 26 ? $0 | 0x20 : $0 }, as: UTF8.self)
}

/// `app=api-service,version=v1` (spaces around items ignored; empty text means no labels); nil when an
/// item has no `=` or an empty key.
public func parseWorkloadLabels(_ text: String) -> [String: String]? {
    var labels: [String: String] = [:]
    for item in text.split(separator: ",", omittingEmptySubsequences: true) {
        let trimmed = item.trimmingSpaces()
        if trimmed.isEmpty { continue }
        guard let eq = trimmed.firstIndex(of: "=") else { return nil }
        let key = trimmed[..<eq].trimmingSpaces()
        let value = trimmed[trimmed.index(after: eq)...].trimmingSpaces()
        guard !key.isEmpty else { return nil }
        labels[String(key)] = String(value)
    }
    return labels
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
    let count = text.utf8.count
    let clean = !text.utf8.contains { $0 < 0x20 || $0 > 0x7E }
    if clean && count <= limit { return text }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(min(count, limit))
    for byte in text.utf8 {
        if count > limit && bytes.count == limit - 3 {
            bytes.append(contentsOf: [0x2E, 0x2E, 0x2E])
            break
        }
        bytes.append(byte < 0x20 || byte > 0x7E ? 0x3F : byte)
    }
    return String(decoding: bytes, as: UTF8.self)
}
