/// Where and how an ``HTTPServer`` listens.
public struct HTTPServerConfiguration: Sendable {
    /// Address to bind: a numeric IPv4/IPv6 address or a host name (first address that binds wins).
    public var host: String
    /// TCP port; 0 asks the kernel for a free one (read it back from ``HTTPServer/boundPort``).
    public var port: UInt16
    /// Idle connections (keep-alive included) are closed after this many seconds. 0 means never: avoid.
    public var connectionTimeoutSeconds: UInt32
    /// Request bodies larger than this are refused (``HTTPRefusal/bodyTooLarge``: 413 unless `refusal`
    /// says otherwise) and the connection is closed.
    public var maxBodyBytes: Int
    /// Request line plus headers larger than this are refused (``HTTPRefusal/headersTooLarge``: 431 unless
    /// `refusal` says otherwise). libmicrohttpd's per-connection memory is sized from it (see
    /// `connectionMemoryLimitBytes`), so that heads up to this size reach the refusal hook instead of
    /// libmicrohttpd's own fixed 431, which still answers heads larger than that memory.
    public var maxHeaderBytes: Int
    /// A connection that has not delivered a complete request head this many seconds after it started
    /// sending it (after the accept, or after the first byte following a keep-alive response) is closed,
    /// however slowly it trickles bytes; 0 disables the deadline. See ``ConnectionWatch``.
    public var headerTimeoutSeconds: Double
    /// Number of internal event-loop threads (epoll). 1 means a single polling thread, no pool.
    public var threadPoolSize: Int
    /// Maximum number of concurrent connections; beyond it new connections wait in the listen backlog.
    /// `nil`: ``defaultConnectionLimit(fileDescriptorLimit:)`` of the process's current descriptor limit
    /// (libmicrohttpd's own default is 1,020, the `select` ceiling, even with epoll).
    public var connectionLimit: Int?
    /// Concurrent connections from one IP address beyond which new ones are closed at once; 0: no limit.
    /// Gateways on loopback (or a node-local proxy) are one address carrying everyone's traffic, so a
    /// per-address limit is for direct clients only: off by default.
    public var perIPConnectionLimit: Int
    /// Per-connection memory pool (request line + headers must fit); `nil`: `maxHeaderBytes + 16 KiB`.
    /// libmicrohttpd zeroes the whole pool after each request: keep it small.
    public var connectionMemoryLimitBytes: Int?
    /// `listen(2)` backlog.
    public var listenBacklog: Int32
    /// HTTPS with required, verified client certificates; `nil` for plain HTTP.
    public var tls: TLSConfiguration?
    /// Receives libmicrohttpd's and the TLS layer's error messages (`nil`: silent). Called from server threads.
    public var errorLogger: (@Sendable (String) -> Void)?
    /// The answer to a request refused before the handler (too large, bad framing), given the refusal and
    /// the raw request target; `nil`: ``HTTPRefusal/defaultResponse``. The connection is closed afterwards
    /// whatever the answer. Called from server threads.
    public var refusal: (@Sendable (HTTPRefusal, String) -> HTTPResponse)?

    /// The connection limit when none is configured: 10,000, or fewer when the process may not open
    /// that many descriptors (256 are left for everything else: the listener, epoll, policy files).
    public static func defaultConnectionLimit(fileDescriptorLimit: Int) -> Int {
        max(16, min(10_000, fileDescriptorLimit - 256))
    }

    public init(
        host: String = "127.0.0.1",
        port: UInt16 = 0,
        connectionTimeoutSeconds: UInt32 = 60,
        maxBodyBytes: Int = 1 << 20,
        maxHeaderBytes: Int = 16 << 10,
        headerTimeoutSeconds: Double = 10,
        threadPoolSize: Int = 1,
        connectionLimit: Int? = nil,
        perIPConnectionLimit: Int = 0,
        connectionMemoryLimitBytes: Int? = nil,
        listenBacklog: Int32 = 1024,
        tls: TLSConfiguration? = nil,
        errorLogger: (@Sendable (String) -> Void)? = nil,
        refusal: (@Sendable (HTTPRefusal, String) -> HTTPResponse)? = nil
    ) {
        self.host = host
        self.port = port
        self.connectionTimeoutSeconds = connectionTimeoutSeconds
        self.maxBodyBytes = maxBodyBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.headerTimeoutSeconds = headerTimeoutSeconds
        self.threadPoolSize = threadPoolSize
        self.connectionLimit = connectionLimit
        self.perIPConnectionLimit = perIPConnectionLimit
        self.connectionMemoryLimitBytes = connectionMemoryLimitBytes
        self.listenBacklog = listenBacklog
        self.tls = tls
        self.errorLogger = errorLogger
        self.refusal = refusal
    }
}

/// HTTPS with mutual TLS: every client must present a certificate that chains to `clientCAFile`, is not
/// itself a CA, and lists clientAuth when it has an extended key usage; otherwise the handshake fails with
/// a bad_certificate alert and the client gets no HTTP answer.
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
