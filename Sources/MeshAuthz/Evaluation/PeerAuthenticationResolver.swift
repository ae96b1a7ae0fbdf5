/// The effective mTLS mode of a workload port (§13): mesh, then namespace, then workload level,
/// each non-UNSET mode overriding the one before, then the workload policy's port-level mode.
public struct PeerAuthenticationResolver: Sendable {
    public struct Resolution: Sendable, Hashable {
        public let mode: MTLSMode
        /// The PeerAuthentication whose mode won, nil for the PERMISSIVE default.
        public let decidedBy: ResourceID?
    }

    let policies: [PeerAuthentication]
    let rootNamespace: String

    public init(_ set: PolicySet) {
        self.policies = set.peerAuthentications
        self.rootNamespace = set.options.rootNamespace
    }

    public func mode(for workload: CheckRequest.Workload) -> Resolution {
        // Files carry no creation time; the loader sorts by name, so "oldest" is "first by name".
        let mesh = policies.first { $0.id.namespace == rootNamespace && $0.isNamespaceWide }
        let namespace = workload.namespace.flatMap { ns in
            policies.first { $0.id.namespace == ns && $0.isNamespaceWide }
        }
        let workloadLevel = workload.namespace.flatMap { ns in
            policies.first { peer in
                peer.id.namespace == ns && !peer.isNamespaceWide
                    && peer.selector!.allSatisfy { workload.labels[$0.key]?.bytesEqual($0.value) ?? false }
            }
        }
        var resolution = Resolution(mode: .permissive, decidedBy: nil)
        for level in [mesh, namespace, workloadLevel] {
            if let level, level.mode != .unset { resolution = Resolution(mode: level.mode, decidedBy: level.id) }
        }
        if let workloadLevel, let port = workload.port, let portMode = workloadLevel.portLevel[port], portMode != .unset {
            resolution = Resolution(mode: portMode, decidedBy: workloadLevel.id)
        }
        return resolution
    }
}
