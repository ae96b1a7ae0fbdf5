/// Why a `POST /v1/check` body was refused (answered with 400).
public struct RequestError: Error, Sendable, Hashable, CustomStringConvertible {
    /// `invalid_json` when the body is not JSON at all, `invalid_request` when it is JSON of the wrong shape.
    public var code: String
    public var message: String
    /// Dotted path of the offending field (`source.ip`, `[2].destination.port` in a batch), when there is one.
    public var field: String?

    public init(code: String, message: String, field: String? = nil) {
        self.code = code
        self.message = message
        self.field = field
    }

    public static let invalidJSON = "invalid_json"
    public static let invalidRequest = "invalid_request"

    public static func invalidJSON(_ error: JSONParseError) -> RequestError {
        RequestError(code: invalidJSON, message: "malformed JSON at \(error)")
    }

    public static func invalidRequest(_ message: String, field: String?) -> RequestError {
        RequestError(code: invalidRequest, message: message, field: field)
    }

    public var description: String {
        field.map { "\(code): \($0): \(message)" } ?? "\(code): \(message)"
    }
}

/// A `POST /v1/check` body: one request object, or an array of them answered in order.
public enum CheckRequestBody: Sendable, Hashable {
    case single(CheckRequest)
    case batch([CheckRequest])
}

extension CheckRequest {
    /// The most requests one batch may carry.
    public static let maxBatchSize = 1000

    /// Decodes a `POST /v1/check` body: a JSON object, or an array of at most `maxBatchSize` objects
    /// (an empty array is valid and answered with `[]`). The size limit of the body is the caller's.
    ///
    /// The body is read in one pass straight into `CheckRequest`s (only `claims` become `JSONValue`s), with
    /// the same strictness as `JSONParser` (a body that parser refuses is `invalid_json`, whatever else is
    /// wrong with it). Each request object has this shape:
    ///
    ///     {"source": {"principal": str, "namespace": str, "ip": str, "remoteIp": str,
    ///                 "requestPrincipal": str, "mtls": bool},
    ///      "destination": {"namespace": str, "labels": {str: str}, "port": int, "ip": str},
    ///      "request": {"method": str, "path": str, "host": str, "headers": {str: str}, "claims": {...}},
    ///      "connection": {"sni": str}}
    ///
    /// Every key is optional and a `null` field value means absent (the four parts themselves must be
    /// objects when present); any other key, or a value of another type, is an error naming the field.
    /// Choices made here:
    /// - `port` is written as decimal digits within 0...65535: `8080.0`, `8.08e3`, `-0`, `80.5`, `-1` and
    ///   `70000` are errors;
    /// - `method` is an upper-case token (`[A-Z]+`), as Envoy requires: `delete` or `GET ` is an error;
    /// - IP addresses must parse with `IPAddress` (dotted IPv4 without leading zeros, or IPv6);
    /// - `principal` must not be empty (an empty one would read as the principal `spiffe://`: omit it
    ///   or send `null` for "no principal");
    /// - header names are case-insensitive, so two names differing only in case are an error rather
    ///   than one silently replacing the other (the same reasoning as duplicate JSON keys);
    /// - when several fields are wrong, the one reported is the least key at each level (object members
    ///   have no meaningful order), so a body always gets the same error.
    ///
    /// A value nested deeper than `JSONParser.defaultMaxDepth` is refused as `invalid_json`, as a body would be.
    public static func decodeBody(_ bytes: [UInt8]) throws(RequestError) -> CheckRequestBody {
        try bytes.withUnsafeBufferPointer { (buffer) throws(RequestError) -> CheckRequestBody in
            try RequestBodyDecoder.decode(buffer)
        }
    }

    // MARK: Field readers (shared by every field of the same type)

    static func unknownField(_ field: String, expected: String) -> RequestError {
        RequestError.invalidRequest("unknown field (expected one of: \(expected))", field: field)
    }

    static func wrongType(_ value: JSONValue, _ field: String, expected: String) -> RequestError {
        RequestError.invalidRequest("expected \(expected), got \(value.kindName)", field: field)
    }

    static func optionalObject(_ value: JSONValue,
                               _ field: @autoclosure () -> String) throws(RequestError) -> [String: JSONValue]? {
        switch value {
        case .null: return nil
        case .object(let members): return members
        default: throw wrongType(value, field(), expected: "an object")
        }
    }

    static func optionalString(_ value: JSONValue, _ field: @autoclosure () -> String) throws(RequestError) -> String? {
        switch value {
        case .null: return nil
        case .string(let text): return text
        default: throw wrongType(value, field(), expected: "a string")
        }
    }

    static func optionalBool(_ value: JSONValue, _ field: @autoclosure () -> String) throws(RequestError) -> Bool? {
        switch value {
        case .null: return nil
        case .bool(let flag): return flag
        default: throw wrongType(value, field(), expected: "true or false")
        }
    }

    static func optionalIP(_ value: JSONValue, _ field: @autoclosure () -> String) throws(RequestError) -> IPAddress? {
        guard let text = try optionalString(value, field()) else { return nil }
        guard let address = IPAddress(text) else {
            throw RequestError.invalidRequest("\"\(text)\" is not an IPv4 or IPv6 address", field: field())
        }
        return address
    }

    /// A port is written as plain decimal digits: `8080`, not `8080.0`, `8.08e3` or `-0` (a JSON number
    /// has no integer type, but a port written otherwise is more likely a bug than a port).
    static func requireDigits(_ lexeme: UnsafeBufferPointer<UInt8>, _ field: @autoclosure () -> String) throws(RequestError) {
        var digits = lexeme[...]
        while let last = digits.last, last == 0x20 || last == 0x09 || last == 0x0A || last == 0x0D { digits = digits.dropLast() }
        while let first = digits.first, first == 0x20 || first == 0x09 || first == 0x0A || first == 0x0D { digits = digits.dropFirst() }
        if digits.elementsEqual("null".utf8) { return }
        guard !digits.isEmpty, digits.allSatisfy({ $0 &- 0x30 < 10 }) else {
            throw RequestError.invalidRequest(
                "a port is written as decimal digits, not \"\(String(decoding: digits, as: UTF8.self))\"", field: field())
        }
    }

    static func optionalPort(_ value: JSONValue, _ field: @autoclosure () -> String) throws(RequestError) -> Int? {
        switch value {
        case .null: return nil
        case .number(let number):
            guard number.rounded(.towardZero) == number, number >= 0, number <= 65535 else {
                let written = number.rounded(.towardZero) == number && abs(number) < 1e15
                    ? String(Int(number)) : String(number)
                throw RequestError.invalidRequest("a port is an integer from 0 to 65535, got \(written)", field: field())
            }
            return Int(number)
        default: throw wrongType(value, field(), expected: "an integer port")
        }
    }
}

/// Where a field is: the element of a batch (if any) and the keys leading to it. Only spelled out for errors.
struct FieldLocation {
    let element: Int?

    func field(_ components: String...) -> String {
        var path = element.map { "[\($0)]" } ?? ""
        for component in components { path = FieldPath.join(path, component) }
        return path
    }
}

/// Reads `/v1/check` bodies from bytes in one pass (see `CheckRequest.decodeBody`). Syntax errors are
/// thrown at once (`invalid_json`); shape errors are collected while reading goes on, so that a syntax
/// error further on still wins, and reported at the end.
struct RequestBodyDecoder {
    var cursor: JSONParser.Cursor

    /// The shape error to report, once the whole body has been read.
    var failure: RequestError?

    static func decode(_ buffer: UnsafeBufferPointer<UInt8>) throws(RequestError) -> CheckRequestBody {
        var decoder = RequestBodyDecoder(cursor: JSONParser.Cursor(buffer, maxDepth: JSONParser.defaultMaxDepth))
        let body: CheckRequestBody
        do throws(JSONParseError) {
            body = try decoder.body()
        } catch {
            throw .invalidJSON(error)
        }
        if let failure = decoder.failure { throw failure }
        return body
    }

    /// The body, or (with `failure` set) an empty batch.
    mutating func body() throws(JSONParseError) -> CheckRequestBody {
        try cursor.beginDocument()
        switch cursor.current {
        case UInt8(ascii: "{"):
            let (request, requestFailure) = try request(FieldLocation(element: nil))
            try cursor.endDocument()
            failure = requestFailure
            return .single(request)
        case UInt8(ascii: "["):
            try cursor.enterContainer()
            var requests: [CheckRequest] = []
            var elementFailure: RequestError?
            var count = 0
            var first = true
            while try cursor.nextElement(first: &first) {
                let position = count
                count += 1
                if count > CheckRequest.maxBatchSize || elementFailure != nil {
                    _ = try cursor.parseValue()  // still checked as JSON, no longer decoded
                    continue
                }
                if cursor.current == UInt8(ascii: "{") {
                    let (request, requestFailure) = try request(FieldLocation(element: position))
                    if let requestFailure { elementFailure = requestFailure } else { requests.append(request) }
                } else {
                    let value = try cursor.parseValue()
                    elementFailure = .invalidRequest("a request must be a JSON object, not \(value.kindName)",
                                                     field: "[\(position)]")
                }
            }
            try cursor.endDocument()
            if count > CheckRequest.maxBatchSize {
                failure = .invalidRequest(
                    "a batch holds at most \(CheckRequest.maxBatchSize) requests, this one has \(count)", field: nil)
            } else {
                failure = elementFailure
            }
            return .batch(failure == nil ? requests : [])
        default:
            let value = try cursor.parseValue()
            try cursor.endDocument()
            failure = .invalidRequest(
                "the body must be a request object or an array of them, not \(value.kindName)", field: nil)
            return .batch([])
        }
    }

    /// Per object: the member names seen (a repeated one is a JSON error, as in `JSONParser`) and the
    /// failure to report.
    struct Members {
        var seen: [String] = []
        var failure = FirstFailure()

        mutating func record(_ key: String, _ error: RequestError?) {
            if let error { failure.record(key, error) }
        }
    }

    /// Reads the members of the object at the cursor, the one loop every object of the body goes through:
    /// each known member is handed to `read` (which consumes its value), an unknown one is recorded as an
    /// error naming the keys `Key` allows, a repeated one is thrown as a JSON error. Returns the object's
    /// failure, if any.
    mutating func readObject<Key: RawRepresentable<String> & CaseIterable>(
        _ keys: Key.Type, _ field: (String) -> String,
        _ read: (inout RequestBodyDecoder, Key, inout Members) throws(JSONParseError) -> Void
    ) throws(JSONParseError) -> RequestError? {
        try cursor.enterContainer()
        var members = Members()
        var first = true
        while try cursor.nextMember(first: &first) {
            let key = try cursor.readKey()
            let name = key.string(cursor.base)
            if let known = Key.allCases.first(where: { $0.rawValue == name }) {
                try read(&self, known, &members)
            } else {
                _ = try cursor.parseValue()
                members.record(name, CheckRequest.unknownField(
                    field(name), expected: Key.allCases.map(\.rawValue).joined(separator: ", ")))
            }
            if members.seen.contains(name) { throw cursor.duplicateKey(name, at: key.offset) }
            members.seen.append(name)
        }
        return members.failure.error
    }

    /// At a member value that should be an object: true at `{`; otherwise the value is consumed and
    /// recorded as an error. `null` is an error too: `"request": null` reads as "no request", which a
    /// client cannot have meant to ask about (omit the key for an absent part).
    mutating func objectFollows(_ key: String, _ members: inout Members,
                                _ field: @autoclosure () -> String) throws(JSONParseError) -> Bool {
        if cursor.current == UInt8(ascii: "{") { return true }
        let value = try cursor.parseValue()
        members.record(key, CheckRequest.wrongType(value, field(), expected: "an object (omit the key when absent)"))
        return false
    }

    /// A scalar member: its value parsed and handed to `decode`; a shape error is recorded under the key.
    mutating func scalar(_ key: String, _ members: inout Members,
                         _ decode: (JSONValue) throws(RequestError) -> Void) throws(JSONParseError) {
        let value = try cursor.parseValue()
        do throws(RequestError) { try decode(value) } catch { members.record(key, error) }
    }

    enum RequestKey: String, CaseIterable { case source, destination, request, connection }

    mutating func request(_ location: FieldLocation) throws(JSONParseError) -> (CheckRequest, RequestError?) {
        var request = CheckRequest()
        let failure = try readObject(RequestKey.self, { location.field($0) }) {
            (decoder: inout RequestBodyDecoder, key, members) throws(JSONParseError) in
            guard try decoder.objectFollows(key.rawValue, &members, location.field(key.rawValue)) else { return }
            let part: RequestError?
            switch key {
            case .source: (request.source, part) = try decoder.source(location)
            case .destination: (request.destination, part) = try decoder.destination(location)
            case .request: (request.request, part) = try decoder.http(location)
            case .connection: (request.connection, part) = try decoder.connection(location)
            }
            members.record(key.rawValue, part)
        }
        return (request, failure)
    }

    enum SourceKey: String, CaseIterable { case principal, namespace, ip, remoteIp, requestPrincipal, mtls }

    mutating func source(_ location: FieldLocation) throws(JSONParseError) -> (CheckRequest.Peer, RequestError?) {
        var principal: String?, namespace: String?, ip: IPAddress?, remoteIP: IPAddress?
        var requestPrincipal: String?, mtls: Bool?
        let failure = try readObject(SourceKey.self, { location.field("source", $0) }) {
            (decoder: inout RequestBodyDecoder, key, members) throws(JSONParseError) in
            let field = location.field("source", key.rawValue)
            try decoder.scalar(key.rawValue, &members) { (value) throws(RequestError) in
                switch key {
                case .principal:
                    principal = try CheckRequest.optionalString(value, field)
                    if principal?.isEmpty == true {
                        throw RequestError.invalidRequest(
                            "must not be empty: omit it or use null for a request without a principal", field: field)
                    }
                case .namespace: namespace = try CheckRequest.optionalString(value, field)
                case .ip: ip = try CheckRequest.optionalIP(value, field)
                case .remoteIp: remoteIP = try CheckRequest.optionalIP(value, field)
                case .requestPrincipal: requestPrincipal = try CheckRequest.optionalString(value, field)
                case .mtls: mtls = try CheckRequest.optionalBool(value, field)
                }
            }
        }
        let peer = CheckRequest.Peer(principal: principal, namespace: namespace, ip: ip, remoteIP: remoteIP,
                                     requestPrincipal: requestPrincipal, mtls: mtls)
        return (peer, failure)
    }

    enum DestinationKey: String, CaseIterable { case namespace, labels, port, ip }

    mutating func destination(_ location: FieldLocation) throws(JSONParseError) -> (CheckRequest.Workload, RequestError?) {
        var workload = CheckRequest.Workload()
        let failure = try readObject(DestinationKey.self, { location.field("destination", $0) }) {
            (decoder: inout RequestBodyDecoder, key, members) throws(JSONParseError) in
            let field = location.field("destination", key.rawValue)
            switch key {
            case .labels:
                if let labels = try decoder.stringMap(key.rawValue, &members, caseInsensitive: false,
                                                      { location.field("destination", "labels", $0) }, field) {
                    workload.labels = labels
                }
            case .namespace:
                try decoder.scalar(key.rawValue, &members) { (value) throws(RequestError) in
                    workload.namespace = try CheckRequest.optionalString(value, field)
                }
            case .ip:
                try decoder.scalar(key.rawValue, &members) { (value) throws(RequestError) in
                    workload.ip = try CheckRequest.optionalIP(value, field)
                }
            case .port:
                // The written form matters too (`8080`, not `8.08e3`): the lexeme is read back after the value.
                let start = decoder.cursor.index
                let value = try decoder.cursor.parseValue()
                let lexeme = UnsafeBufferPointer(rebasing: decoder.cursor.base[start..<decoder.cursor.index])
                do throws(RequestError) {
                    workload.port = try CheckRequest.optionalPort(value, field)
                    try CheckRequest.requireDigits(lexeme, field)
                } catch {
                    members.record(key.rawValue, error)
                }
            }
        }
        return (workload, failure)
    }

    enum HTTPKey: String, CaseIterable { case method, path, host, headers, claims }

    mutating func http(_ location: FieldLocation) throws(JSONParseError) -> (CheckRequest.HTTP, RequestError?) {
        var method: String?, target: String?, host: String?, claims: [String: JSONValue]?
        var headers: [String: String] = [:]
        let failure = try readObject(HTTPKey.self, { location.field("request", $0) }) {
            (decoder: inout RequestBodyDecoder, key, members) throws(JSONParseError) in
            let field = location.field("request", key.rawValue)
            if case .headers = key {
                if let map = try decoder.stringMap(key.rawValue, &members, caseInsensitive: true,
                                                   { location.field("request", "headers", $0) }, field) {
                    headers = map
                }
                return
            }
            try decoder.scalar(key.rawValue, &members) { (value) throws(RequestError) in
                switch key {
                case .method:
                    method = try CheckRequest.optionalString(value, field)
                    if let method, !HTTPMethod.isToken(method) {
                        throw RequestError.invalidRequest(
                            "\"\(method)\" is not an upper-case method token ([A-Z]+): Envoy refuses such a request with 400",
                            field: field)
                    }
                case .path: target = try CheckRequest.optionalString(value, field)
                case .host: host = try CheckRequest.optionalString(value, field)
                case .claims: claims = try CheckRequest.optionalObject(value, field)
                case .headers: preconditionFailure("read as a map above")
                }
            }
        }
        return (CheckRequest.HTTP(method: method, path: target, host: host, headers: headers, claims: claims), failure)
    }

    enum ConnectionKey: String, CaseIterable { case sni }

    mutating func connection(_ location: FieldLocation) throws(JSONParseError) -> (CheckRequest.Connection, RequestError?) {
        var connection = CheckRequest.Connection()
        let failure = try readObject(ConnectionKey.self, { location.field("connection", $0) }) {
            (decoder: inout RequestBodyDecoder, key, members) throws(JSONParseError) in
            let field = location.field("connection", key.rawValue)
            try decoder.scalar(key.rawValue, &members) { (value) throws(RequestError) in
                switch key {
                case .sni: connection.sni = try CheckRequest.optionalString(value, field)
                }
            }
        }
        return (connection, failure)
    }

    static func lowercasedHeaderName(_ name: String) -> String {
        name.utf8.contains(where: { ($0 >= 0x41 && $0 <= 0x5A) || $0 >= 0x80 }) ? name.lowercased() : name
    }

    /// `{str: str}` (labels, headers); `null` is the empty map. Nil when the value is wrong (recorded).
    mutating func stringMap(_ key: String, _ members: inout Members, caseInsensitive: Bool,
                            _ entryField: (String) -> String,
                            _ field: @autoclosure () -> String) throws(JSONParseError) -> [String: String]? {
        guard cursor.current == UInt8(ascii: "{") else {
            let value = try cursor.parseValue()
            if case .null = value { return [:] }
            members.record(key, CheckRequest.wrongType(value, field(), expected: "an object"))
            return nil
        }
        try cursor.enterContainer()
        // Labels are keyed by name; headers by lower-cased name (`originals` remembers the few names that
        // were not written in lower case, to tell a JSON duplicate from two spellings of one header).
        var result: [String: String] = [:]
        var originals: [String: String] = [:]
        var rejected: [String] = []
        var failure = FirstFailure()
        var first = true
        while try cursor.nextMember(first: &first) {
            let entry = try cursor.readKey()
            let name = entry.string(cursor.base)
            let value = try cursor.parseValue()
            if rejected.contains(name) { throw cursor.duplicateKey(name, at: entry.offset) }
            let stored = caseInsensitive ? Self.lowercasedHeaderName(name) : name
            if result[stored] != nil {
                let existingName = caseInsensitive ? originals[stored] ?? stored : stored
                if existingName == name { throw cursor.duplicateKey(name, at: entry.offset) }
                let (earlier, later) = existingName < name ? (existingName, name) : (name, existingName)
                failure.record(name, RequestError.invalidRequest(
                    "\"\(earlier)\" and \"\(later)\" name the same header (names are case-insensitive)",
                    field: entryField(stored)))
                rejected.append(name)
                continue
            }
            guard case .string(let text) = value else {
                failure.record(name, CheckRequest.wrongType(value, entryField(name), expected: "a string"))
                rejected.append(name)
                continue
            }
            if caseInsensitive && stored != name { originals[stored] = name }
            result[stored] = text
        }
        if let error = failure.error {
            members.record(key, error)
            return nil
        }
        return result
    }
}

/// Dotted field paths: `source.ip`, `[2].destination.port`.
enum FieldPath {
    static func join(_ path: String, _ key: String) -> String {
        path.isEmpty ? key : path + "." + key
    }
}

/// The members of a JSON object have no meaningful order (and a `JSONValue` object none at all); to
/// report the same error for the same request however it is written, the failure of the least key wins.
struct FirstFailure {
    private var key: String?
    private(set) var error: RequestError?

    mutating func record(_ key: String, _ error: RequestError) {
        if let current = self.key, current <= key { return }
        self.key = key
        self.error = error
    }
}

extension JSONValue {
    /// What kind of value this is, for error messages ("a string", "an array", ...).
    var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}
