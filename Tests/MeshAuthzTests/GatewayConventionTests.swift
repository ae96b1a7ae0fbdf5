import MeshAuthz
import Testing

/// Where `/ext_authz` reads each forwarded fact, per convention, and what it refuses (issue 7 #1-#3).
struct GatewayConventionTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let convention: GatewayConvention
        /// The raw target after `/ext_authz` (`/ext_authz/<path>`), nil for a bare `/ext_authz`.
        let forwarded: String?
        let ownMethod: String
        let headers: [(String, String)]
        /// `method target host` of the request judged, or `refused: <part of the message>`.
        let expected: String
        var testDescription: String { name }
    }

    static let dest = [("x-authz-namespace", "default"), ("x-authz-workload", "app=web")]

    static let cases: [Case] = [
        // One place per fact.
        Case(name: "envoy", convention: .any, forwarded: "/api?x=1", ownMethod: "POST",
             headers: [("Host", "a.example")] + dest, expected: "POST /api?x=1 a.example"),
        Case(name: "nginx", convention: .any, forwarded: nil, ownMethod: "GET",
             headers: [("Host", "a.example"), ("X-Original-URI", "/o"), ("X-Original-Method", "DELETE")],
             expected: "DELETE /o a.example"),
        Case(name: "traefik", convention: .any, forwarded: nil, ownMethod: "GET",
             headers: [("Host", "meshauthz"), ("X-Forwarded-Uri", "/t"), ("X-Forwarded-Method", "PUT"),
                       ("X-Forwarded-Host", "t.example")], expected: "PUT /t t.example"),
        Case(name: "nginx ignores X-Forwarded-Host", convention: .nginx, forwarded: nil, ownMethod: "GET",
             headers: [("Host", "a.example"), ("X-Original-URI", "/o"), ("X-Original-Method", "GET"),
                       ("X-Forwarded-Host", "evil.example")], expected: "GET /o a.example"),
        Case(name: "empty value is absent", convention: .any, forwarded: nil, ownMethod: "GET",
             headers: [("Host", "a"), ("X-Original-URI", "/o"), ("X-Original-Method", "GET"), ("X-Forwarded-Uri", "")],
             expected: "GET /o a"),
        // Convention confusion.
        Case(name: "both header conventions", convention: .any, forwarded: nil, ownMethod: "GET",
             headers: [("X-Original-URI", "/public/ok"), ("X-Original-Method", "GET"), ("X-Forwarded-Uri", "/admin"),
                       ("X-Forwarded-Method", "GET"), ("X-Forwarded-Host", "h")],
             expected: "refused: more than one gateway convention"),
        Case(name: "X-Original-URI on the envoy path", convention: .any, forwarded: "/admin", ownMethod: "GET",
             headers: [("X-Original-URI", "/public/ok")], expected: "refused: more than one gateway convention"),
        Case(name: "X-Forwarded-Method on the envoy path", convention: .any, forwarded: "/admin", ownMethod: "GET",
             headers: [("X-Forwarded-Method", "GET")], expected: "refused: more than one gateway convention"),
        Case(name: "X-Original-Method with X-Forwarded-Uri", convention: .any, forwarded: nil, ownMethod: "GET",
             headers: [("X-Original-Method", "GET"), ("X-Forwarded-Uri", "/a"), ("X-Forwarded-Method", "GET")],
             expected: "refused: more than one gateway convention"),
        Case(name: "no convention", convention: .any, forwarded: nil, ownMethod: "GET", headers: [("Host", "a")],
             expected: "refused: no original request"),
        Case(name: "listener for nginx, request for envoy", convention: .nginx, forwarded: "/a", ownMethod: "GET",
             headers: [], expected: "refused: serves the nginx convention"),
        Case(name: "listener for envoy, request for traefik", convention: .envoy, forwarded: nil, ownMethod: "GET",
             headers: [("X-Forwarded-Uri", "/a"), ("X-Forwarded-Method", "GET"), ("X-Forwarded-Host", "h")],
             expected: "refused: serves the envoy convention"),
        // Required facts.
        Case(name: "nginx without X-Original-Method", convention: .any, forwarded: nil, ownMethod: "GET",
             headers: [("X-Original-URI", "/o")], expected: "refused: X-Original-Method is missing"),
        Case(name: "traefik without X-Forwarded-Host", convention: .any, forwarded: nil, ownMethod: "GET",
             headers: [("X-Forwarded-Uri", "/o"), ("X-Forwarded-Method", "GET"), ("Host", "h")],
             expected: "refused: X-Forwarded-Host is missing"),
        // Traefik passes client headers through: nothing it forwards can be believed as the PDP's own input.
        Case(name: "traefik with XFCC", convention: .any, forwarded: nil, ownMethod: "GET",
             headers: [("X-Forwarded-Uri", "/o"), ("X-Forwarded-Method", "GET"), ("X-Forwarded-Host", "h"),
                       ("x-forwarded-client-cert", "URI=spiffe://x")], expected: "refused: x-forwarded-client-cert cannot come"),
        Case(name: "traefik with x-authz-namespace", convention: .traefik, forwarded: nil, ownMethod: "GET",
             headers: [("X-Forwarded-Uri", "/o"), ("X-Forwarded-Method", "GET"), ("X-Forwarded-Host", "h"),
                       ("X-Authz-Namespace", "other")], expected: "refused: x-authz-namespace cannot come"),
        // Repeated headers: which one did the gateway mean?
        Case(name: "repeated x-authz-namespace", convention: .any, forwarded: "/a", ownMethod: "GET",
             headers: [("x-authz-namespace", "default"), ("X-Authz-Namespace", "other")],
             expected: "refused: x-authz-namespace is sent more than once"),
        Case(name: "repeated XFCC", convention: .any, forwarded: "/a", ownMethod: "GET",
             headers: [("x-forwarded-client-cert", "URI=a"), ("x-forwarded-client-cert", "URI=b")],
             expected: "refused: x-forwarded-client-cert is sent more than once"),
        Case(name: "repeated X-Original-URI", convention: .any, forwarded: nil, ownMethod: "GET",
             headers: [("X-Original-URI", "/a"), ("X-Original-URI", "/b"), ("X-Original-Method", "GET")],
             expected: "refused: x-original-uri is sent more than once"),
        // Methods: upper-case tokens only.
        Case(name: "lower-case method (nginx)", convention: .any, forwarded: nil, ownMethod: "GET",
             headers: [("X-Original-URI", "/o"), ("X-Original-Method", "delete")], expected: "refused: upper-case token"),
        Case(name: "mixed-case method (traefik)", convention: .any, forwarded: nil, ownMethod: "GET",
             headers: [("X-Forwarded-Uri", "/o"), ("X-Forwarded-Method", "DeLeTe"), ("X-Forwarded-Host", "h")],
             expected: "refused: upper-case token"),
        Case(name: "method with a space", convention: .any, forwarded: nil, ownMethod: "GET",
             headers: [("X-Original-URI", "/o"), ("X-Original-Method", "DELETE ")], expected: "refused: upper-case token"),
        Case(name: "method with a tab", convention: .any, forwarded: nil, ownMethod: "GET",
             headers: [("X-Original-URI", "/o"), ("X-Original-Method", "DELETE\t")], expected: "refused: upper-case token"),
        Case(name: "method with a parenthesis", convention: .any, forwarded: nil, ownMethod: "GET",
             headers: [("X-Original-URI", "/o"), ("X-Original-Method", "GE(T")], expected: "refused: upper-case token"),
        Case(name: "lower-case own method (envoy)", convention: .any, forwarded: "/a", ownMethod: "get",
             headers: [], expected: "refused: upper-case token"),
    ]

    @Test(arguments: cases)
    func resolves(_ test: Case) {
        // Header names and values as contiguous bytes that outlive the reading.
        let storage = test.headers.map { (Array($0.0.utf8), Array($0.1.utf8)) }
        let forwarded = test.forwarded.map { Array($0.utf8) }
        let method = Array(test.ownMethod.utf8)
        let outcome: String = method.withUnsafeBufferPointer { method in
            withBuffers(storage) { fields in
                var h = GatewayHeaders()
                for (name, value) in fields { _ = h.read(name: name, value: value) }
                func run(_ target: UnsafeBufferPointer<UInt8>?) -> String {
                    switch h.resolve(test.convention, ownMethod: method, forwardedTarget: target) {
                    case .failure(let refusal): return "refused: " + refusal.message
                    case .success(let facts):
                        func text(_ b: UnsafeBufferPointer<UInt8>?) -> String { b.map { String(decoding: $0, as: UTF8.self) } ?? "-" }
                        return "\(text(facts.method)) \(text(facts.target)) \(text(facts.host))"
                    }
                }
                guard let forwarded else { return run(nil) }
                return forwarded.withUnsafeBufferPointer { run($0) }
            }
        }
        if test.expected.hasPrefix("refused: ") {
            #expect(outcome.hasPrefix("refused: ") && outcome.contains(test.expected.dropFirst(9)), "\(outcome)")
        } else {
            #expect(outcome == test.expected)
        }
    }

    /// Under Traefik the source address is the right-most `X-Forwarded-For` element, the one Traefik wrote:
    /// what a client put before it cannot choose it.
    @Test(arguments: [("203.0.113.7", "203.0.113.7"), ("10.1.2.3, 203.0.113.7", "203.0.113.7"),
                      ("10.1.2.3,203.0.113.7 ", "203.0.113.7"), ("10.1.2.3,", "")])
    func traefikSourceIsTheLastForwardedFor(_ header: String, _ expected: String) {
        let fields: [(String, String)] = [("X-Forwarded-Uri", "/t"), ("X-Forwarded-Method", "GET"),
                                          ("X-Forwarded-Host", "h"), ("X-Forwarded-For", header)]
        let storage = fields.map { (Array($0.0.utf8), Array($0.1.utf8)) }
        let method = Array("GET".utf8)
        let source: String? = method.withUnsafeBufferPointer { method in
            withBuffers(storage) { pairs in
                var h = GatewayHeaders()
                for (name, value) in pairs { _ = h.read(name: name, value: value) }
                guard case .success(let facts) = h.resolve(.traefik, ownMethod: method, forwardedTarget: nil) else { return nil }
                return facts.sourceIP.map { String(decoding: $0, as: UTF8.self) }
            }
        }
        #expect(source == expected)
    }

    @Test func readKeepsThePDPInputsOutOfRequestHeaders() {
        let names = ["x-authz-namespace", "X-Authz-Workload", "x-authz-port", "x-authz-source-ip", "x-tenant", "host",
                     "x-forwarded-client-cert"]
        var h = GatewayHeaders()
        let kept = names.filter { name in
            let bytes = Array(name.utf8), value = Array("v".utf8)
            return bytes.withUnsafeBufferPointer { n in value.withUnsafeBufferPointer { h.read(name: n, value: $0) } }
        }
        #expect(kept == ["x-tenant", "host", "x-forwarded-client-cert"])
    }

    @Test(arguments: [("GET", true), ("DELETE", true), ("PROPFIND", true), ("delete", false), ("DeLeTe", false),
                      ("DELETE ", false), ("DELETE\t", false), ("GE(T", false), ("", false), ("G3T", false),
                      (String(repeating: "A", count: 65), false)])
    func methodTokens(_ method: String, _ valid: Bool) {
        #expect(HTTPMethod.isToken(method) == valid)
    }
}

/// Calls `body` with the (name, value) pairs as buffers valid for the call.
private func withBuffers<R>(_ pairs: [([UInt8], [UInt8])],
                            _ body: ([(UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<UInt8>)]) -> R) -> R {
    let pointers = pairs.map { pair -> (UnsafeMutableBufferPointer<UInt8>, UnsafeMutableBufferPointer<UInt8>) in
        let name = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(pair.0.count, 1))
        let value = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(pair.1.count, 1))
        _ = name.initialize(from: pair.0)
        _ = value.initialize(from: pair.1)
        return (UnsafeMutableBufferPointer(rebasing: name[..<pair.0.count]), UnsafeMutableBufferPointer(rebasing: value[..<pair.1.count]))
    }
    defer { for (name, value) in pointers { name.deallocate(); value.deallocate() } }
    return body(pointers.map { (UnsafeBufferPointer($0.0), UnsafeBufferPointer($0.1)) })
}
