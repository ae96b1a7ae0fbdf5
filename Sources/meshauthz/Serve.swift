import ArgumentParser
import Logging
import MeshAuthz
import MeshAuthzServer

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve decisions over HTTP (/v1/check, /ext_authz) from a policy directory, reloading it on change.",
        discussion: """
            Logs one line "listening on http://HOST:PORT" once the socket accepts connections (port 0 picks a \
            free port and the line names it). While the policy set is invalid, missing or empty (no \
            AuthorizationPolicy and no PeerAuthentication, unless --allow-empty), /readyz answers 503 and every \
            decision denies; a reload that fails keeps the last good set serving. A change is loaded once the \
            files have been still for --reload-settle seconds. SIGHUP reloads; \
            SIGTERM or SIGINT stop cleanly (exit 0).
            """)

    @OptionGroup var policyOptions: PolicyOptions

    @OptionGroup var loadOptions: LoadOptions

    @Option(name: .long, help: ArgumentHelp("Address to listen on; port 0 picks a free one.", valueName: "host:port"))
    var listen: String = "127.0.0.1:8080"

    @Option(name: .long, help: ArgumentHelp(
        "/ext_authz: destination namespace when the request has no x-authz-namespace header (none by default: such a request is denied).",
        valueName: "namespace"))
    var defaultNamespace: String?

    @Option(name: .long, help: ArgumentHelp(
        "/ext_authz: destination workload labels (k=v,k=v; \"\" for none) when the request has no x-authz-workload header (none by default: such a request is denied).",
        valueName: "labels"))
    var defaultWorkload: String?

    @Option(name: .long, help: ArgumentHelp(
        "/ext_authz: Kubernetes manifests (files or directories: Services, Deployments...) whose Services name the destination of a request without x-authz-namespace/x-authz-workload by its Host (name.ns[.svc[.cluster.local]]); repeatable. Read at start.",
        valueName: "path"))
    var workloads: [String] = []

    @Option(name: .long, help: ArgumentHelp(
        "/ext_authz: the gateway convention this listener serves (envoy, nginx, traefik, or any: detected per request, mixed conventions denied).",
        valueName: "convention"))
    var gateway: GatewayConvention = .any

    @OptionGroup var normalization: NormalizationOptions

    @Option(name: .long, help: ArgumentHelp(
        "Decision log: none, deny or all decisions, one JSON object per line (never waited for: when its queue is full, lines are dropped and counted).",
        valueName: "which"))
    var decisionLog: DecisionLogMode = .none

    @Option(name: .long, help: ArgumentHelp(
        "Append the decision log to this file (reopened on SIGUSR1, for logrotate); default: standard output.",
        valueName: "path"))
    var decisionLogFile: String?

    @Option(name: .long, help: ArgumentHelp(
        "Decision log lines queued in memory (at most 32 MiB) before new ones are dropped and counted.", valueName: "lines"))
    var decisionLogQueue: Int = 65_536

    @Flag(name: .long, help: "Refuse POST /v1/check?explain=true (403): a trace shows the values of every policy that applies to the destination asked about.")
    var noExplain = false

    @Flag(name: .long, help: "Alias of --decision-log all (kept for existing deployments).")
    var logDecisions = false

    @Option(name: .long, help: ArgumentHelp(
        "Seconds between looks at the policy directory for changes (0: only on SIGHUP).", valueName: "seconds"))
    var reloadInterval: Double = 1

    @Option(name: .long, help: ArgumentHelp(
        "Seconds the policy files must be still before a change is loaded (a file caught half-written is not served).",
        valueName: "seconds"))
    var reloadSettle: Double = 0.2

    @Option(name: .long, help: ArgumentHelp(
        "CA file (PEM) trusted for https jwksUri fetches instead of the system's trust store.", valueName: "file"))
    var jwksCa: String?

    @Option(name: .long, help: ArgumentHelp("Seconds between fetches of each jwksUri key set.", valueName: "seconds"))
    var jwksRefreshInterval: Double = 1200

    @Option(name: .long, help: ArgumentHelp(
        "Seconds before a failed jwksUri fetch is tried again.", valueName: "seconds"))
    var jwksRetryInterval: Double = 5

    @Option(name: .long, help: ArgumentHelp(
        "Least seconds between two fetches of a jwksUri asked for by tokens naming an unknown key.", valueName: "seconds"))
    var jwksMinRefreshInterval: Double = 30

    @Option(name: .long, help: ArgumentHelp("Decision engine: reference or compiled.", valueName: "engine"))
    var engine: EngineKind = .compiled

    @Option(name: .long, help: ArgumentHelp("HTTP event-loop threads.", valueName: "n"))
    var threads: Int = 2

    @Option(name: .long, help: ArgumentHelp("Idle connections are closed after this many seconds.", valueName: "seconds"))
    var connectionTimeout: UInt32 = 60

    @Option(name: .long, help: ArgumentHelp("Largest accepted request body (413 above).", valueName: "bytes"))
    var maxBodyBytes: Int = 4 << 20

    @Option(name: .long, help: ArgumentHelp(
        "Largest request line + headers (431 above; 403 with a reason under /ext_authz).", valueName: "bytes"))
    var maxHeaderBytes: Int = 16 << 10

    @Option(name: .long, help: ArgumentHelp(
        "A connection must deliver a request's headers within this many seconds of starting it, however slowly it trickles them (0: no deadline).",
        valueName: "seconds"))
    var headerTimeout: Double = 10

    @Option(name: .long, help: ArgumentHelp(
        "Concurrent connections; more wait in the listen backlog (default: 10000, or the open-file limit minus 256 if lower).",
        valueName: "n"))
    var maxConnections: Int?

    @Option(name: .long, help: ArgumentHelp(
        "Concurrent connections from one client IP address; more are closed at once (0: no limit, the default, since gateways on loopback share one address).",
        valueName: "n"))
    var maxConnectionsPerIp: Int = 0

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp(
        "Peers whose x-forwarded-client-cert and x-authz-source-ip /ext_authz believes (CIDRs, comma-separated, repeatable; default: loopback only). From others they are ignored.",
        valueName: "cidr[,cidr...]"))
    var trustXfccFrom: [String] = []

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp(
        "Also require the forwarding peer to present, over the mTLS listener, a certificate with this URI SAN (repeatable).",
        valueName: "spiffe-uri"))
    var trustXfccIdentity: [String] = []

    @Option(name: .long, help: ArgumentHelp("Serve HTTPS with this certificate (PEM); needs --tls-key and --client-ca.", valueName: "file"))
    var tlsCert: String?

    @Option(name: .long, help: ArgumentHelp("Private key (PEM) of --tls-cert.", valueName: "file"))
    var tlsKey: String?

    @Option(name: .long, help: ArgumentHelp(
        "CA bundle (PEM) client certificates must chain to: every client needs one. The three files are re-read when they change.",
        valueName: "file"))
    var clientCa: String?

    @Option(name: .long, help: ArgumentHelp(
        "Also serve /healthz, /readyz and /metrics in plain HTTP here (for probes when the main listener is mTLS).",
        valueName: "host:port"))
    var healthListen: String?

    @Option(name: .long, help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"))
    var logLevel: Logger.Level = .info

    func validate() throws {
        _ = try parseListen(listen)
        if let defaultWorkload, parseWorkloadLabels(defaultWorkload) == nil {
            throw ValidationError("--default-workload must be k=v pairs separated by commas, not \"\(defaultWorkload)\"")
        }
        if defaultNamespace?.isEmpty == true { throw ValidationError("--default-namespace must not be empty") }
        guard reloadInterval >= 0, reloadInterval.isFinite else { throw ValidationError("--reload-interval must be >= 0") }
        guard reloadSettle >= 0, reloadSettle <= 60 else { throw ValidationError("--reload-settle must be between 0 and 60") }
        guard (1...64).contains(threads) else { throw ValidationError("--threads must be between 1 and 64") }
        guard maxBodyBytes >= 0 else { throw ValidationError("--max-body-bytes must be >= 0") }
        guard maxHeaderBytes >= 1024 else { throw ValidationError("--max-header-bytes must be >= 1024") }
        guard headerTimeout >= 0, headerTimeout.isFinite else { throw ValidationError("--header-timeout must be >= 0") }
        if let maxConnections, !(threads...10_000_000).contains(maxConnections) {
            throw ValidationError("--max-connections must be at least --threads (\(threads))")
        }
        guard maxConnectionsPerIp >= 0 else { throw ValidationError("--max-connections-per-ip must be >= 0") }
        _ = try forwardedTrust()
        let tlsFiles = [tlsCert, tlsKey, clientCa].compactMap { $0 }
        guard tlsFiles.isEmpty || tlsFiles.count == 3 else {
            throw ValidationError("--tls-cert, --tls-key and --client-ca go together (mutual TLS)")
        }
        if let healthListen { _ = try parseListen(healthListen) }
        if logDecisions && decisionLog != .none && decisionLog != .all {
            throw ValidationError("--log-decisions is --decision-log all; it contradicts --decision-log \(decisionLog.rawValue)")
        }
        if decisionLogFile?.isEmpty == true { throw ValidationError("--decision-log-file must not be empty") }
        guard (1...10_000_000).contains(decisionLogQueue) else { throw ValidationError("--decision-log-queue must be between 1 and 10000000") }
        for (flag, value) in [("--jwks-refresh-interval", jwksRefreshInterval), ("--jwks-retry-interval", jwksRetryInterval),
                              ("--jwks-min-refresh-interval", jwksMinRefreshInterval)] where !(value >= 0.1 && value.isFinite) {
            throw ValidationError("\(flag) must be at least 0.1 seconds")
        }
    }

    func run() throws {
        // Before any thread exists, so that every thread inherits the mask and only the main thread
        // receives SIGINT/SIGTERM/SIGHUP (through sigtimedwait).
        Service.blockSignals()

        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "meshauthz")

        let (host, port) = try parseListen(listen)
        var config = ServeConfiguration(
            policyDirectory: policyOptions.policies, host: host, port: port, mesh: policyOptions.mesh,
            reading: RequestReading(convention: gateway, namespace: defaultNamespace,
                                    labels: defaultWorkload.flatMap(parseWorkloadLabels),
                                    pathNormalization: normalization.pathNormalization,
                                    hostRouting: try hostRouting(logger)),
            engine: engine,
            reloadInterval: reloadInterval, logDecisions: logDecisions, threads: threads,
            connectionTimeoutSeconds: connectionTimeout, maxBodyBytes: maxBodyBytes,
            maxHeaderBytes: maxHeaderBytes, headerTimeoutSeconds: headerTimeout, maxConnections: maxConnections,
            maxConnectionsPerIP: maxConnectionsPerIp,
            trust: try forwardedTrust(),
            tls: tlsCert.flatMap { cert in
                tlsKey.flatMap { key in clientCa.map { TLSFiles(certificate: cert, key: key, clientCA: $0) } }
            },
            probeListener: try healthListen.map { try parseListen($0) })
        config.allowEmpty = loadOptions.allowEmpty
        config.decisionLog = decisionLog
        config.decisionLogFile = decisionLogFile
        config.decisionLogQueueLines = decisionLogQueue
        config.explain = !noExplain
        config.reloadSettle = reloadSettle
        config.limits = loadOptions.limits
        var jwks = JWKSFetcher.Settings(caFile: jwksCa)
        jwks.refreshInterval = jwksRefreshInterval
        jwks.retryInterval = jwksRetryInterval
        jwks.minRefreshInterval = jwksMinRefreshInterval
        config.jwks = jwks
        let code = Service.run(config, logger: logger)
        if code != 0 { throw ExitCode(code) }
    }
}

extension Serve {
    func forwardedTrust() throws -> ForwardedTrust {
        switch ForwardedTrust.parseNetworks(trustXfccFrom) {
        case .failure(let bad):
            throw ValidationError("--trust-xfcc-from: \"\(bad.text)\" is not an IP address or CIDR block")
        case .success(let networks):
            return ForwardedTrust(networks: trustXfccFrom.isEmpty ? ForwardedTrust.loopback : networks,
                                  identities: Set(trustXfccIdentity))
        }
    }
}

/// `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (all IPv4 interfaces).
func parseListen(_ text: String) throws -> (host: String, port: UInt16) {
    let host: Substring
    let portText: Substring
    if text.hasPrefix("[") {
        guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
            throw ValidationError("--listen must be HOST:PORT or [IPv6]:PORT, not \"\(text)\"")
        }
        host = text[text.index(after: text.startIndex)..<close]
        portText = text[text.index(close, offsetBy: 2)...]
    } else {
        guard let colon = text.lastIndex(of: ":") else {
            throw ValidationError("--listen must be HOST:PORT, not \"\(text)\"")
        }
        host = text[..<colon]
        portText = text[text.index(after: colon)...]
    }
    guard let port = UInt16(portText) else {
        throw ValidationError("--listen: \"\(portText)\" is not a port number (0-65535; 0 picks a free one)")
    }
    return (host.isEmpty ? "0.0.0.0" : String(host), port)
}

extension Serve {
    /// `--workloads`: the manifests' Services as hosts; unreadable or invalid manifests stop the start (a
    /// destination guessed from half the manifests would be a wrong one). Read again when they change.
    func hostRouting(_ logger: Logger) throws -> WorkloadRoutes? {
        guard !workloads.isEmpty else { return nil }
        do {
            let routes = try WorkloadRoutes(paths: workloads, limits: loadOptions.limits)
            routes.read { logger.info("host routing: \($0.serviceCount) Services from --workloads") }
            return routes
        } catch {
            throw ValidationError("--workloads: \(error.description)")
        }
    }
}
