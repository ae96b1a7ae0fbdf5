internal import CGnuTLS
internal import CMicroHTTPD

/// Per-connection state, owned by the connection's socket context (MHD_OPTION_NOTIFY_CONNECTION): from
/// accept to close, every connection has one.
final class ConnectionState {
    /// Keeps the credentials a TLS session was started with alive as long as the connection.
    let credentials: TLSCredentials?
    /// The connection's socket. Only shut down (never closed) from outside libmicrohttpd, and only under
    /// the ``ConnectionWatch`` lock while the connection is registered: libmicrohttpd reports the close
    /// before it closes the descriptor, so the number cannot have been reused.
    let fd: Int32

    // Guarded by the ConnectionWatch lock.
    /// Monotonic time (ns) since which the connection waits for a request's headers; 0 while it does not
    /// (headers complete, or idle between keep-alive requests with no byte of the next one yet).
    var awaitingHeadersSince: UInt64
    /// Bytes the peer had sent (TCP_INFO) when the watch first saw the connection idle after a response:
    /// more means a next request began. nil until sampled (sampling is left to the watch's thread so that
    /// no request pays for the system call).
    var bytesAtRest: UInt64?
    /// Still in the watch's table (cleared when libmicrohttpd reports the close).
    var registered = false
    /// Between complete headers and the end of the response (the handler and the body are not under the
    /// header deadline; libmicrohttpd's idle timeout still is).
    var inRequest = false
    /// Already shut down by the watch.
    var cutOff = false

    // Touched by the connection's own thread only.
    private var cachedSANs: [String]?
    private var cachedVerified: Bool?

    init(fd: Int32, credentials: TLSCredentials?, now: UInt64) {
        self.fd = fd
        self.credentials = credentials
        self.awaitingHeadersSince = now
    }

    static func of(_ connection: OpaquePointer) -> ConnectionState? {
        guard let raw = mhz_connection_socket_context(connection) else { return nil }
        return Unmanaged<ConnectionState>.fromOpaque(raw).takeUnretainedValue()
    }

    /// The peer presented a certificate that passes the client-certificate policy (chain, clientAuth
    /// purpose, not a CA). The handshake already insisted on it; checked again once per connection so that
    /// nothing is served if a handshake ever completed without the callback.
    func peerVerified(_ connection: OpaquePointer) -> Bool {
        if let v = cachedVerified { return v }
        var verified = false
        if let session = mhz_connection_tls_session(connection) {
            verified = mhz_tls_check_client_certificate(OpaquePointer(session)) == 0
        }
        cachedVerified = verified
        return verified
    }

    /// The URI SANs of a peer certificate that passed `peerVerified`; empty otherwise.
    func uriSANs(_ connection: OpaquePointer) -> [String] {
        if let sans = cachedSANs { return sans }
        var sans: [String] = []
        if peerVerified(connection), let session = mhz_connection_tls_session(connection) {
            _ = withUnsafeMutablePointer(to: &sans) { pointer in
                mhz_tls_peer_uri_sans(OpaquePointer(session), { context, value, length in
                    guard let context, let value else { return }
                    let bytes = UnsafeRawBufferPointer(start: value, count: length)
                    context.assumingMemoryBound(to: [String].self).pointee
                        .append(String(decoding: bytes, as: UTF8.self))
                }, pointer)
            }
        }
        cachedSANs = sans
        return sans
    }
}
