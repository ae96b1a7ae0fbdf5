/// `security.istio.io` PeerAuthentication.
public struct PeerAuthentication: Sendable, Hashable {
    public var id: ResourceID
    /// nil or empty: namespace-wide (mesh-wide in the root namespace).
    public var selector: [String: String]?
    /// `mtls.mode`; `.unset` inherits from the level above.
    public var mode: MTLSMode
    /// `portLevelMtls`: workload port → mode (`.unset` inherits the workload's mode).
    public var portLevel: [Int: MTLSMode]
    public var location: SourceLocation

    public init(id: ResourceID, selector: [String: String]? = nil, mode: MTLSMode = .unset,
                portLevel: [Int: MTLSMode] = [:],
                location: SourceLocation = SourceLocation(file: "<memory>", line: 1, column: 1)) {
        self.id = id
        self.selector = selector
        self.mode = mode
        self.portLevel = portLevel
        self.location = location
    }

    /// Namespace-wide (or mesh-wide) when there is no selector or it selects everything.
    public var isNamespaceWide: Bool { selector?.isEmpty ?? true }
}

public enum MTLSMode: String, Sendable, Hashable, CaseIterable, BitwiseCopyable {
    case unset = "UNSET"
    case disable = "DISABLE"
    case permissive = "PERMISSIVE"
    case strict = "STRICT"
}
