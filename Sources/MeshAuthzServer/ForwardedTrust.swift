import MeshAuthz

/// Whose forwarded identity `/ext_authz` believes: `x-forwarded-client-cert` (the caller's principal) and
/// `x-authz-source-ip` (the caller's address) are taken from a peer only when it is trusted; from anyone
/// else they are ignored (not an error): the request is judged with no principal and with the TCP peer's
/// address as `source.ip`.
///
/// A peer is trusted when its address is in one of `networks` (`serve --trust-xfcc-from`) and, if
/// `identities` is not empty (`serve --trust-xfcc-identity`), when it also presented, over the mTLS
/// listener, a verified certificate with one of these URI SANs.
///
/// Default: loopback only (`127.0.0.0/8`, `::1/128`), no identity required. A gateway on the same host
/// (the usual sidecar-style deployment, and the tests) works out of the box; anything further must be
/// named. Trusting everyone would let any client that can reach the PDP claim any identity.
public struct ForwardedTrust: Sendable {
    public var networks: [CIDR]
    public var identities: Set<String>

    public static let loopback: [CIDR] = [CIDR("127.0.0.0/8")!, CIDR("::1/128")!]

    public init(networks: [CIDR] = ForwardedTrust.loopback, identities: Set<String> = []) {
        self.networks = networks
        self.identities = identities
    }

    /// Parses `--trust-xfcc-from` (comma-separated CIDRs or addresses); the first bad entry otherwise.
    public static func parseNetworks(_ lists: [String]) -> Result<[CIDR], BadEntry> {
        var networks: [CIDR] = []
        for list in lists {
            for item in list.split(separator: ",") {
                let text = String(item.trimmingSpaces())
                if text.isEmpty { continue }
                guard let cidr = CIDR(text) else { return .failure(BadEntry(text: text)) }
                networks.append(cidr)
            }
        }
        return .success(networks)
    }

    public struct BadEntry: Error, Sendable {
        public let text: String
    }

    /// Whether a peer's forwarded identity is believed. `peerIdentities` is only consulted when
    /// identities are required (it is the costlier input).
    func believes(peerIP: IPAddress?, peerIdentities: () -> [String]) -> Bool {
        guard let peerIP, networks.contains(where: { $0.contains(peerIP) }) else { return false }
        if identities.isEmpty { return true }
        return peerIdentities().contains { identities.contains($0) }
    }
}
