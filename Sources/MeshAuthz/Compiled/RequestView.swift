struct LabelView {
    var key: Bytes
    var value: Bytes
    var keyHash: UInt64
    /// Hash of key and value (the scope is mixed in per lookup).
    var hash: UInt64
}

/// The request fields the matcher reads, as bytes, parsed once per decision.
struct RequestView {
    var namespace: Bytes?
    var labels: UnsafeBufferPointer<LabelView>
    var principal: Bytes?
    /// Query and fragment removed.
    var path: Bytes?
    var rawPath: Bytes?
    var method: Bytes?
    var host: Bytes?
    var sni: Bytes?
    var issuer: Bytes?
    var subject: Bytes?
    var port: Int?
    var sourceIP: IPAddress?
    var remoteIP: IPAddress?
    var destinationIP: IPAddress?
    var isMTLS = false
    var hasRequestPrincipal = false
    /// Where `request.headers[...]` conditions read.
    var headers: HeaderSource
    /// Where `request.auth.claims[...]` read: a `/v1/check` request's claims, or a gateway request's verified
    /// payload (pointers: the view stays a plain value).
    var claimSource = ClaimSource.none

    /// Copies the strings into one temporary buffer (on the stack when small) and calls `body` with the view
    /// and a scratch buffer of `scratch` elements. Reads only stored fields of the request (a computed
    /// property or method called through `pointee` would copy the struct it belongs to).
    @inline(__always)
    static func with<Scratch, R>(_ request: UnsafePointer<CheckRequest>, scratch: Int,
                                 _ body: (RequestView, UnsafeMutableBufferPointer<Scratch>) -> R) -> R {
        // `CheckRequest.Peer.isMTLS`, `authenticatedPrincipal`, `effectiveRemoteIP`, from stored fields.
        let hasPrincipal = request.pointee.source.principal != nil
        let isMTLS = request.pointee.source.mtls ?? hasPrincipal
        let jwt = request.pointee.source.requestPrincipal != nil
        var claimIssuer: String? = nil, claimSubject: String? = nil
        if !jwt, request.pointee.request.claims != nil {
            claimIssuer = request.pointee.request.claims?["iss"]?.stringValue
            claimSubject = request.pointee.request.claims?["sub"]?.stringValue
        }
        @inline(__always) func size(_ s: String?) -> Int { s?.utf8.count ?? 0 }
        var total = (isMTLS ? size(request.pointee.source.principal) : 0) + size(request.pointee.request.path)
            + size(request.pointee.request.method) + size(request.pointee.request.host) + size(request.pointee.connection.sni)
            + size(request.pointee.source.requestPrincipal) + size(claimIssuer) + size(claimSubject)
            + size(request.pointee.destination.namespace)
        for (key, value) in request.pointee.destination.labels { total += key.utf8.count + value.utf8.count }
        let labelCount = request.pointee.destination.labels.count
        // One allocation: string bytes, then the label views, then the scratch elements.
        let labelsOffset = (total + 15) & ~15
        let scratchOffset = (labelsOffset + labelCount * MemoryLayout<LabelView>.stride + 15) & ~15
        let byteCount = scratchOffset + max(scratch, 1) * MemoryLayout<Scratch>.stride
        return withUnsafeTemporaryAllocation(byteCount: byteCount, alignment: 16) { raw in
            let buffer = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let labelViews = (raw.baseAddress! + labelsOffset).bindMemory(to: LabelView.self, capacity: max(labelCount, 1))
            let scratchBase = (raw.baseAddress! + scratchOffset).bindMemory(to: Scratch.self, capacity: max(scratch, 1))
            var offset = 0
            @inline(__always) func put(_ s: String?) -> Bytes? {
                guard let s else { return nil }
                let start = offset
                // `total` was summed from the same fields: each one written must fit in what is left.
                assert(start + s.utf8.count <= total, "request bytes larger than the buffer sized for them")
                let written = s.withBytes { bytes -> Int in
                    if let source = bytes.baseAddress, bytes.count > 0 { (buffer + start).initialize(from: source, count: bytes.count) }
                    return bytes.count
                }
                offset += written
                return Bytes(start: buffer + start, count: written)
            }
            var l = 0
            for (key, value) in request.pointee.destination.labels {
                assert(l < labelCount, "more labels than the buffer was sized for")
                let keyBytes = put(key)!, valueBytes = put(value)!
                let keyHash = hashBytes(keyBytes, seed: labelKeySeed)
                let hash = combineHash(keyHash, hashBytes(valueBytes, seed: labelValueSeed))
                (labelViews + l).initialize(to: LabelView(key: keyBytes, value: valueBytes, keyHash: keyHash, hash: hash))
                l += 1
            }
            var view = RequestView(labels: UnsafeBufferPointer(start: labelViews, count: l), headers: .dictionary(request))
            view.claimSource = .check(request)
            view.namespace = put(request.pointee.destination.namespace)
            if isMTLS { view.principal = put(request.pointee.source.principal) }
            if let full = put(request.pointee.request.path) {
                view.rawPath = full
                view.path = Bytes(rebasing: full[..<queryStart(full)])
            }
            view.method = put(request.pointee.request.method)
            view.host = put(request.pointee.request.host)
            view.sni = put(request.pointee.connection.sni)
            if let text = put(request.pointee.source.requestPrincipal) {
                // `iss/sub`, split at the last `/`.
                if let slash = text.lastIndex(of: UInt8(ascii: "/")) {
                    view.issuer = Bytes(rebasing: text[..<slash])
                    view.subject = Bytes(rebasing: text[(slash + 1)...])
                } else {
                    view.issuer = text
                }
            } else {
                view.issuer = put(claimIssuer)
                view.subject = put(claimSubject)
            }
            view.hasRequestPrincipal = jwt
            view.isMTLS = isMTLS
            view.port = request.pointee.destination.port
            view.sourceIP = request.pointee.source.ip
            view.remoteIP = request.pointee.source.remoteIP ?? request.pointee.source.ip
            view.destinationIP = request.pointee.destination.ip
            return body(view, UnsafeMutableBufferPointer(start: scratchBase, count: max(scratch, 1)))
        }
    }

    /// The view of a gateway request: its bytes are used where they are (nothing is copied), the labels
    /// parsed from their `k=v` text into scratch memory.
    @inline(__always)
    static func with<Scratch, R>(_ request: GatewayRequest, labelCapacity: Int, scratch: Int,
                                 _ body: (RequestView, UnsafeMutableBufferPointer<Scratch>) -> R) -> R {
        let scratchOffset = (labelCapacity * MemoryLayout<LabelView>.stride + 15) & ~15
        let byteCount = scratchOffset + max(scratch, 1) * MemoryLayout<Scratch>.stride
        return withUnsafeTemporaryAllocation(byteCount: byteCount, alignment: 16) { raw in
            let labelViews = raw.baseAddress!.bindMemory(to: LabelView.self, capacity: max(labelCapacity, 1))
            let scratchBase = (raw.baseAddress! + scratchOffset).bindMemory(to: Scratch.self, capacity: max(scratch, 1))
            var count = 0
            _ = WorkloadLabels.forEach(request.workload) { key, value in
                let keyHash = hashBytes(key, seed: labelKeySeed)
                let label = LabelView(key: key, value: value, keyHash: keyHash,
                                      hash: combineHash(keyHash, hashBytes(value, seed: labelValueSeed)))
                // A repeated key keeps its last value, as a dictionary would.
                for i in 0..<count where labelViews[i].key.equals(key) {
                    labelViews[i] = label
                    return
                }
                // `labelCapacity` is `WorkloadLabels.maxCount` of the same text: one view per item at most.
                assert(count < labelCapacity, "more labels than WorkloadLabels.maxCount counted")
                (labelViews + count).initialize(to: label)
                count += 1
            }
            var view = RequestView(labels: UnsafeBufferPointer(start: labelViews, count: count),
                                   headers: .fields(request.headers, request.authentication))
            if let authentication = request.authentication {
                // As `AuthenticatedCheck.applying` leaves a CheckRequest: no request principal, the claims.
                view.claimSource = .gateway(authentication)
                view.issuer = authentication.pointee.issuer
                view.subject = authentication.pointee.subject
            }
            view.namespace = request.namespace
            if request.isMTLS { view.principal = request.principal }
            view.rawPath = request.target
            view.path = Bytes(rebasing: request.target[..<queryStart(request.target)])
            view.method = request.method
            view.host = request.host
            view.isMTLS = request.isMTLS
            view.port = request.port
            view.sourceIP = request.sourceIP
            view.remoteIP = request.sourceIP
            return body(view, UnsafeMutableBufferPointer(start: scratchBase, count: max(scratch, 1)))
        }
    }

    private init(labels: UnsafeBufferPointer<LabelView>, headers: HeaderSource) {
        self.labels = labels
        self.headers = headers
    }
}

/// The claims of a request, by reference.
enum ClaimSource {
    case none
    case check(UnsafePointer<CheckRequest>)
    case gateway(UnsafePointer<GatewayAuthentication>)

    var claims: [String: JSONValue]? {
        switch self {
        case .none: return nil
        case .check(let request): return request.pointee.request.claims
        case .gateway(let authentication): return authentication.pointee.claims
        }
    }
}

/// The request headers a rule's `when` conditions read: the dictionary of a `CheckRequest`, or a
/// gateway's header fields as sent (names compared case-insensitively, repeats joined with `,`).
enum HeaderSource {
    case dictionary(UnsafePointer<CheckRequest>)
    /// The gateway's header fields, and what authentication changed in them.
    case fields(UnsafeBufferPointer<HeaderField>, UnsafePointer<GatewayAuthentication>?)

    /// Calls `body` with the value of the header `name` (lower-case), nil when absent.
    @inline(__always)
    func withValue<R>(_ name: String, _ body: (Bytes?) -> R) -> R {
        switch self {
        case .dictionary(let request):
            guard let value = request.pointee.request.headers[name] else { return body(nil) }
            return value.withBytes { body($0) }
        case .fields(let fields, let authentication):
            var name = name
            return name.withUTF8 { wanted in
                if let authentication {
                    // Built apart and then lent: `body` stays inlined here (passed on to a function that is not,
                    // it would capture, and copy, the caller's tables).
                    guard let changed = Self.changedValue(fields, authentication.pointee.headerChanges, wanted) else { return body(nil) }
                    return changed.withUnsafeBufferPointer { body($0) }
                }
                return Self.value(fields, wanted, body)
            }
        }
    }

    /// After authentication (rare, off the fast path): the value as `AuthenticatedCheck.applying` leaves it.
    private static func changedValue(_ fields: UnsafeBufferPointer<HeaderField>, _ changes: HeaderChanges,
                                     _ wanted: Bytes) -> [UInt8]? {
        var value: [UInt8]? = nil
        if !changes.removed.contains(where: { $0.elementsEqual(wanted) }) {
            value = Self.value(fields, wanted) { $0.map(Array.init) }
        }
        for (name, added) in changes.added where name.elementsEqual(wanted) {
            value = value.map { $0 + [UInt8(ascii: ",")] + added } ?? added
        }
        return value
    }

    /// The header fields' value of `wanted`: repeats joined with `,`, as Envoy's header matchers see them.
    @inline(__always)
    private static func value<R>(_ fields: UnsafeBufferPointer<HeaderField>, _ wanted: Bytes, _ body: (Bytes?) -> R) -> R {
        var first: Int? = nil
        var total = 0, matches = 0
        for i in fields.indices where Self.sameName(fields[i].name, wanted) {
            if first == nil { first = i }
            matches += 1
            total += fields[i].value.count
        }
        guard let first else { return body(nil) }
        if matches == 1 { return body(fields[first].value) }
        // Rare: a repeated header, joined as Envoy joins it.
        var joined: [UInt8] = []
        joined.reserveCapacity(total + matches)
        for i in first..<fields.count where Self.sameName(fields[i].name, wanted) {
            if i != first { joined.append(UInt8(ascii: ",")) }
            joined.append(contentsOf: fields[i].value)
        }
        return joined.withUnsafeBufferPointer { body($0) }
    }

    @inline(__always)
    private static func sameName(_ name: UnsafeBufferPointer<UInt8>, _ lower: UnsafeBufferPointer<UInt8>) -> Bool {
        guard name.count == lower.count else { return false }
        for i in 0..<name.count where asciiLower(name[i]) != lower[i] { return false }
        return true
    }
}
