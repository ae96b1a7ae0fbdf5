/// Where and how an ``HTTPServer`` listens.
public struct HTTPServerConfiguration: Sendable {
    /// Address to bind: a numeric IPv4/IPv6 address or a host name (first address that binds wins).
    public var host: String
    /// TCP port; 0 asks the kernel for a free one (read it back from ``HTTPServer/boundPort``).
    public var port: UInt16
    /// Idle connections (keep-alive included) are closed after this many seconds. 0 means never: avoid.
    public var connectionTimeoutSeconds: UInt32
    /// Request bodies larger than this are answered with 413 (and the connection is closed).
    public var maxBodyBytes: Int
    /// Number of internal event-loop threads (epoll). 1 means a single polling thread, no pool.
    public var threadPoolSize: Int
    /// Maximum number of concurrent connections (`nil`: libmicrohttpd's default).
    public var connectionLimit: Int?
    /// Per-connection memory pool (request line + headers must fit); `nil`: libmicrohttpd's default (32 KiB).
    public var connectionMemoryLimitBytes: Int?
    /// `listen(2)` backlog.
    public var listenBacklog: Int32
    /// HTTPS with required, verified client certificates; `nil` for plain HTTP.
    public var tls: TLSConfiguration?
    /// Receives libmicrohttpd's and the TLS layer's error messages (`nil`: silent). Called from server threads.
    public var errorLogger: (@Sendable (String) -> Void)?

    public init(
        host: String = "127.0.0.1",
        port: UInt16 = 0,
        connectionTimeoutSeconds: UInt32 = 60,
        maxBodyBytes: Int = 1 << 20,
        threadPoolSize: Int = 1,
        connectionLimit: Int? = nil,
        connectionMemoryLimitBytes: Int? = nil,
        listenBacklog: Int32 = 1024,
        tls: TLSConfiguration? = nil,
        errorLogger: (@Sendable (String) -> Void)? = nil
    ) {
        self.host = host
        self.port = port
        self.connectionTimeoutSeconds = connectionTimeoutSeconds
        self.maxBodyBytes = maxBodyBytes
        self.threadPoolSize = threadPoolSize
        self.connectionLimit = connectionLimit
        self.connectionMemoryLimitBytes = connectionMemoryLimitBytes
        self.listenBacklog = listenBacklog
        self.tls = tls
        self.errorLogger = errorLogger
    }
}

/// HTTPS with mutual TLS: every client must present a certificate that chains to `clientCAFile`,
/// or the handshake fails and the client gets no answer.
///
/// The three files are PEM. They are re-checked (`stat`) whenever a new connection arrives; when any of
/// them changed (content, inode or mtime), new connections use the freshly loaded set while existing
/// connections keep theirs. If the new files cannot be loaded (e.g. a certificate and a key that do not
/// match yet, half-way through a rotation), the previous set stays in use and the error is logged.
public struct TLSConfiguration: Sendable, Equatable {
    /// Server certificate (chain), PEM.
    public var certificateFile: String
    /// Server private key, PEM (unencrypted).
    public var keyFile: String
    /// CA bundle, PEM, that client certificates must chain to.
    public var clientCAFile: String
    /// GnuTLS priority string.
    public var priorities: String

    public init(
        certificateFile: String,
        keyFile: String,
        clientCAFile: String,
        priorities: String = "NORMAL:-VERS-TLS1.0:-VERS-TLS1.1"
    ) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.clientCAFile = clientCAFile
        self.priorities = priorities
    }
}

/// Why ``HTTPServer/start()`` failed.
public enum HTTPServerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `start()` was called on a running server.
    case alreadyStarted
    /// The configuration is unusable (e.g. `maxBodyBytes < 0`).
    case invalidConfiguration(String)
    /// `host` could not be resolved (`getaddrinfo` error text).
    case addressResolution(host: String, message: String)
    /// `socket`, `bind` or `listen` failed; `errno` tells why (`EADDRINUSE`, `EACCES`, ...).
    case bindFailed(host: String, port: UInt16, errno: Int32, message: String)
    /// The libmicrohttpd in use was built without TLS.
    case tlsUnsupported
    /// A TLS file could not be read or used.
    case tlsCredentials(file: String, message: String)
    /// `MHD_start_daemon` refused the options (see the error logger for details).
    case daemonStartFailed

    public var description: String {
        switch self {
        case .alreadyStarted: return "server already started"
        case .invalidConfiguration(let m): return "invalid server configuration: \(m)"
        case .addressResolution(let h, let m): return "cannot resolve listen address \(h): \(m)"
        case .bindFailed(let h, let p, _, let m): return "cannot listen on \(h):\(p): \(m)"
        case .tlsUnsupported: return "libmicrohttpd was built without TLS support"
        case .tlsCredentials(let f, let m): return "TLS credentials: \(f): \(m)"
        case .daemonStartFailed: return "libmicrohttpd refused to start the daemon"
        }
    }
}
