import MeshAuthz
import MicroHTTPD

/// Verified tokens of one policy set (keys included), by token text: a user's repeated requests skip the
/// signature check (RSA verification is the costly part). Bounded; an entry is dropped once its `exp` has
/// passed (plus the 60 s skew), and when the cache is full the oldest entries go first. A new policy set or
/// a changed remote key set starts a new cache, so a removed key never vouches for a cached token.
public final class TokenCache: VerifiedTokenCache, Sendable {
    struct Entry {
        let jwt: JWT
        let dropAfter: Int64
        let sequence: UInt64
    }

    struct State {
        var entries: [TokenKey: Entry] = [:]
        var sequence: UInt64 = 0
        /// Whole gateway authentications (destination and token-bearing fields → result), see `result(for:)`.
        var results: [TokenKey: AuthenticationResult] = [:]
    }

    private let state = Locked(State())
    public let capacity: Int
    private let clock: @Sendable () -> Int64

    public init(capacity: Int = 10_000, clock: @escaping @Sendable () -> Int64 = { Int64(WallTime.now().seconds) }) {
        self.capacity = max(1, capacity)
        self.clock = clock
    }

    public func lookup(token: String) -> JWT? {
        let now = clock()
        let key = TokenKey(token)
        return state.withLock { state -> JWT? in
            guard let entry = state.entries[key] else { return nil }
            if now > entry.dropAfter {
                state.entries[key] = nil
                return nil
            }
            return entry.jwt
        }
    }

    public func insert(token: String, _ jwt: JWT) {
        let now = clock()
        // No `exp`: kept for an hour at most (Envoy's jwt_cache keeps such tokens too, bounded by size).
        let dropAfter = jwt.expires != 0 ? jwt.expires + 60 : now + 3600
        guard dropAfter >= now else { return }
        let key = TokenKey(token)
        state.withLock { state in
            if state.entries.count >= capacity && state.entries[key] == nil {
                // Expired entries first; then the oldest tenth, so eviction is not paid on every insert.
                state.entries = state.entries.filter { $0.value.dropAfter >= now }
                if state.entries.count >= capacity {
                    let oldest = state.entries.sorted { $0.value.sequence < $1.value.sequence }.prefix(max(1, capacity / 10))
                    for (key, _) in oldest { state.entries[key] = nil }
                }
            }
            state.sequence += 1
            state.entries[key] = Entry(jwt: jwt, dropAfter: dropAfter, sequence: state.sequence)
        }
    }

    public var count: Int { state.withLock { $0.entries.count } }

    public func clear() {
        state.withLock {
            $0.entries.removeAll()
            $0.results.removeAll()
        }
    }

    /// A gateway request's earlier authentication, when everything it read is the same (`key`) and the tokens
    /// are still inside their validity window: a user's repeated requests skip extraction and checks too.
    public func result(for key: TokenKey, now: Int64) -> AuthenticationResult? {
        state.withLock { state -> AuthenticationResult? in
            guard let result = state.results[key] else { return nil }
            guard now >= result.validFrom && now <= result.validUntil else {
                state.results[key] = nil
                return nil
            }
            return result
        }
    }

    public func keep(_ result: AuthenticationResult, for key: TokenKey) {
        state.withLock { state in
            // Bounded the simple way: a full table starts over (entries are cheap to make again).
            if state.results.count >= capacity { state.results.removeAll(keepingCapacity: true) }
            state.results[key] = result
        }
    }
}
