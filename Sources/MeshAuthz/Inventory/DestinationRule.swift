/// `networking.istio.io` DestinationRule, the part that decides how a client's sidecar connects: the TLS
/// mode towards a host (per port too). A client sending plaintext (`DISABLE`) or its own TLS (`SIMPLE`)
/// to a workload that requires Istio mTLS (STRICT) has its connections reset.
public struct DestinationRule: Sendable, Hashable {
    /// `trafficPolicy.tls.mode`.
    public enum TLSMode: String, Sendable, Hashable, CaseIterable {
        case disable = "DISABLE"
        case simple = "SIMPLE"
        case mutual = "MUTUAL"
        case istioMutual = "ISTIO_MUTUAL"
    }

    /// One TLS setting and where it was written: the whole host, one port, or a subset.
    public struct TLSSetting: Sendable, Hashable {
        public var mode: TLSMode
        /// nil: every port of the host.
        public var port: Int?
        /// The subset it belongs to, if any.
        public var subset: String?
        /// The `mode` value's position.
        public var location: SourceLocation
        /// The field path, e.g. `spec.trafficPolicy.portLevelSettings[0].tls.mode`.
        public var field: String

        public init(mode: TLSMode, port: Int? = nil, subset: String? = nil, location: SourceLocation, field: String) {
            self.mode = mode
            self.port = port
            self.subset = subset
            self.location = location
            self.field = field
        }
    }

    public var id: ResourceID
    /// `spec.host` as written: a short name, `name.ns`, an FQDN, or a `*.` wildcard.
    public var host: String
    public var hostLocation: SourceLocation
    public var tls: [TLSSetting]
    public var location: SourceLocation

    public init(id: ResourceID, host: String, hostLocation: SourceLocation, tls: [TLSSetting] = [],
                location: SourceLocation) {
        self.id = id
        self.host = host
        self.hostLocation = hostLocation
        self.tls = tls
        self.location = location
    }
}
