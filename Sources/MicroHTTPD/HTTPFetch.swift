internal import CGnuTLS

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One HTTP GET of a small document (a JSON Web Key Set): `https://` verified by GnuTLS against the system's
/// trust store or a given CA file (the server's name checked), `http://` only to a loopback host. HTTP/1.0 with
/// `Connection: close`, so the body ends where the connection does (or at `Content-Length`). Bounded in time
/// (connect, each read and write) and in size. Blocking: run it off the request path.
public enum HTTPFetch {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    public struct URL: Sendable, Hashable {
        public let https: Bool
        public let host: String
        public let port: UInt16
        public let target: String

        /// `scheme://host[:port][/path][?query]`; an IPv6 literal in brackets. Nil for anything else.
        public init?(_ text: String) {
            let rest: Substring
            if text.hasPrefix("https://") { https = true; rest = text.dropFirst(8) }
            else if text.hasPrefix("http://") { https = false; rest = text.dropFirst(7) }
            else { return nil }
            let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
            let authority = rest[..<authorityEnd]
            var path = String(rest[authorityEnd...])
            if path.isEmpty { path = "/" } else if path.first == "?" { path = "/" + path }
            var hostPart = authority
            var portText: Substring?
            if authority.hasPrefix("[") {
                guard let close = authority.firstIndex(of: "]") else { return nil }
                hostPart = authority[authority.index(after: authority.startIndex)..<close]
                let after = authority[authority.index(after: close)...]
                if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty { return nil }
            } else if let colon = authority.lastIndex(of: ":") {
                hostPart = authority[..<colon]
                portText = authority[authority.index(after: colon)...]
            }
            guard !hostPart.isEmpty, !hostPart.contains("@") else { return nil }
            if let portText {
                guard let p = UInt16(portText), p > 0 else { return nil }
                port = p
            } else {
                port = https ? 443 : 80
            }
            host = String(hostPart)
            target = path
        }

        public var isLoopback: Bool {
            host == "localhost" || host == "::1" || host.hasPrefix("127.")
        }
    }

    /// The body of a 200 answer to `GET url`.
    public static func get(_ url: URL, caFile: String?, timeoutSeconds: Double, maxBytes: Int = 1 << 20) -> Result<[UInt8], Failure> {
        if !url.https && !url.isLoopback { return .failure(Failure("plain http is only used for a loopback host")) }
        let fd: Int32
        switch connect(url.host, url.port, timeoutSeconds) {
        case .success(let socket): fd = socket
        case .failure(let failure): return .failure(failure)
        }
        defer { close(fd) }
        let request = "GET \(url.target) HTTP/1.0\r\nHost: \(url.host)\r\nAccept: application/json\r\nUser-Agent: meshauthz\r\nConnection: close\r\n\r\n"
        var response: [UInt8]
        if url.https {
            switch tls(fd, url.host, caFile, Array(request.utf8), timeoutSeconds, maxBytes) {
            case .success(let bytes): response = bytes
            case .failure(let failure): return .failure(failure)
            }
        } else {
            switch plain(fd, Array(request.utf8), maxBytes) {
            case .success(let bytes): response = bytes
            case .failure(let failure): return .failure(failure)
            }
        }
        return parse(&response)
    }

    static func parse(_ response: inout [UInt8]) -> Result<[UInt8], Failure> {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let headEnd = response.indices.first(where: { response[$0...].starts(with: separator) }) else {
            return .failure(Failure("no complete response head"))
        }
        let head = String(decoding: response[..<headEnd], as: UTF8.self)
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let status = lines.first.map { $0.split(separator: " ") } ?? []
        guard status.count >= 2, status[0].hasPrefix("HTTP/") else { return .failure(Failure("not an HTTP response")) }
        guard status[1] == "200" else { return .failure(Failure("HTTP status \(status[1])")) }
        var body = Array(response[(headEnd + 4)...])
        for line in lines.dropFirst() {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let name = parts[0].lowercased()
            let value = parts[1].trimmingCharacters(in: " \t")
            if name == "transfer-encoding" { return .failure(Failure("unexpected Transfer-Encoding \(value) in an HTTP/1.0 answer")) }
            if name == "content-length", let length = Int(value) {
                guard body.count >= length else { return .failure(Failure("body shorter than its Content-Length")) }
                body = Array(body.prefix(length))
            }
        }
        return .success(body)
    }

    private static func connect(_ host: String, _ port: UInt16, _ timeout: Double) -> Result<Int32, Failure> {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else { return .failure(Failure("cannot resolve \(host): \(String(cString: gai_strerror(rc)))")) }
        defer { freeaddrinfo(list) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        var lastError: Int32 = 0
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let ai = entry {
            let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, ai.pointee.ai_protocol)
            if fd >= 0 {
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                // Linux bounds a blocking connect() by the send timeout too.
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                if Glibc.connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 { return .success(fd) }
                lastError = errno
                close(fd)
            }
            entry = ai.pointee.ai_next
        }
        return .failure(Failure("cannot connect to \(host):\(port): \(String(cString: strerror(lastError)))"))
    }

    private static func plain(_ fd: Int32, _ request: [UInt8], _ maxBytes: Int) -> Result<[UInt8], Failure> {
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return .failure(Failure("send: \(String(cString: strerror(errno)))")) }
            sent += n
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return .success(response) }
            if n < 0 { return .failure(Failure("recv: \(String(cString: strerror(errno)))")) }
            response += buffer[..<n]
            if response.count > maxBytes + 16384 { return .failure(Failure("answer larger than \(maxBytes) bytes")) }
        }
    }

    private static func tls(_ fd: Int32, _ host: String, _ caFile: String?, _ request: [UInt8], _ timeout: Double,
                            _ maxBytes: Int) -> Result<[UInt8], Failure> {
        // GnuTLS keeps the name given to gnutls_session_set_verify_cert and reads it during the handshake ("must
        // remain valid for the lifetime of the session"): a C copy, freed after the session (this defer, declared
        // first, runs last). Swift's implicit String-to-pointer bridge lives only for the call, and a handshake
        // that read it afterwards checked the certificate against whatever the memory then held.
        guard let hostName = strdup(host) else { return .failure(Failure("out of memory")) }
        defer { free(hostName) }
        var credentials: gnutls_certificate_credentials_t?
        var session: gnutls_session_t?
        defer {
            if let session { gnutls_deinit(session) }
            if let credentials { gnutls_certificate_free_credentials(credentials) }
        }
        func fail(_ what: String, _ rc: Int32) -> Result<[UInt8], Failure> {
            .failure(Failure("\(what): \(String(cString: gnutls_strerror(rc)))"))
        }
        var rc = gnutls_certificate_allocate_credentials(&credentials)
        if rc < 0 { return fail("tls credentials", rc) }
        rc = caFile.map { gnutls_certificate_set_x509_trust_file(credentials, $0, GNUTLS_X509_FMT_PEM) }
            ?? gnutls_certificate_set_x509_system_trust(credentials)
        if rc <= 0 { return rc == 0 ? .failure(Failure("no trusted CA loaded")) : fail("tls trust", rc) }
        rc = gnutls_init(&session, UInt32(GNUTLS_CLIENT))
        if rc < 0 { return fail("tls init", rc) }
        gnutls_set_default_priority(session)
        gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, UnsafeMutableRawPointer(credentials))
        // SNI (not for an IP literal), and the certificate must name the host (DNS or IP SAN).
        if !host.contains(":") && !host.allSatisfy({ $0.isNumber || $0 == "." }) {
            gnutls_server_name_set(session, GNUTLS_NAME_DNS, host, host.utf8.count)
        }
        gnutls_session_set_verify_cert(session, hostName, 0)
        gnutls_transport_set_int2(session, fd, fd)
        gnutls_handshake_set_timeout(session, UInt32(max(1, timeout * 1000)))
        repeat { rc = gnutls_handshake(session) } while rc < 0 && gnutls_error_is_fatal(rc) == 0
        if rc < 0 {
            if rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR {
                var out = gnutls_datum_t()
                gnutls_certificate_verification_status_print(gnutls_session_get_verify_cert_status(session),
                                                             GNUTLS_CRT_X509, &out, 0)
                let text = out.data.map { String(cString: $0) } ?? "?"
                mhz_tls_free(out.data)
                return .failure(Failure("certificate of \(host) not trusted: \(text)"))
            }
            return fail("tls handshake with \(host)", rc)
        }
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { gnutls_record_send(session, $0.baseAddress, $0.count) }
            if n < 0 { return fail("tls send", Int32(n)) }
            sent += n
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = buffer.withUnsafeMutableBytes { gnutls_record_recv(session, $0.baseAddress, $0.count) }
            if n == 0 || n == Int(GNUTLS_E_PREMATURE_TERMINATION) { return .success(response) }
            if n == Int(GNUTLS_E_AGAIN) || n == Int(GNUTLS_E_INTERRUPTED) { continue }
            if n < 0 { return fail("tls recv", Int32(n)) }
            response += buffer[..<n]
            if response.count > maxBytes + 16384 { return .failure(Failure("answer larger than \(maxBytes) bytes")) }
        }
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var s = self
        while let c = s.first, set.contains(c) { s.removeFirst() }
        while let c = s.last, set.contains(c) { s.removeLast() }
        return String(s)
    }
}
