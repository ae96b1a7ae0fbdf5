/// Why the server refuses a request before the handler sees it. The connection is always closed after
/// the refusal's response: after a framing error nothing on it can be trusted to start a new request.
public enum HTTPRefusal: Sendable, Equatable, CustomStringConvertible {
    /// Request line and headers together are larger than ``HTTPServerConfiguration/maxHeaderBytes``.
    case headersTooLarge(limit: Int)
    /// The body is (or declares itself) larger than ``HTTPServerConfiguration/maxBodyBytes``.
    case bodyTooLarge(limit: Int)
    /// The message framing is ambiguous or invalid (RFC 9112 section 6): see ``FramingProblem``.
    case badFraming(FramingProblem)

    /// The status a plain HTTP API answers with (431, 413 or 400); a gateway-facing endpoint may answer
    /// differently (``HTTPServerConfiguration/refusal``).
    public var defaultStatus: Int {
        switch self {
        case .headersTooLarge: return 431
        case .bodyTooLarge: return 413
        case .badFraming: return 400
        }
    }

    public var description: String {
        switch self {
        case .headersTooLarge(let limit): return "request headers larger than \(limit) bytes"
        case .bodyTooLarge(let limit): return "request body larger than \(limit) bytes"
        case .badFraming(let problem): return problem.description
        }
    }

    /// The answer when no ``HTTPServerConfiguration/refusal`` hook is set: the default status, plain text.
    public var defaultResponse: HTTPResponse {
        .text("\(description)\n", status: defaultStatus)
    }
}

/// Framings RFC 9112 tells a server to reject (each one a request-smuggling vector when a proxy in
/// front reads the message differently).
public enum FramingProblem: Sendable, Equatable, CustomStringConvertible {
    /// Several Content-Length values that differ (identical duplicates are accepted, RFC 9110 8.6).
    case conflictingContentLength
    /// A Content-Length that is not a decimal number.
    case invalidContentLength
    /// Content-Length and Transfer-Encoding together (RFC 9112 6.3: the server must close afterwards).
    case contentLengthWithTransferEncoding
    /// A Transfer-Encoding other than exactly one `chunked` (RFC 9112 6.1: unknown codings are refused).
    case unsupportedTransferEncoding
    /// More than one Host field (RFC 9112 3.2: 400).
    case duplicateHost

    public var description: String {
        switch self {
        case .conflictingContentLength: return "conflicting Content-Length values"
        case .invalidContentLength: return "invalid Content-Length"
        case .contentLengthWithTransferEncoding: return "Content-Length together with Transfer-Encoding"
        case .unsupportedTransferEncoding: return "unsupported Transfer-Encoding (only chunked is accepted)"
        case .duplicateHost: return "more than one Host header"
        }
    }
}
