import Foundation
import MicroHTTPD
import Testing

/// Issue 7, item 12: a field value is what lies between the optional whitespace (RFC 9110 5.5), the
/// trailing part included, through every way the handler reads headers.
@Suite struct HeaderValueTests {
    @Test(arguments: ["acme", "acme ", "acme\t \t", "  acme  "])
    func optionalWhitespaceIsNotPartOfTheValue(_ sent: String) throws {
        try withServer(handler: { request in
            var iterated = ""
            request.forEachHeader { name, value in if name.lowercased() == "x-tenant" { iterated = value } }
            let borrowed = request.withHeaderFields { fields in
                fields.first { String(decoding: $0.name, as: UTF8.self).lowercased() == "x-tenant" }
                    .map { String(decoding: $0.value, as: UTF8.self) } ?? "<none>"
            }
            return .text("[\(request.header("X-Tenant") ?? "<nil>")][\(iterated)][\(borrowed)]"
                         + "[\(request.headers(named: "x-tenant").joined(separator: ","))]")
        }) { server in
            let client = try RawHTTPClient(port: server.boundPort)
            try client.send("GET / HTTP/1.1\r\nHost: a\r\nX-Tenant: \(sent)\r\n\r\n")
            #expect(try client.readResponse().bodyText == "[acme][acme][acme][acme]")
        }
    }
}
