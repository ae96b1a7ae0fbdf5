internal import CGnuTLS
internal import CMicroHTTPD

/// One HTTP request, as seen by the handler.
///
/// **Call-scoped**: it is a view over libmicrohttpd's connection and is only meaningful during the handler
/// call that received it. Nothing is copied unless asked: headers are looked up in libmicrohttpd's own
/// table on demand. If a copy escapes the handler anyway, it stays memory-safe: `method`, `rawTarget` and
/// `body` keep their values, while `header(_:)`, `forEachHeader(_:)`, `peerAddress` and
/// `peerCertificateURISANs` answer `nil`/empty.
public struct HTTPRequest {
    /// The request method exactly as sent (`GET`, `HEAD`, `POST`, ...).
    public let method: String
    /// The request target exactly as sent on the request line, never percent-decoded or normalized,
    /// query included: e.g. `/a/%2e%2e/b?x=1`.
    public let rawTarget: String
    /// The complete request body (empty when there is none).
    public let body: [UInt8]
    let connection: OpaquePointer
    let state: RequestState
    private let versionPointer: UnsafePointer<CChar>?

    init(method: String, version: UnsafePointer<CChar>?, connection: OpaquePointer, state: RequestState) {
        self.method = method
        self.versionPointer = version
        self.rawTarget = state.rawTarget
        self.body = state.body
        self.connection = connection
        self.state = state
    }

    /// The protocol version as sent (`HTTP/1.1`); empty outside the handler call.
    public var version: String {
        guard state.inHandler, let versionPointer else { return "" }
        return String(cString: versionPointer)
    }

    /// The path part of ``rawTarget`` (before `?`), still raw.
    public var rawPath: Substring {
        // Found on the UTF-8 view: `firstIndex(of: Character)` costs thousands of instructions a call.
        guard let q = rawTarget.utf8.firstIndex(of: UInt8(ascii: "?")) else { return rawTarget[...] }
        return rawTarget[..<q]
    }

    /// The raw query (after the first `?`), or `nil` when there is none.
    public var rawQuery: Substring? {
        guard let q = rawTarget.utf8.firstIndex(of: UInt8(ascii: "?")) else { return nil }
        return rawTarget[rawTarget.utf8.index(after: q)...]
    }

    /// The first value of a request header; the name is matched case-insensitively. Values never carry
    /// the optional whitespace around them (RFC 9110 5.5): libmicrohttpd 0.9.75 strips the leading part
    /// only, so a trailing space would otherwise make `default ` a different namespace than `default`.
    public func header(_ name: String) -> String? {
        guard state.inHandler else { return nil }
        guard let value = MHD_lookup_connection_value(connection, MHD_ValueKind.HEADER_KIND, name) else { return nil }
        return fieldValue(value, strlen(value))
    }

    /// Every value of a request header that was sent several times, in order (case-insensitive name).
    public func headers(named name: String) -> [String] {
        var values: [String] = []
        forEachHeader { key, value in
            if key.count == name.count, key.lowercased() == name.lowercased() { values.append(value) }
        }
        return values
    }

    /// Calls `body` for every request header in the order received; names keep the case the client used.
    public func forEachHeader(_ body: (String, String) -> Void) {
        guard state.inHandler else { return }
        withoutActuallyEscaping(body) { escapable in
            var visitor = escapable
            withUnsafeMutablePointer(to: &visitor) { pointer in
                _ = MHD_get_connection_values(connection, MHD_ValueKind.HEADER_KIND, { cls, _, key, value in
                    guard let cls, let key else { return MHD_Result.YES }
                    let visit = cls.assumingMemoryBound(to: ((String, String) -> Void).self).pointee
                    visit(String(cString: key), value.map { fieldValue($0, strlen($0)) } ?? "")
                    return MHD_Result.YES
                }, pointer)
            }
        }
    }

    /// Calls `body` with every request header as bytes, in the order received, names as the client wrote
    /// them. The bytes are libmicrohttpd's own (nothing is copied) and valid only inside `body`.
    public func withHeaderFields<R>(_ body: (UnsafeBufferPointer<HTTPHeaderField>) -> R) -> R {
        guard state.inHandler else { return body(UnsafeBufferPointer(start: nil, count: 0)) }
        let count = Int(MHD_get_connection_values_n(connection, MHD_ValueKind.HEADER_KIND, nil, nil))
        return withUnsafeTemporaryAllocation(of: HTTPHeaderField.self, capacity: max(count, 1)) { fields in
            var collector = (fields.baseAddress!, 0, count)
            _ = withUnsafeMutablePointer(to: &collector) { pointer in
                MHD_get_connection_values_n(connection, MHD_ValueKind.HEADER_KIND, { cls, _, key, keyLength, value, valueLength in
                    let c = cls!.assumingMemoryBound(to: (UnsafeMutablePointer<HTTPHeaderField>, Int, Int).self)
                    guard let key, c.pointee.1 < c.pointee.2 else { return MHD_Result.YES }
                    let name = UnsafeRawPointer(key).assumingMemoryBound(to: UInt8.self)
                    let text = value.map { UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self) }
                    let length = text == nil ? 0 : withoutTrailingWhitespace(value!, valueLength)
                    (c.pointee.0 + c.pointee.1).initialize(to: HTTPHeaderField(
                        name: UnsafeBufferPointer(start: name, count: keyLength),
                        value: UnsafeBufferPointer(start: text, count: length)))
                    c.pointee.1 += 1
                    return MHD_Result.YES
                }, pointer)
            }
            return body(UnsafeBufferPointer(start: fields.baseAddress, count: collector.1))
        }
    }

    /// The peer's IP address as 16 bytes (IPv4 as `::ffff:a.b.c.d`), without formatting it as text.
    public var peerIP: PeerIP? {
        guard state.inHandler, let address = mhz_connection_client_address(connection) else { return nil }
        var bytes: (UInt64, UInt64) = (0, 0)
        let family = withUnsafeMutableBytes(of: &bytes) { raw in
            mhz_address_bytes(address, raw.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        guard family != 0 else { return nil }
        return PeerIP(high: UInt64(bigEndian: bytes.0), low: UInt64(bigEndian: bytes.1), isV4: family == 4)
    }

    /// The peer's IP address as text (`127.0.0.1`, `::1`; IPv4-mapped IPv6 shown as IPv4).
    public var peerAddress: String? {
        guard state.inHandler, let address = mhz_connection_client_address(connection) else { return nil }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { buffer -> String? in
            guard mhz_format_address(address, buffer.baseAddress, 64) > 0 else { return nil }
            return String(cString: buffer.baseAddress!)
        }
    }

    /// `true` when the request arrived over TLS (then the client certificate was verified at the handshake).
    public var isTLS: Bool {
        state.inHandler && mhz_connection_tls_session(connection) != nil
    }

    /// The URI subjectAltNames (e.g. `spiffe://cluster.local/ns/default/sa/frontend`) of the verified client
    /// certificate; empty over plain HTTP. Computed once per connection.
    public var peerCertificateURISANs: [String] {
        guard state.inHandler, let conn = ConnectionState.of(connection) else { return [] }
        return conn.uriSANs(connection)
    }
}

/// One request header as bytes borrowed from libmicrohttpd (see `HTTPRequest.withHeaderFields`).
public struct HTTPHeaderField {
    public var name: UnsafeBufferPointer<UInt8>
    public var value: UnsafeBufferPointer<UInt8>
}

/// A peer's IP address: 16 bytes as two big-endian halves, IPv4 as `::ffff:a.b.c.d`.
public struct PeerIP: Sendable, Hashable {
    public var high: UInt64
    public var low: UInt64
    public var isV4: Bool
}

/// Per-request state, owned by `*con_cls` (created in the URI log callback, released when the request
/// completes).
final class RequestState {
    enum Phase: UInt8 { case new, receiving, tooLarge, done }

    let rawTarget: String
    var phase: Phase = .new
    var body: [UInt8] = []
    var inHandler = false

    init(rawTarget: String) {
        self.rawTarget = rawTarget
        #if DEBUG
        RequestState.live.withLock { $0 += 1 }
        #endif
    }

    #if DEBUG
    deinit { RequestState.live.withLock { $0 -= 1 } }
    /// Live instances, for leak tests (debug builds only).
    static let live = Locked(0)
    #endif
}

/// `length` without the spaces and tabs that end `value` (optional whitespace is not part of a field value).
func withoutTrailingWhitespace(_ value: UnsafePointer<CChar>, _ length: Int) -> Int {
    var end = length
    while end > 0, value[end - 1] == 0x20 || value[end - 1] == 0x09 { end -= 1 }
    return end
}

/// A field value as a String, trailing whitespace removed.
func fieldValue(_ value: UnsafePointer<CChar>, _ length: Int) -> String {
    let end = withoutTrailingWhitespace(value, length)
    return value.withMemoryRebound(to: UInt8.self, capacity: end) {
        String(decoding: UnsafeBufferPointer(start: $0, count: end), as: UTF8.self)
    }
}
