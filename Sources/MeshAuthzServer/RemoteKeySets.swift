import MeshAuthz
import MicroHTTPD

/// Key sets fetched from `jwksUri`s, by URI: what the authenticator is given for a rule with remote keys.
/// A URI whose keys never loaded has none here, so its tokens fail (istiod's placeholder key), and
/// `status` says so for `/readyz` and the metrics.
public final class RemoteKeySets: Sendable {
    public struct Status: Sendable {
        public var keys: JWKS?
        public var lastError: String?
        public var fetchedAt: Int64?
    }

    private let table = Locked<[String: Status]>([:])

    public init() {}

    public func keys(for uri: String) -> JWKS? { table.withLock { $0[uri]?.keys } }

    public func update(_ uri: String, _ change: (inout Status) -> Void) {
        table.withLock { table in
            var status = table[uri] ?? Status()
            change(&status)
            table[uri] = status
        }
    }

    public var snapshot: [String: Status] { table.withLock { $0 } }
}
