/// A complete response: status, headers and body. libmicrohttpd adds `Content-Length` (and `Date`);
/// headers it refuses (e.g. a manual `Content-Length`, or values containing CR/LF) are dropped.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]
    /// A response already built in libmicrohttpd (`ResponseCache`): queued as is.
    var prepared: ResponseCache.Prepared?

    public init(status: Int = 200, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    init(status: Int, prepared: ResponseCache.Prepared) {
        self.status = status
        self.headers = []
        self.body = []
        self.prepared = prepared
    }

    /// Whether this response comes from a `ResponseCache` (its headers and body then read empty).
    public var isPrepared: Bool { prepared != nil }

    public init(status: Int, headers: [(String, String)] = [], body: String) {
        self.init(status: status, headers: headers, body: Array(body.utf8))
    }

    /// `text/plain; charset=utf-8`.
    public static func text(_ text: String, status: Int = 200, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: withContentType("text/plain; charset=utf-8", headers), body: text)
    }

    /// `application/json` from already-encoded JSON text.
    public static func json(_ json: String, status: Int = 200, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: withContentType("application/json", headers), body: json)
    }

    /// `application/json` from already-encoded JSON bytes.
    public static func json(bytes: [UInt8], status: Int = 200, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: withContentType("application/json", headers), body: bytes)
    }

    /// First value of a header, by case-insensitive name.
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.0.lowercased() == lower }?.1
    }

    private static func withContentType(_ type: String, _ headers: [(String, String)]) -> [(String, String)] {
        if headers.isEmpty { return [("Content-Type", type)] }
        var all: [(String, String)] = [("Content-Type", type)]
        all.append(contentsOf: headers)
        return all
    }
}
