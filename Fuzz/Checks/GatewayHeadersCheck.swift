import MeshAuthz

/// The gateway header reader (`GatewayHeaders.read` and `resolve`, what `/ext_authz` runs on every request)
/// on arbitrary headers. Input layout: byte 0 picks the listener's convention (low two bits: any, envoy,
/// nginx, traefik) and whether the request is `/ext_authz/<path>` (bit 2); then `\n`-separated lines: the
/// request's own method, the forwarded target when bit 2 is set, then headers as `name:value`.
/// Beyond not crashing:
/// - a resolved request's method is an upper-case token;
/// - each fact comes from its convention's one place: nginx's method and target are X-Original-Method's and
///   X-Original-URI's values, Traefik's are X-Forwarded-Method's, -Uri's and -Host's, Envoy's the request's own;
/// - a resolved request never carries another convention's original-request headers, nor a repeated header
///   meshauthz reads; under Traefik it carries no XFCC and no x-authz-* fact;
/// - `any` resolves exactly when the convention it detects resolves, to the same facts.
public enum GatewayHeadersCheck {
    public static func check(_ input: UnsafeBufferPointer<UInt8>) -> [String] {
        guard let selector = input.first else { return [] }
        let conventions: [GatewayConvention] = [.any, .envoy, .nginx, .traefik]
        let convention = conventions[Int(selector & 3)]
        let forwarded = selector & 4 != 0
        var lines = input.dropFirst().split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)[...]
        let ownMethod = lines.popFirst().map { Array($0) } ?? []
        let target: [UInt8]? = forwarded ? (lines.popFirst().map { Array($0) } ?? []) : nil
        let headers: [([UInt8], [UInt8])] = lines.map { line in
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return (Array(line), []) }
            return (Array(line[..<colon]), Array(line[(colon + 1)...]))
        }
        var problems: [String] = []
        let outcome = resolve(convention, ownMethod, target, headers)
        guard case .success(let facts) = outcome else {
            if convention == .any, case .success = resolve(detected(headers, target), ownMethod, target, headers) {
                problems.append("any refused what its detected convention accepts")
            }
            return problems
        }
        func values(_ name: String) -> [[UInt8]] {
            headers.filter { String(decoding: $0.0, as: UTF8.self).lowercased() == name && !$0.1.isEmpty }.map(\.1)
        }
        if !facts.method.withUnsafeBufferPointer({ HTTPMethod.isToken($0) }) { problems.append("resolved a method that is not a token: \(facts.method)") }
        let nginxMarks = !values("x-original-uri").isEmpty || !values("x-original-method").isEmpty
        let traefikMarks = !values("x-forwarded-uri").isEmpty || !values("x-forwarded-method").isEmpty
        let read = ["host", "x-forwarded-client-cert", "x-authz-namespace", "x-authz-workload", "x-authz-port",
                    "x-authz-source-ip", "x-original-method", "x-original-uri", "x-forwarded-method", "x-forwarded-uri",
                    "x-forwarded-host", "x-forwarded-for"]
        for name in read where values(name).count > 1 { problems.append("accepted a repeated \(name)") }
        switch facts.convention {
        case .envoy:
            if nginxMarks || traefikMarks { problems.append("envoy request carried another convention's headers") }
            if facts.method != ownMethod || facts.target != target { problems.append("envoy facts not from the request line") }
        case .nginx:
            if traefikMarks || target != nil { problems.append("nginx request carried another convention's marks") }
            if [facts.method] != values("x-original-method") || [facts.target] != values("x-original-uri") {
                problems.append("nginx facts not from X-Original-*")
            }
        case .traefik:
            if nginxMarks || target != nil { problems.append("traefik request carried another convention's marks") }
            if [facts.method] != values("x-forwarded-method") || [facts.target] != values("x-forwarded-uri")
                || facts.host.map({ [$0] }) != values("x-forwarded-host") {
                problems.append("traefik facts not from X-Forwarded-*")
            }
            if facts.xfcc != nil || facts.namespace != nil || facts.workload != nil || facts.port != nil {
                problems.append("traefik request carried a client-settable fact")
            }
        case .any:
            problems.append("resolved to no concrete convention")
        }
        if convention == .any, case .success(let same) = resolve(facts.convention, ownMethod, target, headers) {
            if same != facts { problems.append("any and \(facts.convention) resolved differently") }
        } else if convention == .any {
            problems.append("any accepted what \(facts.convention) refuses")
        }
        return problems
    }

    /// The resolved facts as owned bytes (the buffers die with the call).
    struct Facts: Equatable {
        var convention: GatewayConvention
        var method: [UInt8], target: [UInt8], host: [UInt8]?, xfcc: [UInt8]?
        var namespace: [UInt8]?, workload: [UInt8]?, port: [UInt8]?, sourceIP: [UInt8]?
    }

    static func detected(_ headers: [([UInt8], [UInt8])], _ target: [UInt8]?) -> GatewayConvention {
        let names = Set(headers.filter { !$0.1.isEmpty }.map { String(decoding: $0.0, as: UTF8.self).lowercased() })
        if target != nil { return .envoy }
        if names.contains("x-original-uri") || names.contains("x-original-method") { return .nginx }
        return .traefik
    }

    static func resolve(_ convention: GatewayConvention, _ method: [UInt8], _ target: [UInt8]?,
                        _ headers: [([UInt8], [UInt8])]) -> Result<Facts, GatewayRefusal> {
        withBuffers(headers) { fields in
            var h = GatewayHeaders()
            for (name, value) in fields { _ = h.read(name: name, value: value) }
            return method.withUnsafeBufferPointer { method in
                func run(_ target: UnsafeBufferPointer<UInt8>?) -> Result<Facts, GatewayRefusal> {
                    h.resolve(convention, ownMethod: method, forwardedTarget: target).map { f in
                        Facts(convention: f.convention, method: Array(f.method), target: Array(f.target),
                              host: f.host.map(Array.init), xfcc: f.xfcc.map(Array.init), namespace: f.namespace.map(Array.init),
                              workload: f.workload.map(Array.init), port: f.port.map(Array.init), sourceIP: f.sourceIP.map(Array.init))
                    }
                }
                guard let target else { return run(nil) }
                return target.withUnsafeBufferPointer { run($0) }
            }
        }
    }

    /// The pairs as buffers that stay valid for the call (an empty array has no stable base address).
    static func withBuffers<R>(_ pairs: [([UInt8], [UInt8])],
                               _ body: ([(UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<UInt8>)]) -> R) -> R {
        let storage = pairs.map { pair -> (UnsafeMutableBufferPointer<UInt8>, Int, UnsafeMutableBufferPointer<UInt8>, Int) in
            let name = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(pair.0.count, 1))
            let value = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(pair.1.count, 1))
            _ = name.initialize(from: pair.0)
            _ = value.initialize(from: pair.1)
            return (name, pair.0.count, value, pair.1.count)
        }
        defer { for (name, _, value, _) in storage { name.deallocate(); value.deallocate() } }
        return body(storage.map { (UnsafeBufferPointer(rebasing: $0.0[..<$0.1]), UnsafeBufferPointer(rebasing: $0.2[..<$0.3])) })
    }
}
