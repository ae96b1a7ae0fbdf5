@testable import MeshAuthz
import Testing

struct CheckRequestDecodingTests {
    static let full = #"""
    {"source": {"principal": "cluster.local/ns/default/sa/frontend-sa", "namespace": "default",
                "ip": "10.0.0.5", "remoteIp": "203.0.113.7", "requestPrincipal": "iss/sub", "mtls": true},
     "destination": {"namespace": "default", "labels": {"app": "api-service"}, "port": 8080, "ip": "10.0.0.9"},
     "request": {"method": "GET", "path": "/api/users?x=1", "host": "api.example.com",
                 "headers": {"X-Tenant": "acme"}, "claims": {"iss": "i", "groups": ["admin"], "n": {"k": 1}}},
     "connection": {"sni": "api.example.com"}}
    """#

    static func body(_ text: String) throws(RequestError) -> CheckRequestBody {
        try CheckRequest.decodeBody(Array(text.utf8))
    }

    static func single(_ text: String) throws -> CheckRequest {
        guard case .single(let request) = try body(text) else { throw RequestError(code: "test", message: "batch") }
        return request
    }

    @Test func decodesEveryField() throws {
        let request = try Self.single(Self.full)
        let expected = CheckRequest(
            source: .init(principal: "spiffe://cluster.local/ns/default/sa/frontend-sa", namespace: "default",
                          ip: IPAddress("10.0.0.5"), remoteIP: IPAddress("203.0.113.7"), requestPrincipal: "iss/sub",
                          mtls: true),
            destination: .init(namespace: "default", labels: ["app": "api-service"], port: 8080, ip: IPAddress("10.0.0.9")),
            request: .init(method: "GET", path: "/api/users?x=1", host: "api.example.com", headers: ["x-tenant": "acme"],
                           claims: ["iss": .string("i"), "groups": .array([.string("admin")]),
                                    "n": .object(["k": .number(1)])]),
            connection: .init(sni: "api.example.com"))
        #expect(request == expected)
        #expect(request.source.principal == "spiffe://cluster.local/ns/default/sa/frontend-sa")
        #expect(request.request.headers == ["x-tenant": "acme"])
    }

    struct Valid: Sendable, CustomTestStringConvertible {
        let body: String
        let check: @Sendable (CheckRequest) -> Bool
        var testDescription: String { body }
    }

    static let valid: [Valid] = [
        Valid(body: "{}") { $0 == CheckRequest() },
        Valid(body: " { } ") { $0 == CheckRequest() },
        Valid(body: #"{"source":{},"destination":{},"request":{},"connection":{}}"#) { $0 == CheckRequest() },
        Valid(body: #"{"source":{"principal":null,"ip":null,"mtls":null}}"#) { $0 == CheckRequest() },
        Valid(body: #"{"source":{"principal":"spiffe://td/ns/a/sa/b"}}"#) { $0.source.principal == "spiffe://td/ns/a/sa/b" },
        Valid(body: #"{"source":{"principal":"td/ns/a/sa/b"}}"#) { $0.source.principal == "spiffe://td/ns/a/sa/b" },
        Valid(body: #"{"source":{"mtls":false}}"#) { $0.source.mtls == false },
        Valid(body: #"{"source":{"ip":"::1"}}"#) { $0.source.ip == IPAddress("::1") },
        Valid(body: #"{"source":{"remoteIp":"2001:db8::7"}}"#) { $0.source.remoteIP == IPAddress("2001:db8::7") },
        Valid(body: #"{"destination":{"port":0}}"#) { $0.destination.port == 0 },
        Valid(body: #"{"destination":{"port":65535}}"#) { $0.destination.port == 65535 },
        Valid(body: #"{"destination":{"port": 8080 }}"#) { $0.destination.port == 8080 },
        Valid(body: #"{"destination":{"port":null}}"#) { $0.destination.port == nil },
        Valid(body: #"{"destination":{"labels":null}}"#) { $0.destination.labels == [:] },
        Valid(body: #"{"destination":{"labels":{"app":"a","App":"b"}}}"#) { $0.destination.labels == ["app": "a", "App": "b"] },
        Valid(body: #"{"request":{"headers":{"X-A":"1","x-b":""}}}"#) { $0.request.headers == ["x-a": "1", "x-b": ""] },
        Valid(body: #"{"request":{"claims":{}}}"#) { $0.request.claims == [:] },
        Valid(body: #"{"request":{"claims":null}}"#) { $0.request.claims == nil },
        Valid(body: #"{"request":{"path":"/a\u0000b"}}"#) { $0.request.path == "/a\u{0}b" },
        Valid(body: #"{"request":{"method":"PATCH","path":""}}"#) { $0.request.method == "PATCH" && $0.request.path == "" },
        Valid(body: #"{"connection":{"sni":"x.example"}}"#) { $0.connection.sni == "x.example" },
    ]

    @Test(arguments: valid)
    func decodesValid(_ test: Valid) throws {
        #expect(test.check(try Self.single(test.body)))
    }

    struct Invalid: Sendable, CustomTestStringConvertible {
        let body: String
        let code: String
        let field: String?
        let message: String
        var testDescription: String { body }
        init(_ body: String, _ field: String?, _ message: String = "", code: String = "invalid_request") {
            self.body = body
            self.code = code
            self.field = field
            self.message = message
        }
    }

    static let invalid: [Invalid] = [
        Invalid(#"{"source": "#, nil, "end of input", code: "invalid_json"),
        Invalid("", nil, "empty document", code: "invalid_json"),
        Invalid("{not json", nil, "line 1, column 2", code: "invalid_json"),
        Invalid(#"{"source":{},"source":{}}"#, nil, "duplicate key", code: "invalid_json"),
        Invalid(#"{} {}"#, nil, "after the JSON value", code: "invalid_json"),
        Invalid("42", nil, "not a number"),
        Invalid(#""check""#, nil, "not a string"),
        Invalid("null", nil, "not null"),
        Invalid(#"{"sourc":{}}"#, "sourc", "unknown field"),
        Invalid(#"{"Source":{}}"#, "Source", "unknown field"),
        Invalid(#"{"source":{"principals":["x"]}}"#, "source.principals", "unknown field"),
        Invalid(#"{"source":"frontend"}"#, "source", "expected an object (omit the key when absent), got a string"),
        // The four parts are objects or absent: `"request": null` is not "no request".
        Invalid(#"{"source":null}"#, "source", "expected an object"),
        Invalid(#"{"destination":null}"#, "destination", "expected an object"),
        Invalid(#"{"request":null}"#, "request", "expected an object"),
        Invalid(#"{"connection":null}"#, "connection", "expected an object"),
        // A port is written as decimal digits.
        Invalid(#"{"destination":{"port":1e3}}"#, "destination.port", "decimal digits, not \"1e3\""),
        Invalid(#"{"destination":{"port":80.0}}"#, "destination.port", "decimal digits"),
        Invalid(#"{"destination":{"port":8.08e3}}"#, "destination.port", "decimal digits"),
        Invalid(#"{"destination":{"port":-0}}"#, "destination.port", "decimal digits"),
        // Methods are upper-case tokens, as Envoy accepts them.
        Invalid(#"{"request":{"method":"delete"}}"#, "request.method", "upper-case method token"),
        Invalid(#"{"request":{"method":"DeLeTe"}}"#, "request.method", "upper-case method token"),
        Invalid(#"{"request":{"method":"DELETE "}}"#, "request.method", "upper-case method token"),
        Invalid(#"{"request":{"method":"DELETE\t"}}"#, "request.method", "upper-case method token"),
        Invalid(#"{"request":{"method":"GE(T"}}"#, "request.method", "upper-case method token"),
        Invalid(#"{"request":{"method":""}}"#, "request.method", "upper-case method token"),
        Invalid(#"{"source":[]}"#, "source", "got an array"),
        Invalid(#"{"source":{"mtls":"yes"}}"#, "source.mtls", "true or false"),
        Invalid(#"{"source":{"mtls":1}}"#, "source.mtls"),
        Invalid(#"{"source":{"principal":7}}"#, "source.principal", "expected a string, got a number"),
        Invalid(#"{"source":{"principal":""}}"#, "source.principal", "must not be empty"),
        Invalid(#"{"source":{"namespace":false}}"#, "source.namespace"),
        Invalid(#"{"source":{"requestPrincipal":{}}}"#, "source.requestPrincipal"),
        Invalid(#"{"source":{"ip":"10.0.0.256"}}"#, "source.ip", "not an IPv4 or IPv6 address"),
        Invalid(#"{"source":{"ip":"010.0.0.1"}}"#, "source.ip"),
        Invalid(#"{"source":{"ip":"10.0.0.0/24"}}"#, "source.ip"),
        Invalid(#"{"source":{"ip":""}}"#, "source.ip"),
        Invalid(#"{"source":{"ip":167772161}}"#, "source.ip", "expected a string"),
        Invalid(#"{"source":{"remoteIp":"not-an-ip"}}"#, "source.remoteIp"),
        Invalid(#"{"destination":{"ip":"1.2.3"}}"#, "destination.ip"),
        Invalid(#"{"destination":{"port":70000}}"#, "destination.port", "0 to 65535"),
        Invalid(#"{"destination":{"port":65536}}"#, "destination.port"),
        Invalid(#"{"destination":{"port":-1}}"#, "destination.port", "got -1"),
        Invalid(#"{"destination":{"port":80.5}}"#, "destination.port", "got 80.5"),
        Invalid(#"{"destination":{"port":1e-2}}"#, "destination.port"),
        Invalid(#"{"destination":{"port":1e300}}"#, "destination.port"),
        Invalid(#"{"destination":{"port":"8080"}}"#, "destination.port", "expected an integer port"),
        Invalid(#"{"destination":{"port":true}}"#, "destination.port"),
        Invalid(#"{"destination":{"labels":["app=x"]}}"#, "destination.labels", "expected an object"),
        Invalid(#"{"destination":{"labels":{"app":1}}}"#, "destination.labels.app", "expected a string, got a number"),
        Invalid(#"{"destination":{"labels":{"app":null}}}"#, "destination.labels.app", "got null"),
        Invalid(#"{"destination":{"namespaces":"x"}}"#, "destination.namespaces", "unknown field"),
        Invalid(#"{"request":{"headers":{"x-a":["1","2"]}}}"#, "request.headers.x-a", "got an array"),
        Invalid(#"{"request":{"headers":{"X-A":"1","x-a":"2"}}}"#, "request.headers.x-a", "same header"),
        Invalid(#"{"request":{"headers":"x"}}"#, "request.headers"),
        Invalid(#"{"request":{"method":["GET"]}}"#, "request.method"),
        Invalid(#"{"request":{"path":1}}"#, "request.path"),
        Invalid(#"{"request":{"host":1}}"#, "request.host"),
        Invalid(#"{"request":{"claims":[]}}"#, "request.claims", "expected an object"),
        Invalid(#"{"request":{"claims":"a.b.c"}}"#, "request.claims"),
        Invalid(#"{"request":{"query":"x"}}"#, "request.query", "unknown field"),
        Invalid(#"{"connection":{"sni":true}}"#, "connection.sni"),
        Invalid(#"{"connection":{"alpn":"h2"}}"#, "connection.alpn"),
        // Several problems: the one under the least key is reported, every time.
        Invalid(#"{"zeta":1,"alpha":2,"source":{"ip":"x"}}"#, "alpha"),
        Invalid(#"{"source":{"mtls":"x","ip":"y","principal":3}}"#, "source.ip"),
        Invalid(#"{"destination":{"labels":{"b":1,"a":2}}}"#, "destination.labels.a"),
        // Batches
        Invalid(#"[{}, {"source":{"ip":"nope"}}]"#, "[1].source.ip"),
        Invalid(#"[{}, 1]"#, "[1]", "must be a JSON object"),
        Invalid(#"[{}, {}, {"destination":{"port":-5}}]"#, "[2].destination.port"),
        Invalid(#"[{}, {"x":1}, {"y":1}]"#, "[1].x"),
        Invalid(#"[[]]"#, "[0]"),
        Invalid("[" + Array(repeating: "{}", count: 1001).joined(separator: ",") + "]", nil, "at most 1000"),
    ]

    @Test(arguments: invalid)
    func rejectsInvalid(_ test: Invalid) {
        do {
            _ = try Self.body(test.body)
            Issue.record("accepted")
        } catch {
            #expect(error.code == test.code)
            #expect(error.field == test.field)
            #expect(test.message.isEmpty || error.message.contains(test.message), "\(error.message)")
        }
    }

    @Test func errorIsStableAcrossRuns() {
        // Dictionary order varies; the reported error must not.
        let text = #"{"source":{"ip":"a","remoteIp":"b","mtls":"c","principal":1,"namespace":2,"zz":3}}"#
        var fields: Set<String?> = []
        for _ in 0..<50 {
            do { _ = try Self.body(text) } catch { fields.insert(error.field) }
        }
        #expect(fields == ["source.ip"])
    }

    @Test func batches() throws {
        #expect(try Self.body("[]") == .batch([]))
        #expect(try Self.body(" [ {} ] ") == .batch([CheckRequest()]))
        let thousand = "[" + Array(repeating: #"{"destination":{"port":1}}"#, count: 1000).joined(separator: ",") + "]"
        guard case .batch(let requests) = try Self.body(thousand) else {
            Issue.record("not a batch")
            return
        }
        #expect(requests.count == 1000)
        #expect(requests.allSatisfy { $0.destination.port == 1 })
        let mixed = "[\(Self.full), {}]"
        guard case .batch(let two) = try Self.body(mixed) else { return }
        #expect(two[0] == (try Self.single(Self.full)))
        #expect(two[1] == CheckRequest())
    }

    @Test func errorJSON() throws {
        let error = RequestError(code: "invalid_request", message: "expected \"a\"", field: "source.ip")
        #expect(String(decoding: error.jsonBytes, as: UTF8.self)
                == #"{"error":{"code":"invalid_request","message":"expected \"a\"","field":"source.ip"}}"#)
        let noField = RequestError(code: "invalid_json", message: "m")
        #expect(String(decoding: noField.jsonBytes, as: UTF8.self)
                == #"{"error":{"code":"invalid_json","message":"m","field":null}}"#)
        // The error of a real bad body parses back.
        do {
            _ = try Self.body("{\"a\":\n\u{1}}")
        } catch {
            let parsed = try JSONParser.parse(error.jsonBytes)
            #expect(parsed["error"]?["code"] == .string("invalid_json"))
            #expect(parsed["error"]?["message"]?.stringValue?.contains("line 2, column 1") == true)
        }
    }

    /// One object, written out by `JSONWriter` and read back by `decodeBody`.
    static func decodeWritten(_ value: JSONValue) throws(RequestError) -> CheckRequest {
        guard case .object = value, case .single(let request) = try CheckRequest.decodeBody(value.jsonBytes) else {
            throw RequestError.invalidRequest("a request must be a JSON object, not \(value.kindName)", field: nil)
        }
        return request
    }

    /// `decodeBody` reads bytes in one pass; element by element, the same answers must come out of parsing
    /// with `JSONParser` and decoding each element written back out, for every valid and invalid body above
    /// (so the one-pass reader does not depend on how the body is laid out).
    @Test func onePassAgreesWithParseThenDecode() throws {
        let bodies = Self.valid.map(\.body) + Self.invalid.map(\.body) + [Self.full]
            + [#"{"request":{"headers":{"x-a":"1","X-A":"2","X-A":"3"}}}"#,
               #"{"request":{"headers":{"x-a":1,"x-a":"2"}}}"#,
               #"{"destination":{"labels":{"a":"1","a":"2"}}}"#,
               #"{"source":{"ip":"x","ip":"y"}}"#,
               #"{"unknown":1,"unknown":2}"#,
               #"{"source":{"bad":1},"destination":{"port":"x"}}"#,
               #"{"request":{"claims":{"a":1,"a":2}}}"#]
        // A parsed tree no longer knows how a number was written: the port's written form is checked by
        // the one-pass reader only.
        let writtenFormOnly: Set<String> = [#"{"destination":{"port":1e3}}"#, #"{"destination":{"port":80.0}}"#,
                                            #"{"destination":{"port":8.08e3}}"#, #"{"destination":{"port":-0}}"#]
        for text in bodies where !writtenFormOnly.contains(text) {
            let bytes = Array(text.utf8)
            let onePass: Result<CheckRequestBody, RequestError> = Result { () throws(RequestError) in
                try CheckRequest.decodeBody(bytes)
            }
            let twoPass: Result<CheckRequestBody, RequestError>
            do {
                let value = try JSONParser.parse(bytes)
                switch value {
                case .array(let elements) where elements.count <= CheckRequest.maxBatchSize:
                    var requests: [CheckRequest] = []
                    var failure: RequestError?
                    for (position, element) in elements.enumerated() {
                        do {
                            requests.append(try Self.decodeWritten(element))
                        } catch {
                            var located = error
                            located.field = error.field.map { "[\(position)].\($0)" } ?? "[\(position)]"
                            failure = located
                            break
                        }
                    }
                    twoPass = failure.map { .failure($0) } ?? .success(.batch(requests))
                case .object:
                    twoPass = Result { () throws(RequestError) in .single(try Self.decodeWritten(value)) }
                default:
                    twoPass = Result { () throws(RequestError) in try CheckRequest.decodeBody(bytes) }
                }
            } catch {
                twoPass = .failure(.invalidJSON(error))
            }
            switch (onePass, twoPass) {
            case (.success(let a), .success(let b)):
                #expect(a == b, "\(text)")
            case (.failure(let a), .failure(let b)):
                #expect(a.code == b.code, "\(text)")
                #expect(a.field == b.field, "\(text)")
                #expect(a.message == b.message || a.code == "invalid_json", "\(text)")
            default:
                Issue.record("disagree on \(text): \(onePass) vs \(twoPass)")
            }
        }
    }
}
