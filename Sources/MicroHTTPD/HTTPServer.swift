internal import CGnuTLS
internal import CMicroHTTPD

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An HTTP/1.1 server on libmicrohttpd: one epoll event loop (or a pool of them) running inside the
/// daemon, keep-alive preserved, the handler called once per complete request on a server thread.
///
/// The handler must be thread-safe (it runs concurrently when `threadPoolSize > 1`) and should not block
/// for long: it runs on the event loop. An error it throws becomes a 500; a trap still crashes the process.
public final class HTTPServer: @unchecked Sendable {
    public typealias Handler = @Sendable (HTTPRequest) throws -> HTTPResponse

    public let configuration: HTTPServerConfiguration
    private let handler: Handler
    /// Guards the four fields below (state that `start`/`stop` change and accessors read from any thread).
    private let lock = Locked<Void>(())
    private var daemon: OpaquePointer?
    private var context: Unmanaged<ServerContext>?
    private var port: UInt16 = 0
    private var connectionLimit = 0

    public init(configuration: HTTPServerConfiguration = HTTPServerConfiguration(), handler: @escaping Handler) {
        self.configuration = configuration
        self.handler = handler
    }

    deinit { stop() }

    /// The port actually listened on (useful with port 0); 0 before `start()` and after `stop()`.
    public var boundPort: UInt16 { lock.withLock { _ in port } }

    /// `true` between a successful `start()` and `stop()`.
    public var isRunning: Bool { lock.withLock { _ in daemon != nil } }

    /// Connections open right now (accepted and not yet closed); 0 when stopped.
    public var openConnections: Int {
        lock.withLock { _ in context?.takeUnretainedValue().watch.openConnections ?? 0 }
    }

    /// Connections the server shut down itself: past the header deadline, and half-closed by their peer
    /// after a request.
    public var cutOffConnections: (headerDeadline: Int, halfClosed: Int) {
        lock.withLock { _ in context?.takeUnretainedValue().watch.cutOffs ?? (0, 0) }
    }

    /// The connection limit in force (configured, or derived from the descriptor limit at `start()`); 0
    /// when stopped.
    public var effectiveConnectionLimit: Int { lock.withLock { _ in connectionLimit } }

    /// How many times the TLS credentials were reloaded after their files changed (0 without TLS).
    public var tlsCredentialReloads: Int {
        lock.withLock { _ in context?.takeUnretainedValue().tls?.reloads ?? 0 }
    }

    /// Binds, listens and starts serving on background threads. Returns once the socket accepts connections.
    public func start() throws(HTTPServerError) {
        // libmicrohttpd's manual asks applications to ignore SIGPIPE: a peer that closes early must cost an
        // EPIPE on one connection, never the process (GnuTLS writes, or a client in the same process).
        signal(SIGPIPE, SIG_IGN)
        try lock.withLock { _ throws(HTTPServerError) in
            guard daemon == nil else { throw .alreadyStarted }
            let config = configuration
            guard config.maxBodyBytes >= 0 else { throw .invalidConfiguration("maxBodyBytes must be >= 0") }
            guard config.threadPoolSize >= 1 else { throw .invalidConfiguration("threadPoolSize must be >= 1") }
            guard config.maxHeaderBytes >= 1024 else { throw .invalidConfiguration("maxHeaderBytes must be >= 1024") }
            guard config.headerTimeoutSeconds >= 0, config.headerTimeoutSeconds.isFinite else {
                throw .invalidConfiguration("headerTimeoutSeconds must be >= 0")
            }
            guard config.perIPConnectionLimit >= 0 else { throw .invalidConfiguration("perIPConnectionLimit must be >= 0") }
            let connectionLimit = config.connectionLimit
                ?? HTTPServerConfiguration.defaultConnectionLimit(fileDescriptorLimit: FileDescriptorLimit.current)
            guard connectionLimit >= config.threadPoolSize else {
                throw .invalidConfiguration("connectionLimit must be at least threadPoolSize")
            }
            // Room for a whole head of maxHeaderBytes (parsed in place) plus 16 KiB for its header table
            // and the response's headers. No more: libmicrohttpd 0.9.75 zeroes the whole pool after every
            // request (MHD_pool_reset), so its size is paid per request and becomes resident per connection:
            // the default (16 KiB of head) gives libmicrohttpd's own default pool, 32 KiB, whose memset is
            // already ~49,000 of the ~75,000 instructions of an /ext_authz request (BENCHMARKS.md §3).
            let memoryLimit = config.connectionMemoryLimitBytes ?? (config.maxHeaderBytes + (16 << 10))

            var tlsStore: TLSCredentialStore?
            var cStrings: [UnsafeMutablePointer<CChar>] = []  // owned by the context from here on
            var tlsOptions: [MHD_OptionItem] = []
            if let tls = config.tls {
                guard MHD_is_feature_supported(MHD_FEATURE.FEATURE_TLS) == MHD_Result.YES else { throw .tlsUnsupported }
                tlsStore = try TLSCredentialStore(configuration: tls, log: config.errorLogger)
                // libmicrohttpd insists on its own copy of a key pair; every session is switched to the
                // store's current credentials before its handshake anyway.
                let cert = try readCString(tls.certificateFile)
                let key: UnsafeMutablePointer<CChar>
                do throws(HTTPServerError) { key = try readCString(tls.keyFile) } catch { free(cert); throw error }
                let priorities = strdup(tls.priorities)!
                cStrings = [cert, key, priorities]
                tlsOptions = [
                    MHD_OptionItem(option: MHD_OPTION.HTTPS_MEM_CERT, value: 0, ptr_value: UnsafeMutableRawPointer(cert)),
                    MHD_OptionItem(option: MHD_OPTION.HTTPS_MEM_KEY, value: 0, ptr_value: UnsafeMutableRawPointer(key)),
                    MHD_OptionItem(option: MHD_OPTION.HTTPS_PRIORITIES, value: 0,
                                   ptr_value: UnsafeMutableRawPointer(priorities)),
                ]
            }

            // Own the listening socket: precise bind errors, and libmicrohttpd closes it on stop.
            var stage: Int32 = 0, err: Int32 = 0, isIPv6: Int32 = 0
            let fd = mhz_listen(config.host, config.port, config.listenBacklog, &stage, &err, &isIPv6)
            if fd < 0 {
                cStrings.forEach { free($0) }
                if stage == Int32(MHZ_LISTEN_RESOLVE.rawValue) {
                    throw .addressResolution(host: config.host, message: String(cString: gai_strerror(err)))
                }
                throw .bindFailed(host: config.host, port: config.port, errno: err,
                                  message: String(cString: strerror(err)))
            }

            let listenIdentity = socketIdentity(fd)
            let ctx = ServerContext(handler: handler, configuration: config, tls: tlsStore, ownedCStrings: cStrings)
            let unmanaged = Unmanaged.passRetained(ctx)
            let cls = unmanaged.toOpaque()

            var flags = MHD_USE_INTERNAL_POLLING_THREAD.rawValue | MHD_USE_EPOLL.rawValue
            if isIPv6 != 0 { flags |= MHD_USE_IPv6.rawValue }
            if config.tls != nil { flags |= MHD_USE_TLS.rawValue }
            if config.errorLogger != nil { flags |= MHD_USE_ERROR_LOG.rawValue }

            var options: [MHD_OptionItem] = []
            if config.errorLogger != nil {
                // First, so that libmicrohttpd's own option parsing already logs through it.
                options.append(MHD_OptionItem(option: MHD_OPTION.EXTERNAL_LOGGER,
                                              value: mhz_logger_trampoline_address(),
                                              ptr_value: UnsafeMutableRawPointer(ctx.logger)))
            }
            options += [
                MHD_OptionItem(option: MHD_OPTION.LISTEN_SOCKET, value: Int(fd), ptr_value: nil),
                MHD_OptionItem(option: MHD_OPTION.CONNECTION_TIMEOUT, value: Int(config.connectionTimeoutSeconds),
                               ptr_value: nil),
                MHD_OptionItem(option: MHD_OPTION.URI_LOG_CALLBACK,
                               value: unsafeBitCast(uriLogCallback as UriLogFn, to: Int.self), ptr_value: cls),
                MHD_OptionItem(option: MHD_OPTION.NOTIFY_COMPLETED,
                               value: unsafeBitCast(requestCompleted as CompletedFn, to: Int.self), ptr_value: cls),
            ]
            if config.threadPoolSize > 1 {
                options.append(MHD_OptionItem(option: MHD_OPTION.THREAD_POOL_SIZE, value: config.threadPoolSize,
                                              ptr_value: nil))
            }
            // Always set: libmicrohttpd's default is FD_SETSIZE - 4 (1,020) even with epoll. With a thread
            // pool it is split evenly between the threads.
            options.append(MHD_OptionItem(option: MHD_OPTION.CONNECTION_LIMIT, value: connectionLimit, ptr_value: nil))
            if config.perIPConnectionLimit > 0 {
                options.append(MHD_OptionItem(option: MHD_OPTION.PER_IP_CONNECTION_LIMIT,
                                              value: config.perIPConnectionLimit, ptr_value: nil))
            }
            options.append(MHD_OptionItem(option: MHD_OPTION.CONNECTION_MEMORY_LIMIT, value: memoryLimit,
                                          ptr_value: nil))
            // Every connection gets a ConnectionState (header deadline, half-close, TLS policy).
            options.append(MHD_OptionItem(option: MHD_OPTION.NOTIFY_CONNECTION,
                                          value: unsafeBitCast(connectionNotify as ConnectionFn, to: Int.self),
                                          ptr_value: cls))

            options += tlsOptions
            options.append(MHD_OptionItem(option: MHD_OPTION.END, value: 0, ptr_value: nil))
            let started = options.withUnsafeBufferPointer { buffer in
                mhz_start_daemon(flags, 0, accessHandler, cls, buffer.baseAddress)
            }
            guard let started else {
                // Some of libmicrohttpd's failure paths close the listening socket, others do not: close
                // it only if the fd still is that socket (the number may have been reused meanwhile).
                if socketIdentity(fd) == listenIdentity { close(fd) }
                unmanaged.release()
                throw .daemonStartFailed
            }
            guard ctx.watch.start() else {
                MHD_stop_daemon(started)
                unmanaged.release()
                throw .invalidConfiguration("cannot start the connection watch thread")
            }
            daemon = started
            context = unmanaged
            self.connectionLimit = connectionLimit
            let mhdPort = mhz_daemon_bind_port(started)
            port = mhdPort != 0 ? mhdPort : mhz_socket_port(fd)
        }
    }

    /// Stops accepting, closes every connection (in-flight handler calls finish first) and releases the
    /// port; returns when all of that is done. Idempotent. Must not be called from inside the handler.
    public func stop() {
        let (d, ctx) = lock.withLock { _ -> (OpaquePointer?, Unmanaged<ServerContext>?) in
            defer {
                daemon = nil
                context = nil
                port = 0
                connectionLimit = 0
            }
            return (daemon, context)
        }
        guard let d else { return }
        // First, so that nothing is shut down while libmicrohttpd closes everything.
        ctx?.takeUnretainedValue().watch.stop()
        // Outside the lock: joins the daemon's threads (a handler may still be reading `boundPort`), closes
        // the listening socket and every connection, freeing per-request and per-connection state.
        MHD_stop_daemon(d)
        ctx?.release()
    }
}

// MARK: - Internals

/// Everything the C callbacks need, reached through `cls`.
final class ServerContext: @unchecked Sendable {
    let handler: HTTPServer.Handler
    let maxBodyBytes: Int
    let maxHeaderBytes: Int
    let tls: TLSCredentialStore?
    let log: (@Sendable (String) -> Void)?
    let refusal: (@Sendable (HTTPRefusal, String) -> HTTPResponse)?
    let watch: ConnectionWatch
    /// For MHD_OPTION_EXTERNAL_LOGGER; lives as long as the context.
    let logger: UnsafeMutablePointer<mhz_logger>
    /// Option strings handed to libmicrohttpd (TLS PEMs, priorities): freed with the context.
    private let ownedCStrings: [UnsafeMutablePointer<CChar>]

    init(handler: @escaping HTTPServer.Handler, configuration: HTTPServerConfiguration, tls: TLSCredentialStore?,
         ownedCStrings: [UnsafeMutablePointer<CChar>]) {
        self.ownedCStrings = ownedCStrings
        self.handler = handler
        self.maxBodyBytes = configuration.maxBodyBytes
        self.maxHeaderBytes = configuration.maxHeaderBytes
        self.tls = tls
        self.log = configuration.errorLogger
        self.refusal = configuration.refusal
        self.watch = ConnectionWatch(headerTimeoutSeconds: configuration.headerTimeoutSeconds)
        logger = .allocate(capacity: 1)
        logger.initialize(to: mhz_logger(log: nil, context: nil))
        logger.pointee.context = Unmanaged.passUnretained(self).toOpaque()
        logger.pointee.log = { context, message in
            guard let context, let message else { return }
            Unmanaged<ServerContext>.fromOpaque(context).takeUnretainedValue().log?(String(cString: message))
        }
    }

    deinit {
        logger.deinitialize(count: 1)
        logger.deallocate()
        ownedCStrings.forEach { free($0) }
    }
}

private typealias UriLogFn = @convention(c) (
    UnsafeMutableRawPointer?, UnsafePointer<CChar>?, OpaquePointer?
) -> UnsafeMutableRawPointer?
private typealias CompletedFn = @convention(c) (
    UnsafeMutableRawPointer?, OpaquePointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, MHD_RequestTerminationCode
) -> Void
private typealias ConnectionFn = @convention(c) (
    UnsafeMutableRawPointer?, OpaquePointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
    MHD_ConnectionNotificationCode
) -> Void

/// (device, inode) of an open fd, to recognise a socket; nil if the fd is closed.
private func socketIdentity(_ fd: Int32) -> [UInt64]? {
    var st = stat()
    guard fstat(fd, &st) == 0 else { return nil }
    return [UInt64(st.st_dev), UInt64(st.st_ino)]
}

/// Reads a whole (small) file into a malloc'ed NUL-terminated buffer; the caller frees it.
private func readCString(_ path: String) throws(HTTPServerError) -> UnsafeMutablePointer<CChar> {
    guard let file = fopen(path, "rb") else {
        throw .tlsCredentials(file: path, message: String(cString: strerror(errno)))
    }
    defer { fclose(file) }
    var bytes: [CChar] = []
    var chunk = [CChar](repeating: 0, count: 16384)
    while true {
        let n = fread(&chunk, 1, chunk.count, file)
        if n > 0 { bytes.append(contentsOf: chunk[0..<n]) }
        if n < chunk.count { break }
    }
    let buffer = malloc(bytes.count + 1)!.assumingMemoryBound(to: CChar.self)
    buffer.initialize(from: bytes, count: bytes.count)
    buffer[bytes.count] = 0
    return buffer
}

/// MHD_OPTION_URI_LOG_CALLBACK: runs once per request, before the headers are parsed, with the request
/// target exactly as sent. Its result becomes `*con_cls`.
private func uriLogCallback(
    _ cls: UnsafeMutableRawPointer?, _ uri: UnsafePointer<CChar>?, _ connection: OpaquePointer?
) -> UnsafeMutableRawPointer? {
    let state = RequestState(rawTarget: uri.map { String(cString: $0) } ?? "")
    return Unmanaged.passRetained(state).toOpaque()
}

/// MHD_OPTION_NOTIFY_COMPLETED: the response is out (or the request was aborted). Frees the per-request
/// state and tells the watch, which closes the connection if the peer has already finished sending.
private func requestCompleted(
    _ cls: UnsafeMutableRawPointer?, _ connection: OpaquePointer?,
    _ conCls: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, _ code: MHD_RequestTerminationCode
) {
    if let cls, let connection, let conn = ConnectionState.of(connection) {
        Unmanaged<ServerContext>.fromOpaque(cls).takeUnretainedValue().watch.requestCompleted(conn)
    }
    guard let conCls, let raw = conCls.pointee else { return }
    conCls.pointee = nil
    Unmanaged<RequestState>.fromOpaque(raw).release()
}

/// MHD_OPTION_NOTIFY_CONNECTION: every accepted connection gets a ConnectionState, registered with the
/// watch until the close. For TLS, before the handshake: hand the session the current credentials and
/// require + verify a client certificate.
private func connectionNotify(
    _ cls: UnsafeMutableRawPointer?, _ connection: OpaquePointer?,
    _ socketContext: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, _ code: MHD_ConnectionNotificationCode
) {
    guard let cls, let connection, let socketContext else { return }
    let context = Unmanaged<ServerContext>.fromOpaque(cls).takeUnretainedValue()
    switch code {
    case MHD_ConnectionNotificationCode.CONNECTION_NOTIFY_STARTED:
        var credentials: TLSCredentials?
        if let store = context.tls {
            if let session = mhz_connection_tls_session(connection) {
                let current = store.credentialsForNewConnection()
                let rc = mhz_tls_require_client_certificate(OpaquePointer(session), current.raw)
                if rc < 0 {
                    context.log?("cannot set TLS credentials on a session: \(String(cString: gnutls_strerror(rc)))")
                }
                credentials = current
            } else {
                // peerVerified() is then false: every request on it is refused.
                context.log?("TLS connection without a GnuTLS session; its requests will be refused")
            }
        }
        let state = ConnectionState(fd: mhz_connection_fd(connection), credentials: credentials,
                                    now: ConnectionWatch.now())
        socketContext.pointee = Unmanaged.passRetained(state).toOpaque()
        context.watch.opened(state)
    case MHD_ConnectionNotificationCode.CONNECTION_NOTIFY_CLOSED:
        guard let raw = socketContext.pointee else { return }
        socketContext.pointee = nil
        let state = Unmanaged<ConnectionState>.fromOpaque(raw)
        context.watch.closed(state.takeUnretainedValue())
        state.release()
    default:
        // A C enum: libmicrohttpd may add notifications; none of them concerns us.
        return
    }
}

/// The access handler. libmicrohttpd calls it (1) once the headers are in — we only accept, so that
/// keep-alive survives; (2) zero or more times with body bytes — accumulated in `*con_cls`; (3) once more
/// with no data — the request is complete: run the Swift handler and queue its response.
private func accessHandler(
    _ cls: UnsafeMutableRawPointer?, _ connection: OpaquePointer?,
    _ url: UnsafePointer<CChar>?, _ method: UnsafePointer<CChar>?, _ version: UnsafePointer<CChar>?,
    _ uploadData: UnsafePointer<CChar>?, _ uploadDataSize: UnsafeMutablePointer<Int>?,
    _ conCls: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> MHD_Result {
    guard let cls, let connection, let conCls, let uploadDataSize else { return MHD_Result.NO }
    let context = Unmanaged<ServerContext>.fromOpaque(cls).takeUnretainedValue()

    let state: RequestState
    if let raw = conCls.pointee {
        state = Unmanaged<RequestState>.fromOpaque(raw).takeUnretainedValue()
    } else {
        // Not expected (the URI log callback always sets it), but never answer without state.
        state = RequestState(rawTarget: url.map { String(cString: $0) } ?? "")
        conCls.pointee = Unmanaged.passRetained(state).toOpaque()
    }

    switch state.phase {
    case .new:
        let conn = ConnectionState.of(connection)
        if let conn { context.watch.headersComplete(conn) }
        // A TLS request is only served to a verified client (the handshake already insists on it).
        if context.tls != nil {
            guard let conn, conn.peerVerified(connection) else {
                state.phase = .done
                return MHD_Result.NO
            }
        }
        if mhz_connection_header_size(connection) > context.maxHeaderBytes {
            return refuse(context, connection, state, .headersTooLarge(limit: context.maxHeaderBytes))
        }
        switch RequestFraming.check(connection) {
        case .refused(let problem):
            return refuse(context, connection, state, .badFraming(problem))
        case .acceptable(let contentLength):
            if let length = contentLength {
                if length > context.maxBodyBytes {
                    return refuse(context, connection, state, .bodyTooLarge(limit: context.maxBodyBytes))
                }
                if length > 0 { state.body.reserveCapacity(length) }
            }
        }
        state.phase = .receiving
        return MHD_Result.YES

    case .receiving:
        let count = uploadDataSize.pointee
        if count > 0 {
            uploadDataSize.pointee = 0
            if state.body.count + count > context.maxBodyBytes {
                state.body = []
                state.phase = .tooLarge
                return MHD_Result.YES
            }
            if let uploadData {
                UnsafeRawPointer(uploadData).withMemoryRebound(to: UInt8.self, capacity: count) {
                    state.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: count))
                }
            }
            return MHD_Result.YES
        }
        state.phase = .done
        return respond(context, connection, state, method: method, version: version)

    case .tooLarge:
        // A chunked body went over the limit: drain the rest, then answer 413 and close.
        if uploadDataSize.pointee > 0 {
            uploadDataSize.pointee = 0
            return MHD_Result.YES
        }
        return refuse(context, connection, state, .bodyTooLarge(limit: context.maxBodyBytes))

    case .done:
        return MHD_Result.YES
    }
}

private func respond(
    _ context: ServerContext, _ connection: OpaquePointer, _ state: RequestState,
    method: UnsafePointer<CChar>?, version: UnsafePointer<CChar>?
) -> MHD_Result {
    let request = HTTPRequest(
        method: method.map { String(cString: $0) } ?? "",
        version: version,
        connection: connection, state: state)
    state.inHandler = true
    let response: HTTPResponse
    do {
        response = try context.handler(request)
    } catch {
        context.log?("handler error: \(error)")
        response = HTTPResponse(status: 500, headers: [("Content-Type", "text/plain; charset=utf-8")],
                                body: "internal server error\n")
    }
    state.inHandler = false
    state.body = []
    let rc = queue(connection, response, closing: false)
    if rc == MHD_Result.YES { return rc }
    // The response itself was refused (unlikely: statuses are clamped): fall back to a bare 500.
    return queue(connection, HTTPResponse(status: 500), closing: true)
}

/// Answers a refusal (through the configured hook, if any) and closes the connection after it.
private func refuse(
    _ context: ServerContext, _ connection: OpaquePointer, _ state: RequestState, _ refusal: HTTPRefusal
) -> MHD_Result {
    state.phase = .done
    let response = context.refusal?(refusal, state.rawTarget) ?? refusal.defaultResponse
    if queue(connection, response, closing: true) == MHD_Result.YES { return MHD_Result.YES }
    return queue(connection, refusal.defaultResponse, closing: true)
}

/// Queues `response` on `connection`. libmicrohttpd copies the body (MHD_ResponseMemoryMode.RESPMEM_MUST_COPY).
private func queue(_ connection: OpaquePointer, _ response: HTTPResponse, closing: Bool) -> MHD_Result {
    if !closing, let prepared = response.prepared {
        return MHD_queue_response(connection, clampedStatus(response.status), prepared.response)
    }
    guard let mhdResponse = createResponse(response, closing: closing) else { return MHD_Result.NO }
    let rc = MHD_queue_response(connection, clampedStatus(response.status), mhdResponse)
    MHD_destroy_response(mhdResponse)
    return rc
}
