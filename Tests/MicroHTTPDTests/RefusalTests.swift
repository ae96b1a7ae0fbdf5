import Foundation
import MicroHTTPD
import Testing

/// Issue 7, items 11 and 12: requests refused before the handler (framing RFC 9112 rejects, heads and
/// bodies over the limits) go through the configuration's refusal hook, and the connection is closed.
@Suite struct RefusalTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let raw: String
        /// nil: the request must reach the handler.
        let refusal: HTTPRefusal?
        var testDescription: String { name }
    }

    static let bigHeader = String(repeating: "a", count: 20_000)  // over 16 KiB, within the 32 KiB pool

    static let cases: [Case] = [
        Case(name: "conflicting Content-Length",
             raw: "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
             refusal: .badFraming(.conflictingContentLength)),
        Case(name: "repeated identical Content-Length (allowed, RFC 9110 8.6)",
             raw: "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
             refusal: nil),
        Case(name: "Content-Length with Transfer-Encoding",
             raw: "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
             refusal: .badFraming(.contentLengthWithTransferEncoding)),
        Case(name: "Transfer-Encoding other than chunked",
             raw: "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
             refusal: .badFraming(.unsupportedTransferEncoding)),
        Case(name: "two Transfer-Encoding fields",
             raw: "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
             refusal: .badFraming(.unsupportedTransferEncoding)),
        Case(name: "chunked alone (allowed)",
             raw: "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
             refusal: nil),
        Case(name: "duplicate Host",
             raw: "GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
             refusal: .badFraming(.duplicateHost)),
        Case(name: "head over maxHeaderBytes (16 KiB)",
             raw: "GET /x HTTP/1.1\r\nHost: a\r\nX-Big: \(bigHeader)\r\n\r\n",
             refusal: .headersTooLarge(limit: 16 << 10)),
        Case(name: "declared body over maxBodyBytes",
             raw: "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1025\r\n\r\n",
             refusal: .bodyTooLarge(limit: 1024)),
    ]

    static func configuration(hook: (@Sendable (HTTPRefusal, String) -> HTTPResponse)?) -> HTTPServerConfiguration {
        var config = HTTPServerConfiguration()
        config.maxBodyBytes = 1024
        config.refusal = hook
        return config
    }

    static let bodyEcho: HTTPServer.Handler = { request in .text("body=\(String(decoding: request.body, as: UTF8.self))") }

    @Test(arguments: cases)
    func withoutAHookRefusalsGetTheirDefaultStatusAndTheConnectionCloses(_ c: Case) throws {
        try withServer(Self.configuration(hook: nil), handler: Self.bodyEcho) { server in
            let client = try RawHTTPClient(port: server.boundPort)
            try client.send(c.raw)
            let response = try client.readResponse()
            guard let refusal = c.refusal else {
                #expect(response.status == 200)
                #expect(response.bodyText == "body=abc" || response.bodyText == "body=")
                return
            }
            #expect(response.status == refusal.defaultStatus)
            #expect(response.header("Connection")?.lowercased() == "close")
            #expect(client.serverClosed())
        }
    }

    @Test(arguments: cases.filter { $0.refusal != nil })
    func theHookDecidesTheAnswerFromTheRefusalAndTheRawTarget(_ c: Case) throws {
        let seen = LockedBox<[(HTTPRefusal, String)]>([])
        let hook: @Sendable (HTTPRefusal, String) -> HTTPResponse = { refusal, target in
            seen.update { $0.append((refusal, target)) }
            return .text("refused: \(refusal)", status: 403, headers: [("x-refused-target", target)])
        }
        try withServer(Self.configuration(hook: hook), handler: Self.bodyEcho) { server in
            let client = try RawHTTPClient(port: server.boundPort)
            try client.send(c.raw.replacingOccurrences(of: " /x ", with: " /gw/a%2Fb?q=1 "))
            let response = try client.readResponse()
            #expect(response.status == 403)
            #expect(response.header("x-refused-target") == "/gw/a%2Fb?q=1")
            #expect(client.serverClosed())
            let calls = seen.get()
            #expect(calls.count == 1)
            #expect(calls.first?.0 == c.refusal)
            #expect(calls.first?.1 == "/gw/a%2Fb?q=1")
        }
    }

    @Test func aChunkedBodyGoingOverTheLimitIsRefusedThroughTheHook() throws {
        let hook: @Sendable (HTTPRefusal, String) -> HTTPResponse = { refusal, _ in .text("\(refusal)", status: 403) }
        try withServer(Self.configuration(hook: hook), handler: Self.bodyEcho) { server in
            let client = try RawHTTPClient(port: server.boundPort)
            let chunk = String(repeating: "z", count: 1000)
            try client.send("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "3e8\r\n\(chunk)\r\n3e8\r\n\(chunk)\r\n0\r\n\r\n")
            let response = try client.readResponse()
            #expect(response.status == 403)
            #expect(response.bodyText == HTTPRefusal.bodyTooLarge(limit: 1024).description)
            #expect(client.serverClosed())
        }
    }
}
