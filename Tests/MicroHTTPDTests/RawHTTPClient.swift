import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct ClientError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A parsed HTTP/1.1 response.
struct RawResponse {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]
    var bodyText: String { String(decoding: body, as: UTF8.self) }
    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}

/// Byte transport under the HTTP client: plain TCP or TLS.
protocol ByteStream: AnyObject {
    func write(_ bytes: [UInt8]) throws
    /// Up to `max` bytes; empty at end of stream.
    func read(max: Int) throws -> [UInt8]
    func close()
}

/// A blocking TCP socket to 127.0.0.1 with a receive timeout.
final class TCPStream: ByteStream {
    private(set) var fd: Int32

    /// `source`: a loopback address to connect from (e.g. `127.0.0.2`, another client as far as per-address
    /// limits go); the kernel's choice otherwise.
    init(port: UInt16, timeoutSeconds: Int = 5, source: String? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError("socket: \(errno)") }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard bound == 0 else {
                let e = errno
                Glibc.close(fd)
                throw ClientError("bind to \(source): errno \(e)")
            }
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            let e = errno
            Glibc.close(fd)
            throw ClientError("connect to \(port): errno \(e)")
        }
    }

    func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw ClientError("send: errno \(errno)") }
            offset += n
        }
    }

    func read(max: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, max, 0) }
        if n < 0 {
            if errno == ECONNRESET { return [] }
            throw ClientError("recv: errno \(errno)")
        }
        return Array(buffer[0..<n])
    }

    /// Idempotent: a second close must not hit an fd number reused by another test.
    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }
}

/// A tiny HTTP/1.1 client over one connection (keep-alive, pipelining possible).
final class RawHTTPClient {
    let stream: ByteStream
    private var buffer: [UInt8] = []

    init(stream: ByteStream) { self.stream = stream }
    convenience init(port: UInt16) throws { self.init(stream: try TCPStream(port: port)) }
    deinit { stream.close() }

    func send(_ text: String) throws { try stream.write(Array(text.utf8)) }
    func send(bytes: [UInt8]) throws { try stream.write(bytes) }

    /// Sends a request with `Content-Length` (when there is a body) and reads its response.
    func request(_ method: String, _ target: String, headers: [(String, String)] = [], body: [UInt8] = [],
                 host: String = "localhost") throws -> RawResponse {
        var head = "\(method) \(target) HTTP/1.1\r\nHost: \(host)\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        if !body.isEmpty || method == "POST" || method == "PUT" { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        try stream.write(Array(head.utf8) + body)
        return try readResponse(forHead: method == "HEAD")
    }

    private func fill() throws -> Bool {
        let chunk = try stream.read(max: 65536)
        if chunk.isEmpty { return false }
        buffer.append(contentsOf: chunk)
        return true
    }

    /// Reads one response (Content-Length or chunked body; none for HEAD/1xx/204/304).
    func readResponse(forHead: Bool = false) throws -> RawResponse {
        let crlfcrlf: [UInt8] = [13, 10, 13, 10]
        var headEnd: Int?
        while true {
            if buffer.count >= 4 {
                for i in 0...(buffer.count - 4) where Array(buffer[i..<i + 4]) == crlfcrlf {
                    headEnd = i
                    break
                }
            }
            if headEnd != nil { break }
            guard try fill() else { throw ClientError("connection closed before a response") }
        }
        let head = String(decoding: buffer[0..<headEnd!], as: UTF8.self)
        buffer.removeFirst(headEnd! + 4)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
            throw ClientError("bad status line in \(head)")
        }
        var headers: [(String, String)] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((String(line[..<colon]),
                            line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var response = RawResponse(status: status, headers: headers, body: [])
        if forHead || status / 100 == 1 || status == 204 || status == 304 { return response }
        if let te = response.header("Transfer-Encoding"), te.lowercased().contains("chunked") {
            response.body = try readChunked()
        } else if let cl = response.header("Content-Length"), let length = Int(cl) {
            while buffer.count < length {
                guard try fill() else { throw ClientError("connection closed inside a body") }
            }
            response.body = Array(buffer[0..<length])
            buffer.removeFirst(length)
        } else {
            while try fill() {}
            response.body = buffer
            buffer = []
        }
        return response
    }

    private func readLine() throws -> String {
        while true {
            if let i = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[0..<i], as: UTF8.self)
                buffer.removeFirst(i + 1)
                return line.hasSuffix("\r") ? String(line.dropLast()) : line
            }
            guard try fill() else { throw ClientError("connection closed inside chunked body") }
        }
    }

    private func readChunked() throws -> [UInt8] {
        var body: [UInt8] = []
        while true {
            let sizeLine = try readLine()
            guard let size = Int(sizeLine.split(separator: ";")[0], radix: 16) else {
                throw ClientError("bad chunk size \(sizeLine)")
            }
            if size == 0 {
                while try !readLine().isEmpty {}
                return body
            }
            while buffer.count < size + 2 {
                guard try fill() else { throw ClientError("connection closed inside chunk") }
            }
            body.append(contentsOf: buffer[0..<size])
            buffer.removeFirst(size + 2)
        }
    }

    /// True if the server closed the connection (read returns EOF) within the socket timeout.
    func serverClosed() -> Bool {
        guard buffer.isEmpty else { return false }
        do { return try stream.read(max: 1).isEmpty } catch { return false }
    }
}

