import CMicroHTTPD
import Synchronization

/// Responses built once and queued many times. A libmicrohttpd response is reference counted and may be
/// queued on any number of connections at once, so an answer that depends only on, say, which rule
/// decided is built (headers copied, body copied) the first time and then only queued: no allocation
/// on later requests.
///
/// Slots are filled lazily and at most once (a thread that loses the race to fill one frees its copy);
/// reading a filled slot is one atomic load. At most `maxEntries` slots are ever filled (about a KiB each),
/// so memory stays bounded however many slots there are; past that, answers are built per request. The
/// responses are released when the cache is: a response still queued on a connection lives on until
/// libmicrohttpd has sent it.
public final class ResponseCache: @unchecked Sendable {
    public let capacity: Int
    public let maxEntries: Int
    private let filled = Atomic<Int>(0)
    // Written only through the atomic fill below; the status is written before its slot is published.
    private let slots: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    private let statuses: UnsafeMutablePointer<UInt16>

    public init(capacity: Int, maxEntries: Int = 16_384) {
        self.capacity = max(capacity, 0)
        self.maxEntries = maxEntries
        slots = .allocate(capacity: max(capacity, 1))
        slots.initialize(repeating: nil, count: max(capacity, 1))
        statuses = .allocate(capacity: max(capacity, 1))
        statuses.initialize(repeating: 0, count: max(capacity, 1))
    }

    deinit {
        for i in 0..<capacity {
            if let response = slots[i] { MHD_destroy_response(OpaquePointer(response)) }
        }
        slots.deallocate()
        statuses.deallocate()
    }

    /// The response of `slot` (0 ..< capacity), built from `make()` the first time. Its `headers` and
    /// `body` read empty: they live in libmicrohttpd's response.
    public func response(_ slot: Int, _ make: () -> HTTPResponse) -> HTTPResponse {
        precondition(slot >= 0 && slot < capacity, "response cache slot out of range")
        if let ready = mhz_atomic_load(slots + slot) {
            return HTTPResponse(status: Int(statuses[slot]), prepared: Prepared(cache: self, response: OpaquePointer(ready)))
        }
        let response = make()
        // Reserve an entry first; a full cache (or a lost race, below) gives the entry back.
        guard filled.add(1, ordering: .relaxed).newValue <= maxEntries else {
            filled.subtract(1, ordering: .relaxed)
            return response
        }
        guard let built = createResponse(response, closing: false) else {
            filled.subtract(1, ordering: .relaxed)
            return response
        }
        // Two threads may write the same status here; only the first pointer is kept.
        statuses[slot] = UInt16(clampedStatus(response.status))
        let kept = mhz_atomic_fill(slots + slot, UnsafeMutableRawPointer(built))!
        if kept != UnsafeMutableRawPointer(built) {
            MHD_destroy_response(built)
            filled.subtract(1, ordering: .relaxed)
        }
        return HTTPResponse(status: response.status, prepared: Prepared(cache: self, response: OpaquePointer(kept)))
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
