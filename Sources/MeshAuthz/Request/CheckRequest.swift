/// One request to decide, in the shape of `POST /v1/check`: what the sidecar of the destination
/// workload would know about the connection and the HTTP request. Absent fields are absent attributes.
public struct CheckRequest: Sendable, Hashable {
    /// The caller as the destination's proxy sees it.
    public struct Peer: Sendable, Hashable {
        /// The peer certificate's URI SAN, always stored with `spiffe://` (callers may omit it).
        public var principal: String?
        /// Informational only: Istio derives namespaces from the principal, never from this.
        public var namespace: String?
        /// Direct peer address (`ipBlocks`, `source.ip`).
        public var ip: IPAddress?
        /// Original client address (`remoteIpBlocks`, `remote.ip`); absent means "same as `ip`".
        public var remoteIP: IPAddress?
        /// `iss/sub` of a validated JWT.
        public var requestPrincipal: String?
        /// Whether the connection is Istio mTLS; absent means "mTLS exactly when a principal is given".
        public var mtls: Bool?

        public init(principal: String? = nil, namespace: String? = nil, ip: IPAddress? = nil,
                    remoteIP: IPAddress? = nil, requestPrincipal: String? = nil, mtls: Bool? = nil) {
            self.principal = principal.map(Self.withSPIFFEScheme)
            self.namespace = namespace
            self.ip = ip
            self.remoteIP = remoteIP
            self.requestPrincipal = requestPrincipal
            self.mtls = mtls
        }

        public static func withSPIFFEScheme(_ principal: String) -> String {
            principal.utf8.starts(with: "spiffe://".utf8) ? principal : "spiffe://" + principal
        }

        /// The connection is mTLS when the request says so, or, when it is silent, when it names a principal.
        public var isMTLS: Bool { mtls ?? (principal != nil) }

        /// A plaintext connection carries no peer identity, whatever the request claims.
        public var authenticatedPrincipal: String? { isMTLS ? principal : nil }

        public var effectiveRemoteIP: IPAddress? { remoteIP ?? ip }
    }

    /// The workload receiving the request: it decides which policies apply.
    public struct Workload: Sendable, Hashable {
        public var namespace: String?
        public var labels: [String: String]
        public var port: Int?
        public var ip: IPAddress?

        public init(namespace: String? = nil, labels: [String: String] = [:], port: Int? = nil, ip: IPAddress? = nil) {
            self.namespace = namespace
            self.labels = labels
            self.port = port
            self.ip = ip
        }
    }

    public struct HTTP: Sendable, Hashable {
        public var method: String?
        /// The request target as the proxy passes it: path, possibly with `?query` or `#fragment`.
        public var path: String?
        /// `:authority`, possibly with `:port`.
        public var host: String?
        /// Header names lower-cased; values as sent.
        public var headers: [String: String]
        /// The validated JWT's payload, when there is one.
        public var claims: [String: JSONValue]?

        public init(method: String? = nil, path: String? = nil, host: String? = nil,
                    headers: [String: String] = [:], claims: [String: JSONValue]? = nil) {
            self.method = method
            self.path = path
            self.host = host
            // Decoders hand over lower-cased names already; only copy when one is not.
            if headers.keys.contains(where: { $0.utf8.contains { $0 &- 65 < 26 } }) {
                var lowered: [String: String] = [:]
                for (name, value) in headers { lowered[name.lowercased()] = value }
                self.headers = lowered
            } else {
                self.headers = headers
            }
            self.claims = claims
        }
    }

    public struct Connection: Sendable, Hashable {
        public var sni: String?
        public init(sni: String? = nil) { self.sni = sni }
    }

    public var source: Peer
    public var destination: Workload
    public var request: HTTP
    public var connection: Connection

    public init(source: Peer = Peer(), destination: Workload = Workload(), request: HTTP = HTTP(),
                connection: Connection = Connection()) {
        self.source = source
        self.destination = destination
        self.request = request
        self.connection = connection
    }
}

extension CheckRequest.HTTP {
    /// A header as Envoy's header matchers see it: pseudo-headers and `host` come from the request line.
    public func header(named name: String) -> String? {
        switch name {
        case ":authority", "host": return host ?? headers[name]
        case ":method": return method
        case ":path": return path
        default: return headers[name]
        }
    }
}
