internal import CMicroHTTPD
import Synchronization

/// Responses built once and queued many times. A libmicrohttpd response is reference counted and may be
/// queued on any number of connections at once, so an answer that depends only on, say, which rule
/// decided is built (headers copied, body copied) the first time and then only queued: no allocation
/// on later requests.
///
/// Slots are filled lazily and at most once: the first thread to find a slot empty claims it, writes its
/// status, then publishes the response with a release store; a thread that finds the slot claimed but not yet
/// published answers with a response of its own, uncached. Reading a filled slot is one acquire load (which
/// makes the status written before the publication visible) and one plain load. At most `maxEntries` slots
/// are ever filled (about a KiB each), so memory stays bounded however many slots there are; past that,
/// answers are built per request. The responses are released when the cache is: a response still queued on
/// a connection lives on until libmicrohttpd has sent it.
public final class ResponseCache: @unchecked Sendable {
    public let capacity: Int
    public let maxEntries: Int
    private let filled = Atomic<Int>(0)
    /// Per slot: `empty`, `claimed`, or the address of the libmicrohttpd response (never 0 or 1).
    private let slots: UnsafeMutablePointer<Atomic<UInt>>
    /// Written once, by the thread holding the claim, before its slot is published; read only after an
    /// acquire load saw the slot published. Never written twice, so it needs no atomic of its own.
    private let statuses: UnsafeMutablePointer<UInt16>

    private static let empty: UInt = 0
    private static let claimed: UInt = 1

    public init(capacity: Int, maxEntries: Int = 16_384) {
        self.capacity = max(capacity, 0)
        self.maxEntries = maxEntries
        slots = .allocate(capacity: max(capacity, 1))
        for i in 0..<max(capacity, 1) { (slots + i).initialize(to: Atomic(Self.empty)) }
        statuses = .allocate(capacity: max(capacity, 1))
        statuses.initialize(repeating: 0, count: max(capacity, 1))
    }

    deinit {
        for i in 0..<capacity {
            let word = slots[i].load(ordering: .acquiring)
            if word > Self.claimed { MHD_destroy_response(OpaquePointer(bitPattern: word)) }
        }
        slots.deinitialize(count: max(capacity, 1))
        slots.deallocate()
        statuses.deallocate()
    }

    /// The response of `slot` (0 ..< capacity), built from `make()` the first time. Its `headers` and
    /// `body` read empty: they live in libmicrohttpd's response.
    public func response(_ slot: Int, _ make: () -> HTTPResponse) -> HTTPResponse {
        precondition(slot >= 0 && slot < capacity, "response cache slot out of range")
        let word = slots[slot].load(ordering: .acquiring)
        if word > Self.claimed, let ready = OpaquePointer(bitPattern: word) {
            return HTTPResponse(status: Int(statuses[slot]), prepared: Prepared(cache: self, response: ready))
        }
        let response = make()
        // Being filled by another thread right now: answer without the cache this once.
        guard word == Self.empty,
              slots[slot].compareExchange(expected: Self.empty, desired: Self.claimed, ordering: .relaxed).exchanged
        else { return response }
        // Reserve an entry; a full cache (or libmicrohttpd refusing the response) gives the claim back.
        guard filled.add(1, ordering: .relaxed).newValue <= maxEntries else {
            filled.subtract(1, ordering: .relaxed)
            slots[slot].store(Self.empty, ordering: .relaxed)
            return response
        }
        guard let built = createResponse(response, closing: false) else {
            filled.subtract(1, ordering: .relaxed)
            slots[slot].store(Self.empty, ordering: .relaxed)
            return response
        }
        statuses[slot] = UInt16(clampedStatus(response.status))
        // Release: a reader that loads this address also sees the status written above.
        slots[slot].store(UInt(bitPattern: built), ordering: .releasing)
        return HTTPResponse(status: response.status, prepared: Prepared(cache: self, response: built))
    }

    /// How many slots are filled.
    public var count: Int { filled.load(ordering: .relaxed) }

    /// A response of this cache, kept alive (with the cache) until it is queued.
    struct Prepared: @unchecked Sendable {  // a libmicrohttpd response is thread-safe to queue
        let cache: ResponseCache
        let response: OpaquePointer
    }
}

/// A libmicrohttpd response for `response` (the body is copied), nil if libmicrohttpd refuses it.
func createResponse(_ response: HTTPResponse, closing: Bool) -> OpaquePointer? {
    let created: OpaquePointer? = response.body.withUnsafeBytes { bytes in
        if bytes.isEmpty {
            return MHD_create_response_from_buffer(0, nil, MHD_ResponseMemoryMode.RESPMEM_PERSISTENT)
        }
        return MHD_create_response_from_buffer(
            bytes.count, UnsafeMutableRawPointer(mutating: bytes.baseAddress), MHD_ResponseMemoryMode.RESPMEM_MUST_COPY)
    }
    guard let mhdResponse = created else { return nil }
    for (name, value) in response.headers {
        _ = MHD_add_response_header(mhdResponse, name, value)
    }
    if closing {
        _ = MHD_add_response_header(mhdResponse, "Connection", "close")
    }
    return mhdResponse
}

func clampedStatus(_ status: Int) -> UInt32 {
    (100...599).contains(status) ? UInt32(status) : 500
}
