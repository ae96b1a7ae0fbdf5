import MeshAuthz
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One decision log line (`serve --decision-log`), built on the deciding thread only when the decision is to be
/// logged:
///
///     {"time":"2026-12-02T01:02:03.123456Z","requestId":"...","endpoint":"/ext_authz","decision":"DENY",
///      "stage":"default-deny","policy":null,"ruleId":null,"principal":"spiffe://...","sourceIp":"10.0.0.5",
///      "namespace":"default","workload":"app=api","method":"GET","host":"api.example.com","path":"/api/users",
///      "mtls":true,"dryRun":[{"policy":"ns/name","ruleId":"...","wouldBe":"DENY"}],"audit":[...],"latencyMicros":12}
///
/// What it never holds: header values (`authorization`, `cookie`, `proxy-authorization`, the certificate and
/// hash of `x-forwarded-client-cert`: only the principal taken from its `URI=`), the query string, the body.
struct DecisionLogLine {
    /// The request's facts, as the deciding path has them.
    struct Facts {
        var principal: UnsafeBufferPointer<UInt8>?
        var sourceIP: IPAddress?
        var namespace: UnsafeBufferPointer<UInt8>?
        var workload: UnsafeBufferPointer<UInt8>?
        var method: UnsafeBufferPointer<UInt8>?
        var host: UnsafeBufferPointer<UInt8>?
        var target: UnsafeBufferPointer<UInt8>?
        var mtls: Bool
    }

    static func build(endpoint: Metrics.DecisionEndpoint, requestID: String?, decision: Decision, facts: Facts,
                      latencyNanoseconds: UInt64) -> [UInt8] {
        var w = JSONWriter(capacity: 512)
        w.beginObject()
        w.key("time"); w.rawValue(rfc3339Micros(WallTime.now()))
        w.key("requestId")
        if let requestID, isUsableRequestID(requestID) { w.string(requestID) } else { w.rawValue(generatedRequestID()) }
        w.key("endpoint"); w.string(endpoint.label)
        w.key("decision"); w.string(decision.allowed ? "ALLOW" : "DENY")
        w.key("stage"); w.string(decision.stage.rawValue)
        w.key("policy"); w.optionalString(decision.rule?.policy.description)
        w.key("ruleId"); w.optionalString(decision.rule?.description)
        func bytes(_ key: String, _ value: UnsafeBufferPointer<UInt8>?) {
            w.key(key)
            if let value { w.string(bytes: value) } else { w.null() }
        }
        bytes("principal", facts.principal)
        w.key("sourceIp"); w.optionalString(facts.sourceIP?.description)
        bytes("namespace", facts.namespace)
        bytes("workload", facts.workload)
        bytes("method", facts.method)
        bytes("host", facts.host)
        // The path without its query (which may carry tokens) or fragment.
        bytes("path", facts.target.map { target in
            UnsafeBufferPointer(rebasing: target[..<(target.firstIndex { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? target.count)])
        })
        w.key("mtls"); w.bool(facts.mtls)
        w.key("dryRun")
        w.beginArray()
        for report in decision.dryRun {
            w.beginObject()
            w.key("policy"); w.string(report.rule.policy.description)
            w.key("ruleId"); w.string(report.rule.description)
            w.key("wouldBe"); w.string(report.wouldBe)
            w.endObject()
        }
        w.endArray()
        w.key("audit")
        w.beginArray()
        for report in decision.audit {
            w.beginObject()
            w.key("policy"); w.string(report.rule.policy.description)
            w.key("ruleId"); w.string(report.rule.description)
            w.endObject()
        }
        w.endArray()
        w.key("latencyMicros"); w.number(Int(latencyNanoseconds / 1000))
        w.endObject()
        return w.bytes
    }

    /// A gateway's `x-request-id` is kept when it is 1-128 printable ASCII bytes; anything else is replaced by a
    /// generated id (a log line must not carry what a client chose to put there beyond a plain token).
    static func isUsableRequestID(_ id: String) -> Bool {
        let utf8 = id.utf8
        return !utf8.isEmpty && utf8.count <= 128 && utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }
    }

    /// `"<16 hex: per-process random>-<16 hex: sequence>"`, quoted: unique within the process, distinct
    /// across restarts.
    static func generatedRequestID() -> [UInt8] {
        let sequence = nextSequence.add(1, ordering: .relaxed).newValue
        var out: [UInt8] = [0x22]
        out.reserveCapacity(36)
        appendHex(processPrefix, into: &out)
        out.append(UInt8(ascii: "-"))
        appendHex(sequence, into: &out)
        out.append(0x22)
        return out
    }

    private static let processPrefix = UInt64.random(in: .min ... .max)
    private static let nextSequence = Atomic<UInt64>(0)

    private static func appendHex(_ value: UInt64, into out: inout [UInt8]) {
        for shift in stride(from: 60, through: 0, by: -4) {
            let digit = UInt8((value >> UInt64(shift)) & 0xF)
            out.append(digit < 10 ? 0x30 + digit : 0x57 + digit)
        }
    }

    /// `"2026-12-02T01:02:03.123456Z"`, quoted, without building Strings.
    static func rfc3339Micros(_ time: WallTime) -> [UInt8] {
        var t = time_t(time.seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        var out: [UInt8] = [0x22]
        out.reserveCapacity(30)
        func digits(_ value: Int, _ width: Int) {
            var divisor = 1
            for _ in 1..<width { divisor *= 10 }
            var rest = value
            while divisor > 0 {
                out.append(0x30 + UInt8((rest / divisor) % 10))
                rest %= divisor
                divisor /= 10
            }
        }
        digits(Int(parts.tm_year) + 1900, 4); out.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mon) + 1, 2); out.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mday), 2); out.append(UInt8(ascii: "T"))
        digits(Int(parts.tm_hour), 2); out.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_min), 2); out.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_sec), 2); out.append(UInt8(ascii: "."))
        digits(time.nanoseconds / 1000, 6)
        out.append(contentsOf: [UInt8(ascii: "Z"), 0x22])
        return out
    }
}
