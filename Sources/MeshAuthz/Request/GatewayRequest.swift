/// A gateway's question (`/ext_authz`) as bytes borrowed from the HTTP layer for the length of one
/// decision. The compiled matcher reads it in place, so a gateway decision builds no `String` and no
/// dictionary; `checkRequest` turns it into the `CheckRequest` the reference evaluator reads, with the
/// same meaning (a test holds the two paths to the same answers).
public struct GatewayRequest {
    public var method: Bytes
    /// The normalized origin-form target (`PathNormalization.base`), query kept, fragment dropped.
    public var target: Bytes
    public var host: Bytes?
    /// The caller's principal as policies match it (`spiffe://...`); nil for none.
    public var principal: Bytes?
    public var isMTLS: Bool
    public var sourceIP: IPAddress?
    public var namespace: Bytes?
    /// The destination's labels as `k=v,k=v` text, valid per `WorkloadLabels.isValid`.
    public var workload: Bytes
    public var port: Int?
    /// The original request's headers, names as sent: looked up case-insensitively, repeated ones
    /// joined with `,` (as Envoy's header matchers see them).
    public var headers: UnsafeBufferPointer<HeaderField>
    /// What RequestAuthentication made of the request (a verified payload, changed headers), lent for the
    /// call that reads this request; nil: nothing. A pointer, so that the request stays a plain value that is
    /// copied without reference counting on the fast path.
    public var authentication: UnsafePointer<GatewayAuthentication>?

    public init(method: Bytes, target: Bytes, host: Bytes?, principal: Bytes?, isMTLS: Bool, sourceIP: IPAddress?,
                namespace: Bytes?, workload: Bytes, port: Int?, headers: UnsafeBufferPointer<HeaderField>) {
        self.method = method
        self.target = target
        self.host = host
        self.principal = principal
        self.isMTLS = isMTLS
        self.sourceIP = sourceIP
        self.namespace = namespace
        self.workload = workload
        self.port = port
        self.headers = headers
        authentication = nil
    }

    /// The same request as a `CheckRequest` (header names lower-cased, repeats joined).
    public var checkRequest: CheckRequest { checkRequest(headersNamed: nil) }

    /// As `checkRequest`, with only the headers `names` lists (lower-case; nil: all): the ones a policy set's
    /// `request.headers[...]` conditions read, when nothing else will look at the others.
    public func checkRequest(headersNamed names: [[UInt8]]?) -> CheckRequest {
        func text(_ bytes: Bytes?) -> String? { bytes.map { String(decoding: $0, as: UTF8.self) } }
        var check = CheckRequest()
        check.request.method = text(method)
        check.request.path = text(target)
        check.request.host = text(host)
        var headerValues: [String: String] = [:]
        for field in headers {
            if let names, !names.contains(where: { Self.equalIgnoringASCIICase(field.name, $0) }) { continue }
            let name = String(decoding: field.name.map(asciiLower), as: UTF8.self)
            let value = String(decoding: field.value, as: UTF8.self)
            headerValues[name] = headerValues[name].map { $0 + "," + value } ?? value
        }
        if let headerChanges = authentication?.pointee.headerChanges {
            for name in headerChanges.removed { headerValues[String(decoding: name, as: UTF8.self)] = nil }
            for (name, value) in headerChanges.added {
                let key = String(decoding: name, as: UTF8.self)
                if let names, !names.contains(name) { continue }
                let text = String(decoding: value, as: UTF8.self)
                headerValues[key] = headerValues[key].map { $0 + "," + text } ?? text
            }
        }
        check.request.headers = headerValues
        check.request.claims = authentication?.pointee.claims
        check.source.principal = text(principal)
        check.source.mtls = isMTLS
        check.source.ip = sourceIP
        check.destination.namespace = text(namespace)
        check.destination.labels = WorkloadLabels.dictionary(workload) ?? [:]
        check.destination.port = port
        return check
    }
}

/// What jwt_authn made of a gateway request before authorization: the verified token's payload (what
/// `request.auth.*` and `requestPrincipals` read, as after `AuthenticatedCheck.applying`; nil: none) and the
/// headers as it leaves them.
public struct GatewayAuthentication {
    public let claims: [String: JSONValue]?
    public let headerChanges: HeaderChanges
    /// The payload's `iss` and `sub` strings as bytes (what `requestPrincipals` match), lent by `with`.
    let issuer: Bytes?
    let subject: Bytes?

    /// Lends the authentication of `claims` and `headerChanges` to `body`, for a `GatewayRequest.authentication`
    /// that does not outlive the call.
    public static func with<R>(claims: [String: JSONValue]?, headerChanges: HeaderChanges,
                               _ body: (UnsafePointer<GatewayAuthentication>) -> R) -> R {
        let iss = claims?["iss"]?.stringValue, sub = claims?["sub"]?.stringValue
        var issuer = iss ?? "", subject = sub ?? ""
        return issuer.withUTF8 { issuerBytes in
            subject.withUTF8 { subjectBytes in
                let lent = GatewayAuthentication(claims: claims, headerChanges: headerChanges,
                                                 issuer: iss == nil ? nil : issuerBytes, subject: sub == nil ? nil : subjectBytes)
                return withUnsafePointer(to: lent) { body($0) }
            }
        }
    }
}

/// The request headers as jwt_authn leaves them for the policies: the token headers it removes (a rule without
/// `forwardOriginalToken`), then the values it adds (`outputClaimToHeaders`, `outputPayloadToHeader`), each
/// appended to what is left of its header with `,`. Names are lower-case.
public struct HeaderChanges: Sendable {
    public var removed: [[UInt8]]
    public var added: [(name: [UInt8], value: [UInt8])]

    public init(removed: [String], added: [(name: String, value: String)]) {
        self.removed = removed.map { $0.utf8.map(asciiLower) }
        self.added = added.map { ($0.name.utf8.map(asciiLower), Array($0.value.utf8)) }
    }
}

extension GatewayRequest {
    static func equalIgnoringASCIICase(_ a: Bytes, _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        for i in 0..<a.count where asciiLower(a[i]) != asciiLower(b[i]) { return false }
        return true
    }
}

/// One request header as bytes.
public struct HeaderField {
    public var name: UnsafeBufferPointer<UInt8>
    public var value: UnsafeBufferPointer<UInt8>

    public init(name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) {
        self.name = name
        self.value = value
    }
}

/// A workload's labels written `app=api-service,version=v1` (the `x-authz-workload` header, `serve
/// --default-workload`): items separated by commas, spaces and tabs around keys and values ignored, empty
/// items skipped, a repeated key keeping its last value.
public enum WorkloadLabels {
    /// Calls `body` for each `key=value` item in order (a repeated key is visited each time; the last
    /// wins); false, after visiting the items before it, at the first item with no `=` or an empty key.
    @inline(__always)
    public static func forEach(_ text: Bytes, _ body: (Bytes, Bytes) -> Void) -> Bool {
        var start = 0
        let count = text.count
        while start <= count {
            var end = start
            while end < count && text[end] != UInt8(ascii: ",") { end += 1 }
            let item = trimmed(text, start, end)
            if item.lowerBound < item.upperBound {
                var eq = item.lowerBound
                while eq < item.upperBound && text[eq] != UInt8(ascii: "=") { eq += 1 }
                guard eq < item.upperBound else { return false }
                let key = trimmed(text, item.lowerBound, eq), value = trimmed(text, eq + 1, item.upperBound)
                guard key.lowerBound < key.upperBound else { return false }
                body(Bytes(rebasing: text[key]), Bytes(rebasing: text[value]))
            }
            start = end + 1
        }
        return true
    }

    public static func isValid(_ text: Bytes) -> Bool { forEach(text) { _, _ in } }

    /// The labels as a dictionary; nil when the text is not valid.
    public static func dictionary(_ text: Bytes) -> [String: String]? {
        var labels: [String: String] = [:]
        let valid = forEach(text) { key, value in
            labels[String(decoding: key, as: UTF8.self)] = String(decoding: value, as: UTF8.self)
        }
        return valid ? labels : nil
    }

    /// Upper bound of the number of items.
    static func maxCount(_ text: Bytes) -> Int {
        var commas = 1
        for byte in text where byte == UInt8(ascii: ",") { commas += 1 }
        return commas
    }

    @inline(__always)
    private static func trimmed(_ text: Bytes, _ start: Int, _ end: Int) -> Range<Int> {
        var s = start, e = end
        while s < e && (text[s] == 0x20 || text[s] == 0x09) { s += 1 }
        while e > s && (text[e - 1] == 0x20 || text[e - 1] == 0x09) { e -= 1 }
        return s..<e
    }
}
