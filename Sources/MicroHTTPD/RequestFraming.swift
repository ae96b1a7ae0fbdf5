internal import CMicroHTTPD

/// The framing checks libmicrohttpd 0.9.75 does not make: it accepts conflicting Content-Length fields
/// (using the first), keeps a request with both Content-Length and Transfer-Encoding, and lets a later
/// Host field win. Each of those lets a proxy in front and this server disagree on where a request ends
/// or whom it is for, so they are refused (RFC 9112 sections 3.2, 6.1 and 6.3).
enum RequestFraming {
    enum Verdict: Equatable {
        /// Acceptable framing; the declared body length, if any.
        case acceptable(contentLength: Int?)
        case refused(FramingProblem)
    }

    /// Runs once per request, when the headers are complete (before any body byte is handed over).
    static func check(_ connection: OpaquePointer) -> Verdict {
        var scan = Scan()
        withUnsafeMutablePointer(to: &scan) { pointer in
            _ = MHD_get_connection_values_n(connection, MHD_ValueKind.HEADER_KIND, { cls, _, key, keyLength, value, valueLength in
                guard let cls, let key else { return MHD_Result.YES }
                let scan = cls.assumingMemoryBound(to: Scan.self)
                let name = UnsafeRawBufferPointer(start: key, count: keyLength)
                let text = UnsafeRawBufferPointer(start: value, count: value == nil ? 0 : valueLength)
                scan.pointee.add(name: name, value: text)
                return MHD_Result.YES
            }, pointer)
        }
        return scan.verdict
    }

    /// What the header fields say about framing, accumulated field by field.
    struct Scan {
        var hosts = 0
        var transferEncodings = 0
        var chunkedOnly = true
        var contentLength: Int?
        var problem: FramingProblem?

        mutating func add(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
            // By length first: this runs for every header of every request.
            switch name.count {
            case 4 where equalsIgnoringCase(name, "host"):
                hosts += 1
            case 17 where equalsIgnoringCase(name, "transfer-encoding"):
                transferEncodings += 1
                if !equalsIgnoringCase(trimmed(value), "chunked") { chunkedOnly = false }
            case 14 where equalsIgnoringCase(name, "content-length"):
                addContentLength(value)
            default:
                break  // not a framing header
            }
        }

        /// A field value may itself be a list (`5, 5`); every element must be the same number.
        mutating func addContentLength(_ value: UnsafeRawBufferPointer) {
            var start = value.startIndex
            repeat {
                let end = value[start...].firstIndex(of: UInt8(ascii: ",")) ?? value.endIndex
                guard let length = decimal(trimmed(UnsafeRawBufferPointer(rebasing: value[start..<end]))) else {
                    record(.invalidContentLength)
                    return
                }
                if let previous = contentLength, previous != length { record(.conflictingContentLength) }
                contentLength = length
                start = end == value.endIndex ? end : end + 1
            } while start < value.endIndex
        }

        mutating func record(_ found: FramingProblem) {
            if problem == nil { problem = found }
        }

        var verdict: Verdict {
            if let problem { return .refused(problem) }
            if hosts > 1 { return .refused(.duplicateHost) }
            if transferEncodings > 0 {
                if contentLength != nil { return .refused(.contentLengthWithTransferEncoding) }
                if transferEncodings > 1 || !chunkedOnly { return .refused(.unsupportedTransferEncoding) }
            }
            return .acceptable(contentLength: contentLength)
        }
    }

    /// Digits only (after trimming); more than 15 digits reads as `Int.max` (certainly too large).
    static func decimal(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard !bytes.isEmpty else { return nil }
        var value = 0
        for byte in bytes {
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            value = value > 99_999_999_999_999 ? Int.max : value * 10 + Int(byte - 0x30)
        }
        return value
    }

    /// Without leading and trailing spaces and tabs (optional whitespace, RFC 9110 5.6.3).
    static func trimmed(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var lower = bytes.startIndex
        var upper = bytes.endIndex
        while lower < upper, bytes[lower] == 0x20 || bytes[lower] == 0x09 { lower += 1 }
        while upper > lower, bytes[upper - 1] == 0x20 || bytes[upper - 1] == 0x09 { upper -= 1 }
        return UnsafeRawBufferPointer(rebasing: bytes[lower..<upper])
    }

    /// ASCII case-insensitive comparison with a lowercase literal.
    static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = UnsafeRawBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        for i in 0..<bytes.count {
            var byte = bytes[bytes.startIndex + i]
            if byte >= 0x41 && byte <= 0x5A { byte |= 0x20 }
            if byte != expected[i] { return false }
        }
        return true
    }
}
