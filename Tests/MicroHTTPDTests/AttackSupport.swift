import Foundation
import MicroHTTPD
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Client-side tools for the connection-exhaustion tests: many raw loopback connections, a timed probe,
/// bounded waits.
enum Attack {
    /// Each attack holds about 1,200 client sockets and the server as many: raise this process's soft
    /// descriptor limit (the test process is both), and make sure it suffices.
    static func ensureDescriptors(_ needed: Int) {
        let limit = FileDescriptorLimit.raiseToHardLimit()
        #expect(limit >= needed, "RLIMIT_NOFILE \(limit) is below the \(needed) descriptors this test needs")
    }

    /// `count` connected TCP streams to 127.0.0.1:`port`, nothing sent.
    static func connect(_ count: Int, port: UInt16, timeoutSeconds: Int = 5) throws -> [TCPStream] {
        var streams: [TCPStream] = []
        streams.reserveCapacity(count)
        for _ in 0..<count { streams.append(try TCPStream(port: port, timeoutSeconds: timeoutSeconds)) }
        return streams
    }

    /// A fresh client's `GET /probe`: its status and how long the whole exchange (connect included) took.
    static func probe(port: UInt16, source: String? = nil) throws -> (status: Int, milliseconds: Double) {
        let clock = ContinuousClock()
        let start = clock.now
        let client = RawHTTPClient(stream: try TCPStream(port: port, timeoutSeconds: 3))
        let response = try client.request("GET", "/probe")
        let elapsed = clock.now - start
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        return (response.status, ms)
    }

    /// Polls `condition` every 20 ms for at most `seconds`; true once it holds.
    static func eventually(within seconds: Double, _ condition: () -> Bool) -> Bool {
        let rounds = Int(seconds / 0.02) + 1
        for _ in 0..<rounds {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return condition()
    }

    /// True when the server has closed `stream`: a read gives end-of-stream or a reset right away (not
    /// data, not "would block"). Never waits: call it once the server says the connections are gone.
    static func closedByServer(_ stream: TCPStream) -> Bool {
        var byte: UInt8 = 0
        let n = recv(stream.fd, &byte, 1, Int32(MSG_DONTWAIT))
        return n == 0 || (n < 0 && errno == ECONNRESET)
    }
}
