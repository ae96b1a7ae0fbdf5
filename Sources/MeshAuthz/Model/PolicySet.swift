/// Everything loaded from one policy directory, validated, ready to evaluate or compile.
public struct PolicySet: Sendable {
    public var authorizationPolicies: [AuthorizationPolicy]
    public var peerAuthentications: [PeerAuthentication]
    /// End-user token validation (JWT), applied before authorization.
    public var requestAuthentications: [RequestAuthentication]
    /// Resources of other kinds (DestinationRule, ...): kept for analysis, never used in decisions.
    public var otherResources: [OtherResource]
    public var options: MeshOptions

    public init(authorizationPolicies: [AuthorizationPolicy] = [], peerAuthentications: [PeerAuthentication] = [],
                requestAuthentications: [RequestAuthentication] = [],
                otherResources: [OtherResource] = [], options: MeshOptions = MeshOptions()) {
        self.authorizationPolicies = authorizationPolicies
        self.peerAuthentications = peerAuthentications
        self.requestAuthentications = requestAuthentications
        self.otherResources = otherResources
        self.options = options
    }

    /// How many other resources of each kind, sorted by kind: what `validate`, `/readyz` and
    /// `meshauthz_other_resources` report, so that a kind meshauthz ignores is seen, not guessed.
    public var otherResourceCounts: [(kind: String, count: Int)] {
        Dictionary(grouping: otherResources, by: \.kind).map { ($0.key, $0.value.count) }
            .sorted { $0.kind.utf8.lexicographicallyPrecedes($1.kind.utf8) }
    }
}

/// Mesh-wide settings that change how policies read (istiod's meshConfig).
public struct MeshOptions: Sendable, Hashable {
    public var rootNamespace: String
    public var trustDomain: String

    public init(rootNamespace: String = "istio-system", trustDomain: String = "cluster.local") {
        self.rootNamespace = rootNamespace
        self.trustDomain = trustDomain
    }
}

public struct OtherResource: Sendable, Hashable {
    public var apiVersion: String
    public var kind: String
    public var id: ResourceID
    public var location: SourceLocation

    public init(apiVersion: String, kind: String, id: ResourceID, location: SourceLocation) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.id = id
        self.location = location
    }
}
