#if DEBUG
import Foundation
import Testing
@testable import MicroHTTPD

/// Per-request state lives in `*con_cls`: every one must be released, whatever way the request ends.
/// Serialized and alone in its suite because it reads a process-wide counter; other suites may run at the
/// same time, so it waits for the counter to reach zero rather than asserting it instantly.
@Suite(.serialized) struct LeakTests {
    @Test func perRequestStateIsAlwaysReleased() throws {
        var config = HTTPServerConfiguration()
        config.maxBodyBytes = 100
        config.connectionTimeoutSeconds = 1
        let server = HTTPServer(configuration: config, handler: { _ in .text("x") })
        try server.start()
        let port = server.boundPort
        for _ in 0..<5 {
            _ = try RawHTTPClient(port: port).request("GET", "/a")
            // Client gone in the middle of the headers, and in the middle of a body.
            try RawHTTPClient(port: port).send("GET /x HTTP/1.1\r\nHost: a\r\nX-Partial: ")
            try RawHTTPClient(port: port).send("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 50\r\n\r\nabc")
            #expect(try RawHTTPClient(port: port).request("POST", "/big", body: [UInt8](repeating: 1, count: 200))
                .status == 413)
        }
        #expect(try RawHTTPClient(port: port).request(
            "GET", "/h", headers: [("X-Big", String(repeating: "a", count: 40000))]).status == 431)
        // Idle in the middle of the headers until the connection timeout, and in flight at stop().
        let idle = try RawHTTPClient(port: port)
        try idle.send("GET /idle HTTP/1.1\r\n")
        Thread.sleep(forTimeInterval: 1.5)
        let pending = try RawHTTPClient(port: port)
        try pending.send("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 50\r\n\r\nabc")
        Thread.sleep(forTimeInterval: 0.1)
        server.stop()
        var live = RequestState.live.withLock { $0 }
        for _ in 0..<50 where live != 0 {  // other suites' servers may still be finishing requests
            Thread.sleep(forTimeInterval: 0.1)
            live = RequestState.live.withLock { $0 }
        }
        #expect(live == 0)
    }
}
#endif
