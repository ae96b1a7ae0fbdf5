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
        // Keys and constant values are static fragments, small values go through stack buffers: escaping
        // constants and allocating for each value cost more than the rest of the line (callgrind, BENCHMARKS.md).
        var w = JSONWriter(capacity: 512)
        w.beginObject()
        w.staticKey("time")
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { buffer in
            w.string(bytes: UnsafeBufferPointer(rebasing: buffer[..<rfc3339Micros(WallTime.now(), into: buffer)]))
        }
        w.staticKey("requestId")
        if let requestID, isUsableRequestID(requestID) {
            w.string(requestID)
        } else {
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 40) { buffer in
                w.string(bytes: UnsafeBufferPointer(rebasing: buffer[..<generatedRequestID(into: buffer)]))
            }
        }
        w.staticKey("endpoint")
        switch endpoint {
        case .check: w.staticString("/v1/check")
        case .extAuthz: w.staticString("/ext_authz")
        }
        w.staticKey("decision")
        if decision.allowed { w.staticString("ALLOW") } else { w.staticString("DENY") }
        w.staticKey("stage")
        w.string(decision.stage.rawValue)
        w.staticKey("policy")
        if let rule = decision.rule {
            writePolicy(rule.policy, into: &w)
            w.staticKey("ruleId")
            w.string(rule.description)
        } else {
            w.null()
            w.staticKey("ruleId")
            w.null()
        }
        w.staticKey("principal")
        if let value = facts.principal { w.string(bytes: value) } else { w.null() }
        w.staticKey("sourceIp")
        if let ip = facts.sourceIP {
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 48) { buffer in
                if let count = ipv4Text(ip, into: buffer) {
                    w.string(bytes: UnsafeBufferPointer(rebasing: buffer[..<count]))
                } else {
                    w.string(ip.description)
                }
            }
        } else {
            w.null()
        }
        w.staticKey("namespace")
        if let value = facts.namespace { w.string(bytes: value) } else { w.null() }
        w.staticKey("workload")
        if let value = facts.workload { w.string(bytes: value) } else { w.null() }
        w.staticKey("method")
        if let value = facts.method { w.string(bytes: value) } else { w.null() }
        w.staticKey("host")
        if let value = facts.host { w.string(bytes: value) } else { w.null() }
        // The path without its query (which may carry tokens) or fragment.
        w.staticKey("path")
        if let target = facts.target {
            let end = target.firstIndex { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? target.count
            w.string(bytes: UnsafeBufferPointer(rebasing: target[..<end]))
        } else {
            w.null()
        }
        w.staticKey("mtls")
        w.bool(facts.mtls)
        w.staticKey("dryRun")
        w.beginArray()
        for report in decision.dryRun {
            w.beginObject()
            w.staticKey("policy")
            writePolicy(report.rule.policy, into: &w)
            w.staticKey("ruleId")
            w.string(report.rule.description)
            w.staticKey("wouldBe")
            w.string(report.wouldBe)
            w.endObject()
        }
        w.endArray()
        w.staticKey("audit")
        w.beginArray()
        for report in decision.audit {
            w.beginObject()
            w.staticKey("policy")
            writePolicy(report.rule.policy, into: &w)
            w.staticKey("ruleId")
            w.string(report.rule.description)
            w.endObject()
        }
        w.endArray()
        w.staticKey("latencyMicros")
        w.number(Int(latencyNanoseconds / 1000))
        w.endObject()
        return w.bytes
    }

    /// `"namespace/name"` without building the string.
    static func writePolicy(_ id: ResourceID, into w: inout JSONWriter) {
        var text = id.namespace
        text.reserveCapacity(id.namespace.utf8.count + 1 + id.name.utf8.count)
        text += "/"
        text += id.name
        w.string(text)
    }

    /// Dotted decimal of an IPv4 address into `buffer` (16 bytes at least); nil for IPv6 (rare here: written by
    /// `description`).
    static func ipv4Text(_ ip: IPAddress, into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int? {
        guard ip.isV4 else { return nil }
        let v = UInt32(truncatingIfNeeded: ip.low)
        var count = 0
        for shift in [24, 16, 8, 0] as [UInt32] {
            let octet = Int((v >> shift) & 0xFF)
            if octet >= 100 { buffer[count] = 0x30 + UInt8(octet / 100); count += 1 }
            if octet >= 10 { buffer[count] = 0x30 + UInt8(octet / 10 % 10); count += 1 }
            buffer[count] = 0x30 + UInt8(octet % 10)
            count += 1
            if shift != 0 { buffer[count] = UInt8(ascii: "."); count += 1 }
        }
        return count
    }

    /// A gateway's `x-request-id` is kept when it is 1-128 printable ASCII bytes; anything else is replaced by a
    /// generated id (a log line must not carry what a client chose to put there beyond a plain token).
    static func isUsableRequestID(_ id: String) -> Bool {
        let utf8 = id.utf8
        return !utf8.isEmpty && utf8.count <= 128 && utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }
    }

    /// `<16 hex: per-process random>-<16 hex: sequence>` into `buffer` (33 bytes at least): unique within the
    /// process, distinct across restarts. Returns the length.
    static func generatedRequestID(into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
        let sequence = nextSequence.add(1, ordering: .relaxed).newValue
        var count = 0
        appendHex(processPrefix, into: buffer, at: &count)
        buffer[count] = UInt8(ascii: "-")
        count += 1
        appendHex(sequence, into: buffer, at: &count)
        return count
    }

    private static let processPrefix = UInt64.random(in: .min ... .max)
    private static let nextSequence = Atomic<UInt64>(0)

    private static func appendHex(_ value: UInt64, into buffer: UnsafeMutableBufferPointer<UInt8>, at count: inout Int) {
        for shift in stride(from: 60, through: 0, by: -4) {
            let digit = UInt8((value >> UInt64(shift)) & 0xF)
            buffer[count] = digit < 10 ? 0x30 + digit : 0x57 + digit
            count += 1
        }
    }

    /// `2026-12-02T01:02:03.123456Z` into `buffer` (27 bytes at least), from the epoch seconds by arithmetic
    /// (Howard Hinnant's days-to-civil: no `gmtime_r`, no lock, no String). Returns the length.
    static func rfc3339Micros(_ time: WallTime, into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
        let days = time.seconds >= 0 ? time.seconds / 86_400 : (time.seconds - 86_399) / 86_400
        let secondOfDay = time.seconds - days * 86_400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        var count = 0
        func digits(_ value: Int, _ width: Int) {
            var divisor = 1
            for _ in 1..<width { divisor *= 10 }
            while divisor > 0 {
                buffer[count] = 0x30 + UInt8((value / divisor) % 10)
                count += 1
                divisor /= 10
            }
        }
        func put(_ character: Unicode.Scalar) {
            buffer[count] = UInt8(ascii: character)
            count += 1
        }
        digits(year, 4); put("-"); digits(month, 2); put("-"); digits(day, 2); put("T")
        digits(secondOfDay / 3_600, 2); put(":"); digits(secondOfDay / 60 % 60, 2); put(":"); digits(secondOfDay % 60, 2)
        put("."); digits(time.nanoseconds / 1_000, 6); put("Z")
        return count
    }
}
