import Logging
import MeshAuthz
import MicroHTTPD

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Everything `meshauthz serve` is told.
public struct ServeConfiguration: Sendable {
    public var policyDirectory: String
    public var host: String
    public var port: UInt16
    public var mesh: MeshOptions
    public var reading: RequestReading
    public var engine: EngineKind
    /// Seconds between looks at the policy directory; 0 disables polling (SIGHUP still reloads).
    public var reloadInterval: Double
    /// The old `--log-decisions`: the same as `decisionLog = .all` (kept as an alias).
    public var logDecisions: Bool
    /// `--decision-log none|deny|all`: which decisions are written as JSON lines.
    public var decisionLog: DecisionLogMode = .none
    /// `--decision-log-file`: where (appended; reopened on SIGUSR1); nil for standard output.
    public var decisionLogFile: String?
    /// `?explain=true` is answered (`--no-explain` turns it off).
    public var explain = true
    /// Lines the decision log may hold before it drops (`--decision-log-queue`).
    public var decisionLogQueueLines = 65_536
    /// The effective mode, the alias included.
    public var effectiveDecisionLog: DecisionLogMode { logDecisions ? .all : decisionLog }
    public var threads: Int
    public var connectionTimeoutSeconds: UInt32
    public var maxBodyBytes: Int
    /// Largest request line + headers; larger heads are refused (431, or 403 under `/ext_authz`).
    public var maxHeaderBytes: Int
    /// A connection must deliver a request's headers within this many seconds of starting it (0: no deadline).
    public var headerTimeoutSeconds: Double
    /// Concurrent connections (`nil`: 10,000, or fewer when the descriptor limit is lower).
    public var maxConnections: Int?
    /// Concurrent connections per client IP address (0: no limit; gateways on loopback share one address).
    public var maxConnectionsPerIP: Int
    /// Whose `x-forwarded-client-cert` / `x-authz-source-ip` `/ext_authz` believes.
    public var trust: ForwardedTrust
    /// mTLS on the main listener (client certificates required and verified); nil for plain HTTP.
    public var tls: TLSFiles?
    /// A second, plaintext listener for `/healthz`, `/readyz` and `/metrics` only (probes, scrapers).
    public var probeListener: (host: String, port: UInt16)?
    /// Serve a set with no AuthorizationPolicy and no PeerAuthentication (it allows everything); without
    /// it such a set is refused, as a missing or empty mount would produce it.
    public var allowEmpty = false
    /// Seconds the policy files must be still before a change is loaded.
    public var reloadSettle = 0.2
    public var limits = LoadLimits()
    /// How `jwksUri` key sets are fetched.
    public var jwks = JWKSFetcher.Settings()

    public init(policyDirectory: String, host: String, port: UInt16, mesh: MeshOptions, reading: RequestReading,
                engine: EngineKind = .compiled, reloadInterval: Double = 1, logDecisions: Bool = false,
                threads: Int = 2, connectionTimeoutSeconds: UInt32 = 60, maxBodyBytes: Int = 4 << 20,
                maxHeaderBytes: Int = 32 << 10, headerTimeoutSeconds: Double = 10, maxConnections: Int? = nil,
                maxConnectionsPerIP: Int = 0, trust: ForwardedTrust = ForwardedTrust(), tls: TLSFiles? = nil,
                probeListener: (host: String, port: UInt16)? = nil) {
        self.policyDirectory = policyDirectory
        self.host = host
        self.port = port
        self.mesh = mesh
        self.reading = reading
        self.engine = engine
        self.reloadInterval = reloadInterval
        self.logDecisions = logDecisions
        self.threads = threads
        self.connectionTimeoutSeconds = connectionTimeoutSeconds
        self.maxBodyBytes = maxBodyBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.headerTimeoutSeconds = headerTimeoutSeconds
        self.maxConnections = maxConnections
        self.maxConnectionsPerIP = maxConnectionsPerIP
        self.trust = trust
        self.tls = tls
        self.probeListener = probeListener
    }
}

/// The PEM files of the mTLS listener; re-read by the server when they change (certificate rotation).
public struct TLSFiles: Sendable {
    public var certificate: String
    public var key: String
    public var clientCA: String

    public init(certificate: String, key: String, clientCA: String) {
        self.certificate = certificate
        self.key = key
        self.clientCA = clientCA
    }
}

/// `meshauthz serve`: load, listen, then wait for signals on the calling (main) thread, polling the
/// policy directory between them. SIGHUP reloads; SIGINT/SIGTERM stop the server cleanly.
public enum Service {
    /// The signals the main thread waits for; blocked in every thread.
    /// SIGUSR1 reopens the decision log file (logrotate); handled here, it can never kill the process.
    static let handledSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGUSR1]

    /// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread and every thread it starts afterwards.
    /// Call before anything starts a thread.
    public static func blockSignals() {
        TerminationSignals.block()
        var set = signalSet()
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Runs until SIGINT/SIGTERM; returns the process exit code (0 after a clean stop, 1 if the server
    /// could not start). Call `blockSignals()` first.
    public static func run(_ config: ServeConfiguration, logger: Logger) -> Int32 {
        // Every connection is a descriptor: the usual soft limit (1,024) would cap the server below its
        // connection limit, so take what the hard limit allows.
        let descriptors = FileDescriptorLimit.raiseToHardLimit()
        let store = PolicyStore()
        let decisionLog: DecisionLog
        do {
            decisionLog = try DecisionLog(mode: config.effectiveDecisionLog, path: config.decisionLogFile,
                                          capacityLines: config.decisionLogQueueLines)
        } catch {
            logger.critical("\(error)")
            return 1
        }
        let metrics = Metrics(decisionLog: config.effectiveDecisionLog == .none ? nil : decisionLog)
        let reloader = Reloader(directory: config.policyDirectory, options: config.mesh, engine: config.engine,
                                store: store, metrics: metrics, logger: logger, limits: config.limits,
                                allowEmpty: config.allowEmpty, settleSeconds: config.reloadSettle)
        reloader.initialLoad()

        // jwksUri keys: fetched once before listening (bounded by each rule's timeout), then kept fresh.
        let keySets = RemoteKeySets()
        let fetcher = JWKSFetcher(keySets: keySets, store: store, metrics: metrics, settings: config.jwks, logger: logger)
        fetcher.fetchDue()
        fetcher.start()
        defer { fetcher.stop() }
        let api = API(store: store, metrics: metrics, reading: config.reading, trust: config.trust, keySets: keySets,
                      fetcher: fetcher, logger: logger, decisionLog: decisionLog, explainEnabled: config.explain)
        let serverLogger = logger
        let httpConfig = HTTPServerConfiguration(
            host: config.host, port: config.port, connectionTimeoutSeconds: config.connectionTimeoutSeconds,
            maxBodyBytes: config.maxBodyBytes, maxHeaderBytes: config.maxHeaderBytes,
            headerTimeoutSeconds: config.headerTimeoutSeconds, threadPoolSize: config.threads,
            connectionLimit: config.maxConnections, perIPConnectionLimit: config.maxConnectionsPerIP,
            tls: config.tls.map { TLSConfiguration(certificateFile: $0.certificate, keyFile: $0.key, clientCAFile: $0.clientCA) },
            errorLogger: { message in serverLogger.warning("libmicrohttpd: \(message)") },
            refusal: Refusals.response)
        let server = HTTPServer(configuration: httpConfig) { request in api.handle(request) }

        var probeServer: HTTPServer?
        if let probe = config.probeListener {
            let probeConfig = HTTPServerConfiguration(
                host: probe.host, port: probe.port, connectionTimeoutSeconds: config.connectionTimeoutSeconds,
                maxBodyBytes: 0, headerTimeoutSeconds: config.headerTimeoutSeconds, threadPoolSize: 1,
                // Probes and scrapers need a handful; a cap keeps this port from eating the descriptors.
                connectionLimit: 256, perIPConnectionLimit: config.maxConnectionsPerIP,
                errorLogger: { message in serverLogger.warning("libmicrohttpd (probes): \(message)") })
            probeServer = HTTPServer(configuration: probeConfig) { request in api.handleProbe(request) }
        }
        do {
            try server.start()
            try probeServer?.start()
        } catch {
            logger.critical("cannot start the HTTP server: \(error)")
            server.stop()
            return 1
        }
        if let probeServer, let probe = config.probeListener {
            // Worded differently from the line below on purpose: tools look for the first "listening on".
            logger.info("probe endpoints (/healthz, /readyz, /metrics) on http://\(showHost(probe.host)):\(probeServer.boundPort)")
        }
        let scheme = config.tls == nil ? "http" : "https"
        let mtls = config.tls == nil ? "" : ", client certificates required"
        logger.info("connection limit \(server.effectiveConnectionLimit) (open files: \(descriptors)), header deadline \(config.headerTimeoutSeconds) s, per-IP limit \(config.maxConnectionsPerIP == 0 ? "off" : String(config.maxConnectionsPerIP))")
        if server.effectiveConnectionLimit > descriptors - 256 {
            // accept() would fail with EMFILE before the limit is reached: say so now, not under load.
            logger.warning("--max-connections \(server.effectiveConnectionLimit) is above what the open-file limit (\(descriptors)) allows; raise the hard limit (ulimit -Hn) or lower --max-connections")
        }
        logger.info("listening on \(scheme)://\(showHost(config.host)):\(server.boundPort) (policies: \(config.policyDirectory)\(mtls))")

        if config.effectiveDecisionLog != .none {
            logger.info("decision log: \(config.effectiveDecisionLog.rawValue) decisions to \(config.decisionLogFile ?? "standard output")")
        }
        let workloads = config.reading.hostRouting.map { WorkloadsWatcher(routes: $0, logger: logger, settleSeconds: config.reloadSettle) }
        let signal = waitLoop(reloader: reloader, workloads: workloads, interval: config.reloadInterval, logger: logger) {
            if config.decisionLogFile != nil && config.effectiveDecisionLog != .none {
                logger.info("received SIGUSR1, reopening the decision log \(config.decisionLogFile!)")
                decisionLog.reopen()
            } else {
                logger.info("received SIGUSR1: no decision log file to reopen")
            }
        }
        logger.info("received \(signalName(signal)), stopping")
        server.stop()
        probeServer?.stop()
        decisionLog.stop()  // what the last decisions queued is written
        logger.info("stopped")
        return 0
    }

    static func showHost(_ host: String) -> String {
        host.contains(":") ? "[\(host)]" : host
    }

    /// Waits for SIGINT/SIGTERM, reloading (the policies, and the `--workloads` manifests) on SIGHUP and
    /// polling every `interval` seconds meanwhile.
    static func waitLoop(reloader: Reloader, workloads: WorkloadsWatcher? = nil, interval: Double, logger: Logger,
                         onUSR1: () -> Void = {}) -> Int32 {
        var set = signalSet()
        let polling = interval > 0
        func reloadAll() {
            reloader.reload(why: "SIGHUP")
            workloads?.reload(why: "SIGHUP")
        }
        while true {
            // A change waiting to settle is looked at again sooner than the poll interval (even with
            // polling off: the first load may be settling).
            let settling = [reloader.settlingDelay, workloads?.settlingDelay].compactMap { $0 }.min()
            let wait = settling.map { min($0, polling ? interval : $0) } ?? (polling ? interval : 3600)
            var timeout = timespec(tv_sec: Int(wait), tv_nsec: Int((wait - Double(Int(wait))) * 1e9))
            let received = sigtimedwait(&set, nil, &timeout)
            if received == SIGINT || received == SIGTERM { return received }
            if received == SIGHUP {
                logger.info("received SIGHUP, reloading policies")
                reloadAll()
                continue
            }
            if received == SIGUSR1 {
                onUSR1()
                continue
            }
            if received < 0 && errno != EAGAIN && errno != EINTR {
                // Not expected; fall back to plain waiting so a stop signal is still honoured.
                logger.error("sigtimedwait failed: \(errnoText()); polling stopped")
                var plain = signalSet()
                while true {
                    var signal: Int32 = 0
                    if sigwait(&plain, &signal) == 0 {
                        if signal == SIGHUP { reloadAll(); continue }
                        if signal == SIGUSR1 { onUSR1(); continue }
                        return signal
                    }
                }
            }
            if polling || reloader.settlingDelay != nil { reloader.poll() }
            if let workloads, polling || workloads.settlingDelay != nil { workloads.poll() }
        }
    }

    static func signalSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for s in handledSignals { sigaddset(&set, s) }
        return set
    }

    static func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGINT: return "SIGINT"
        case SIGTERM: return "SIGTERM"
        case SIGHUP: return "SIGHUP"
        case SIGUSR1: return "SIGUSR1"
        default: return "signal \(signal)"
        }
    }
}
