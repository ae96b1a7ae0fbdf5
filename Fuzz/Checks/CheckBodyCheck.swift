import MeshAuthz

/// `CheckRequest.decodeBody` (the `/v1/check` body reader) on arbitrary bytes. Beyond not crashing:
/// - a body `JSONParser` refuses is `invalid_json`, and one it accepts is never `invalid_json` (the one-pass
///   reader promises the parser's strictness);
/// - an accepted object, parsed and written back out by `JSONWriter`, decodes to the same request (the
///   reader does not depend on layout, escapes or key order), and an accepted array gives one request per
///   element, at most `maxBatchSize`;
/// - a refusal names a known code.
public enum CheckBodyCheck {
    public static func check(_ input: UnsafeBufferPointer<UInt8>) -> [String] {
        let bytes = Array(input)
        var problems: [String] = []
        let parsed: JSONValue?
        do { parsed = try JSONParser.parse(bytes) } catch { parsed = nil }
        let decoded: Result<CheckRequestBody, RequestError>
        do throws(RequestError) { decoded = .success(try CheckRequest.decodeBody(bytes)) } catch { decoded = .failure(error) }
        switch (parsed, decoded) {
        case (nil, .success):
            problems.append("JSONParser refuses \(show(bytes)) but decodeBody accepts it")
        case (nil, .failure(let error)) where error.code != RequestError.invalidJSON:
            problems.append("JSONParser refuses \(show(bytes)) but decodeBody says \(error)")
        case (_?, .failure(let error)) where error.code == RequestError.invalidJSON:
            problems.append("JSONParser accepts \(show(bytes)) but decodeBody says \(error)")
        case (_?, .failure(let error)) where error.code != RequestError.invalidRequest:
            problems.append("unknown error code for \(show(bytes)): \(error)")
        case (.object?, .success(.single(let request))):
            let rewritten = try? CheckRequest.decodeBody(parsed!.jsonBytes)
            if rewritten == nil {
                problems.append("decodeBody refuses the rewritten form of what it accepts: \(show(bytes))")
            } else if rewritten != .single(request) {
                problems.append("the rewritten form decodes differently: \(show(bytes))")
            }
        case (.array(let elements)?, .success(.batch(let requests))):
            if elements.count != requests.count || requests.count > CheckRequest.maxBatchSize {
                problems.append("\(elements.count) elements, \(requests.count) requests for \(show(bytes))")
            }
        case (_?, .success(let body)):
            problems.append("decodeBody gave \(body) for a JSON value of another shape: \(show(bytes))")
        default:
            break
        }
        return problems
    }
}
