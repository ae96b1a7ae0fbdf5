/// How a gateway hands meshauthz the request it wants judged, and where each forwarded fact is read.
///
/// Each fact has exactly one source per convention (SECURITY.md has the same table):
///
/// | fact                     | envoy (`/ext_authz/<path>`) | nginx (`/ext_authz` + `X-Original-URI`) | traefik (`/ext_authz` + `X-Forwarded-Uri`) |
/// |--------------------------|-----------------------------|------------------------------------------|--------------------------------------------|
/// | method                   | the request line's method   | `X-Original-Method` (required)           | `X-Forwarded-Method` (required)            |
/// | target                   | the raw target after `/ext_authz` | `X-Original-URI`                   | `X-Forwarded-Uri`                          |
/// | host                     | `Host`                      | `Host`                                   | `X-Forwarded-Host` (required)              |
/// | caller (principal)       | `x-forwarded-client-cert`   | `x-forwarded-client-cert`                | none: refused if present                   |
/// | source IP                | `x-authz-source-ip`         | `x-authz-source-ip`                      | right-most `X-Forwarded-For` element       |
/// | destination ns, workload, port | `x-authz-namespace`, `-workload`, `-port` | the same              | none (serve flags only): refused if present |
///
/// The caller and source IP are believed only from a trusted forwarder (`ForwardedTrust`, decided by the
/// server); from anyone else they are ignored. Traefik's forwardAuth copies the client's headers to the
/// authorization request by default, so under that convention no header can carry a fact the client must
/// not choose: the destination comes from `serve --default-namespace/--default-workload`, and the
/// caller's identity is not available.
///
/// A request that carries another convention's original-request headers (`X-Original-URI` or
/// `X-Original-Method` with `X-Forwarded-Uri` or `X-Forwarded-Method`, or any of them on
/// `/ext_authz/<path>`) is refused rather than judged on the first one found: a client behind a gateway that
/// passes its headers through could otherwise choose the path that is judged. So is a request that
/// repeats a header meshauthz reads (which copy would the gateway have meant?), and one whose method is
/// not an upper-case token (Envoy answers such a request with 400; it never reaches a backend).
public enum GatewayConvention: String, CaseIterable, Sendable {
    /// Detected per request from the target and headers; conflicting conventions are refused.
    case any
    /// Envoy ext_authz HTTP with `path_prefix: /ext_authz`.
    case envoy
    /// nginx `auth_request`.
    case nginx
    /// Traefik `forwardAuth`.
    case traefik
}

/// The headers `/ext_authz` reads itself, found in one pass over the request's headers (bytes borrowed
/// from the HTTP layer). An empty value counts as absent (nginx removes a header by setting it to "").
public struct GatewayHeaders {
    public var host: Bytes?
    public var xfcc: Bytes?
    public var namespace: Bytes?
    public var workload: Bytes?
    public var port: Bytes?
    public var sourceIP: Bytes?
    public var originalMethod: Bytes?
    public var originalURI: Bytes?
    public var forwardedMethod: Bytes?
    public var forwardedURI: Bytes?
    public var forwardedHost: Bytes?
    public var forwardedFor: Bytes?
    /// The first header read here that came more than once, if any.
    public var repeated: StaticString?

    public init() {}

    /// Notes the header if it is one of ours; false for the PDP's own inputs (`x-authz-*`), which are not
    /// headers of the original request and so are kept out of `request.headers[...]`.
    @inlinable @inline(__always)  // runs per header of every gateway request: inlined into the server's loop
    public mutating func read(name: Bytes, value: Bytes) -> Bool {
        switch name.count {
        case 4 where name.isLowercase("host"): Self.note(&host, value, "host", &repeated)
        case 12 where name.isLowercase("x-authz-port"): Self.note(&port, value, "x-authz-port", &repeated); return false
        case 14 where name.isLowercase("x-original-uri"): Self.note(&originalURI, value, "x-original-uri", &repeated)
        case 15 where name.isLowercase("x-forwarded-uri"): Self.note(&forwardedURI, value, "x-forwarded-uri", &repeated)
        case 15 where name.isLowercase("x-forwarded-for"): Self.note(&forwardedFor, value, "x-forwarded-for", &repeated)
        case 16 where name.isLowercase("x-authz-workload"): Self.note(&workload, value, "x-authz-workload", &repeated); return false
        case 16 where name.isLowercase("x-forwarded-host"): Self.note(&forwardedHost, value, "x-forwarded-host", &repeated)
        case 17 where name.isLowercase("x-authz-namespace"): Self.note(&namespace, value, "x-authz-namespace", &repeated); return false
        case 17 where name.isLowercase("x-authz-source-ip"): Self.note(&sourceIP, value, "x-authz-source-ip", &repeated); return false
        case 17 where name.isLowercase("x-original-method"): Self.note(&originalMethod, value, "x-original-method", &repeated)
        case 18 where name.isLowercase("x-forwarded-method"): Self.note(&forwardedMethod, value, "x-forwarded-method", &repeated)
        case 23 where name.isLowercase("x-forwarded-client-cert"): Self.note(&xfcc, value, "x-forwarded-client-cert", &repeated)
        default: break
        }
        return true
    }

    @inlinable @inline(__always)
    static func note(_ slot: inout Bytes?, _ value: Bytes, _ name: StaticString, _ repeated: inout StaticString?) {
        // nginx clears a header by setting it to "": absent, neither a value nor a repetition (an empty
        // trailing line must not erase the one before it either).
        guard !value.isEmpty else { return }
        if slot != nil, repeated == nil { repeated = name }
        slot = value
    }

    /// The original request and the forwarded facts under `convention`, or why the request cannot be
    /// judged. `forwardedTarget` is the raw target after `/ext_authz` (`/ext_authz/<path>`), nil for a bare
    /// `/ext_authz`; `ownMethod` is the method of the request meshauthz received.
    public func resolve(_ convention: GatewayConvention, ownMethod: Bytes,
                        forwardedTarget: Bytes?) -> Result<ForwardedRequest, GatewayRefusal> {
        if let repeated {
            return .failure(GatewayRefusal("\(repeated) is sent more than once: which one did the gateway mean?",
                                           field: "\(repeated)"))
        }
        let nginxMarks = originalURI != nil || originalMethod != nil
        let traefikMarks = forwardedURI != nil || forwardedMethod != nil
        let detected: GatewayConvention
        switch (forwardedTarget != nil, nginxMarks, traefikMarks) {
        case (true, false, false): detected = .envoy
        case (false, true, false): detected = .nginx
        case (false, false, true): detected = .traefik
        case (false, false, false):
            return .failure(GatewayRefusal(
                "no original request: call /ext_authz/<path> (Envoy), or send X-Original-URI (nginx) or X-Forwarded-Uri (Traefik)",
                field: "X-Original-URI"))
        case (true, _, _), (false, true, true):
            return .failure(GatewayRefusal(
                "the request carries the original-request headers of more than one gateway convention "
                    + "(/ext_authz/<path>, X-Original-*, X-Forwarded-Uri/-Method): a client may have added one",
                field: nginxMarks ? "X-Original-URI" : "X-Forwarded-Uri"))
        }
        switch convention {
        case .any: break
        case .envoy, .nginx, .traefik:
            guard detected == convention else {
                return .failure(GatewayRefusal(
                    "this listener serves the \(convention.rawValue) convention; the request follows \(detected.rawValue)'s",
                    field: nil))
            }
        }
        var facts = ForwardedRequest(convention: detected, method: ownMethod, target: forwardedTarget ?? Bytes(start: nil, count: 0),
                                     host: host, xfcc: xfcc, sourceIP: sourceIP, namespace: namespace,
                                     workload: workload, port: port)
        switch detected {
        case .envoy:
            break
        case .nginx:
            guard let originalURI else { return .failure(GatewayRefusal("X-Original-URI is missing", field: "X-Original-URI")) }
            guard let originalMethod else {
                return .failure(GatewayRefusal("X-Original-Method is missing (nginx: proxy_set_header X-Original-Method $request_method)",
                                               field: "X-Original-Method"))
            }
            facts.target = originalURI
            facts.method = originalMethod
        case .traefik:
            guard let forwardedURI else { return .failure(GatewayRefusal("X-Forwarded-Uri is missing", field: "X-Forwarded-Uri")) }
            guard let forwardedMethod else {
                return .failure(GatewayRefusal("X-Forwarded-Method is missing", field: "X-Forwarded-Method"))
            }
            guard let forwardedHost else {
                return .failure(GatewayRefusal("X-Forwarded-Host is missing", field: "X-Forwarded-Host"))
            }
            // Traefik copies the client's headers to the authorization request (authRequestHeaders unset):
            // none of these can be told apart from a client's own.
            let clientSettable: StaticString? =
                xfcc != nil ? "x-forwarded-client-cert" : namespace != nil ? "x-authz-namespace"
                : workload != nil ? "x-authz-workload" : port != nil ? "x-authz-port"
                : sourceIP != nil ? "x-authz-source-ip" : nil
            if let name = clientSettable {
                return .failure(GatewayRefusal(
                    "\(name) cannot come from Traefik's forwardAuth, which passes client headers through: "
                        + "restrict authRequestHeaders (see examples/traefik) and configure the destination with serve flags",
                    field: "\(name)"))
            }
            facts.target = forwardedURI
            facts.method = forwardedMethod
            facts.host = forwardedHost
            facts.xfcc = nil
            facts.sourceIP = forwardedFor.map(Self.lastListElement)
        case .any:
            preconditionFailure("detection yields a concrete convention")
        }
        guard HTTPMethod.isToken(facts.method) else {
            return .failure(GatewayRefusal(
                "the method is not an upper-case token ([A-Z]+): Envoy would refuse the request with 400",
                field: detected == .nginx ? "X-Original-Method" : detected == .traefik ? "X-Forwarded-Method" : "method"))
        }
        return .success(facts)
    }

    /// The right-most element of a comma-separated list (`X-Forwarded-For`), spaces trimmed: the one the
    /// nearest proxy wrote.
    static func lastListElement(_ list: Bytes) -> Bytes {
        var start = list.count
        while start > 0 && list[start - 1] != UInt8(ascii: ",") { start -= 1 }
        var end = list.count
        while start < end && (list[start] == 0x20 || list[start] == 0x09) { start += 1 }
        while end > start && (list[end - 1] == 0x20 || list[end - 1] == 0x09) { end -= 1 }
        return Bytes(rebasing: list[start..<end])
    }
}

/// The original request and what the gateway says about it, each from the one place its convention
/// names (`GatewayHeaders.resolve`). The target is raw: the caller normalizes it.
public struct ForwardedRequest {
    public var convention: GatewayConvention
    public var method: Bytes
    public var target: Bytes
    public var host: Bytes?
    /// `x-forwarded-client-cert`, to be believed only from a trusted forwarder.
    public var xfcc: Bytes?
    /// The caller's address as text, to be believed only from a trusted forwarder.
    public var sourceIP: Bytes?
    public var namespace: Bytes?
    public var workload: Bytes?
    public var port: Bytes?
}

/// A gateway request meshauthz refuses to judge (answered 403, fail closed), with the reason.
public struct GatewayRefusal: Error, Sendable, Equatable {
    public let message: String
    public let field: String?

    public init(_ message: String, field: String?) {
        self.message = message
        self.field = field
    }
}

/// HTTP methods as Envoy accepts them.
public enum HTTPMethod {
    /// Envoy's HTTP codecs refuse (400) a method that is not a token of upper-case letters, so a
    /// gateway never forwards `delete`, `DeLeTe`, `"DELETE "` or `GE(T`; such a method must never be judged
    /// (policies compare methods case-sensitively, and a DENY on `DELETE` would not see `delete`).
    @inline(__always)
    public static func isToken(_ method: UnsafeBufferPointer<UInt8>) -> Bool {
        guard !method.isEmpty, method.count <= 64 else { return false }
        for byte in method where byte &- UInt8(ascii: "A") >= 26 { return false }
        return true
    }

    public static func isToken(_ method: String) -> Bool {
        var copy = method
        return copy.withUTF8 { isToken($0) }
    }
}

extension UnsafeBufferPointer where Element == UInt8 {
    /// ASCII case-insensitive equality with a lower-case name of the same length.
    @inlinable @inline(__always)
    func isLowercase(_ lower: StaticString) -> Bool {
        let expected = lower.utf8Start
        for i in 0..<count where (self[i] &- 65 < 26 ? self[i] | 0x20 : self[i]) != expected[i] { return false }
        return true
    }
}
