/// A ``ResponseCache`` whose slots are handed out to keys as they are first seen, for answers named by a
/// value rather than a dense number (a decision together with the dry-run and AUDIT rules it reports). At
/// most `capacity` keys get a slot; past that, answers are built per request. Finding a key's slot takes a
/// lock and a hash of the key: cheap next to building an answer, dear next to ``ResponseCache``'s one load,
/// so dense keys belong there.
public final class KeyedResponseCache<Key: Hashable & Sendable>: Sendable {
    private let slots: Locked<[Key: Int]>
    private let cache: ResponseCache

    public init(capacity: Int) {
        slots = Locked([:])
        cache = ResponseCache(capacity: capacity)
    }

    /// The response for `key`, built from `make()` the first time (see ``ResponseCache/response(_:_:)``).
    public func response(_ key: Key, _ make: () -> HTTPResponse) -> HTTPResponse {
        let capacity = cache.capacity
        let slot: Int? = slots.withLock { table in
            if let known = table[key] { return known }
            guard table.count < capacity else { return nil }
            table[key] = table.count
            return table.count - 1
        }
        guard let slot else { return make() }
        return cache.response(slot, make)
    }

    /// How many keys have a slot.
    public var count: Int { slots.withLock { $0.count } }
}
