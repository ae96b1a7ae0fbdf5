import Dispatch
import Logging
import MeshAuthz
import MicroHTTPD
import Synchronization

/// Keeps the key sets of every `jwksUri` in the policy set in force: fetched at start (before the server
/// listens), when a reload brings a new URI, every `refreshInterval`, sooner after a failure
/// (`retryInterval`), and when a request's token names a key the set lacks (at most once per
/// `minRefreshInterval` per URI, so tokens with made-up `kid`s cannot make meshauthz hammer the issuer).
/// A failed fetch keeps the keys it had; a URI whose keys never loaded fails its issuer's tokens (istiod's
/// placeholder key), and `/readyz` and the metrics name it.
public final class JWKSFetcher: Sendable {
    public struct Settings: Sendable {
        public var caFile: String?
        public var refreshInterval: Double = 1200
        public var retryInterval: Double = 5
        public var minRefreshInterval: Double = 30
        public init(caFile: String? = nil) { self.caFile = caFile }
    }

    struct Schedule {
        var lastAttempt: [String: Int64] = [:]
        var nextDue: [String: Int64] = [:]
        var requested: Set<String> = []
    }

    let keySets: RemoteKeySets
    let store: PolicyStore
    let metrics: Metrics
    let settings: Settings
    let logger: Logger
    private let schedule = Locked(Schedule())
    private let wake = DispatchSemaphore(value: 0)
    private let stopped = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)

    public init(keySets: RemoteKeySets, store: PolicyStore, metrics: Metrics, settings: Settings, logger: Logger) {
        self.keySets = keySets
        self.store = store
        self.metrics = metrics
        self.settings = settings
        self.logger = logger
    }

    /// What to fetch for a key set: a `jwksUri`, or an issuer's OpenID configuration that names one.
    struct Source: Equatable {
        var timeout: Double
        var discovery: Bool
    }

    /// The `jwksUri`s (and OpenID configurations) of the set in force, with the shortest `timeout` of the
    /// rules naming each.
    func remoteURIs() -> [String: Source] {
        var uris: [String: Source] = [:]
        for ra in store.current.loaded?.policySet.requestAuthentications ?? [] {
            for rule in ra.jwtRules {
                guard let uri = rule.remoteURI else { continue }
                uris[uri] = Source(timeout: min(uris[uri]?.timeout ?? rule.timeoutSeconds, rule.timeoutSeconds),
                                   discovery: rule.discoversKeys)
            }
        }
        return uris
    }

    /// Fetches every URI that is due (never tried, its interval passed, or asked for); returns how many.
    @discardableResult
    public func fetchDue(now: Int64 = monotonicMilliseconds()) -> Int {
        let uris = remoteURIs()
        let due: [String] = schedule.withLock { s in
            let wanted = uris.keys.filter { uri in
                s.requested.contains(uri) || (s.nextDue[uri].map { now >= $0 } ?? true)
            }
            for uri in wanted { s.requested.remove(uri) }
            return wanted.sorted()
        }
        for uri in due {
            let source = uris[uri] ?? Source(timeout: 5, discovery: false)
            fetch(uri, timeout: source.timeout, discovery: source.discovery)
        }
        return due.count
    }

    /// GET `uri`'s body.
    private func get(_ uri: String, timeout: Double) -> Result<[UInt8], HTTPFetch.Failure> {
        guard let url = HTTPFetch.URL(uri) else { return .failure(HTTPFetch.Failure("\(uri) is not an http(s) URL")) }
        return HTTPFetch.get(url, caFile: settings.caFile, timeoutSeconds: timeout)
    }

    /// `discovery`: `uri` is an OpenID configuration; its `jwks_uri` is fetched in turn, as istiod does (a
    /// configuration without a `jwks_uri` string fails like a key set that does not load).
    func fetch(_ uri: String, timeout: Double, discovery: Bool = false) {
        let started = monotonicMilliseconds()
        schedule.withLock { $0.lastAttempt[uri] = started }
        var keySetURI = uri
        var outcome: Result<JWKS, HTTPFetch.Failure> = .failure(HTTPFetch.Failure("not fetched"))
        if discovery {
            switch get(uri, timeout: timeout).flatMap(Self.jwksURI(fromConfiguration:)) {
            case .success(let named): keySetURI = named
            case .failure(let failure): outcome = .failure(HTTPFetch.Failure("OpenID configuration: \(failure.description)"))
            }
        }
        if !discovery || keySetURI != uri {
            outcome = get(keySetURI, timeout: timeout).flatMap { body in
                JWKS.parse(String(decoding: body, as: UTF8.self)).mapError { HTTPFetch.Failure("bad key set: \($0.message)") }
            }
        }
        let finished = monotonicMilliseconds()
        switch outcome {
        case .success(let set):
            keySets.update(uri) { status in
                status.keys = set
                status.lastError = nil
                status.fetchedAt = Int64(WallTime.now().seconds)
            }
            // A token verified with a key that is gone must be verified again.
            store.current.loaded?.tokenCache.clear()
            metrics.recordJWKSFetch(success: true)
            schedule.withLock { $0.nextDue[uri] = finished + Int64(settings.refreshInterval * 1000) }
            logger.info("jwks: \(set.keys.count) key(s) from \(keySetURI)\(discovery ? " (named by \(uri))" : "")")
        case .failure(let failure):
            let message = failure.description
            keySets.update(uri) { $0.lastError = message }
            metrics.recordJWKSFetch(success: false)
            schedule.withLock { $0.nextDue[uri] = finished + Int64(settings.retryInterval * 1000) }
            logger.warning("jwks: fetching \(uri) failed: \(message); \(keySets.keys(for: uri) == nil ? "its issuer's tokens fail until it loads" : "the keys fetched before stay in use")")
        }
    }

    /// The `jwks_uri` member of an OpenID configuration document.
    static func jwksURI(fromConfiguration body: [UInt8]) -> Result<String, HTTPFetch.Failure> {
        guard case .object(let members)? = try? JSONParser.parse(body) else {
            return .failure(HTTPFetch.Failure("not a JSON object"))
        }
        guard case .string(let uri)? = members["jwks_uri"] else {
            return .failure(HTTPFetch.Failure("no jwks_uri string in it"))
        }
        return .success(uri)
    }

    /// A request's token named a key this URI's set lacks: fetch again soon, unless it was fetched moments ago.
    public func refreshSoon(_ uri: String) {
        let now = monotonicMilliseconds()
        let asked = schedule.withLock { s -> Bool in
            if let last = s.lastAttempt[uri], now - last < Int64(settings.minRefreshInterval * 1000) { return false }
            guard !s.requested.contains(uri) else { return false }
            s.requested.insert(uri)
            s.lastAttempt[uri] = now
            return true
        }
        if asked { wake.signal() }
    }

    /// Runs the fetch loop on its own thread until `stop()`.
    public func start() {
        let thread = DispatchQueue(label: "meshauthz.jwks")
        thread.async { [self] in
            while !stopped.load(ordering: .acquiring) {
                fetchDue()
                // Woken early by `refreshSoon`; otherwise a short nap, so a reload's new URI is fetched promptly.
                _ = wake.wait(timeout: .now() + .milliseconds(500))
            }
            done.signal()
        }
    }

    public func stop() {
        stopped.store(true, ordering: .releasing)
        wake.signal()
        _ = done.wait(timeout: .now() + .seconds(10))
    }
}

public func monotonicMilliseconds() -> Int64 { Int64(monotonicNanoseconds() / 1_000_000) }
