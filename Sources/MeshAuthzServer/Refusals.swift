import MicroHTTPD

/// Answers to requests the HTTP layer refuses before the API sees them (too large, bad framing).
///
/// The API's own endpoints keep HTTP's statuses (431, 413, 400) and plain-text bodies. The gateway entry point does not: nginx
/// `auth_request` turns any status other than 2xx, 401 and 403 into a 500 for the client, and Envoy and
/// Traefik read anything but 200 as a denial without a reason. So under `/ext_authz` a refusal is a
/// denial like any other: 403 with `x-meshauthz-decision: DENY` and the reason.
public enum Refusals {
    /// The `HTTPServerConfiguration.refusal` hook of the main listener.
    @Sendable public static func response(_ refusal: HTTPRefusal, rawTarget: String) -> HTTPResponse {
        // The API's own endpoints: the HTTP layer's answer as is (plain text, as openapi.yaml documents).
        guard isGatewayTarget(rawTarget) else { return refusal.defaultResponse }
        let body = errorBody(code: code(refusal), message: refusal.description)
        return HTTPResponse.json(bytes: body, status: 403, headers: [
            ("x-meshauthz-decision", "DENY"),
            ("x-meshauthz-reason", "request refused: \(refusal.description)"),
        ])
    }

    static func code(_ refusal: HTTPRefusal) -> String {
        switch refusal {
        case .headersTooLarge: return "headers_too_large"
        case .bodyTooLarge: return "body_too_large"
        case .badFraming: return "bad_framing"
        }
    }

    /// `/ext_authz`, `/ext_authz?...` or `/ext_authz/...`, as the raw target is sent (the routes of the
    /// gateway entry point). Anything else, `/ext_authzX` included, is an API endpoint.
    static func isGatewayTarget(_ rawTarget: String) -> Bool {
        let prefix = "/ext_authz".utf8
        let target = rawTarget.utf8
        guard target.starts(with: prefix) else { return false }
        let rest = target.dropFirst(prefix.count)
        guard let next = rest.first else { return true }
        return next == UInt8(ascii: "?") || next == UInt8(ascii: "/")
    }

    /// `{"error":{"code":...,"message":...}}`, the shape of the API's errors. Messages are the refusal's
    /// own fixed texts; they are escaped anyway.
    static func errorBody(code: String, message: String) -> [UInt8] {
        Array("{\"error\":{\"code\":\"\(escaped(code))\",\"message\":\"\(escaped(message))\"}}".utf8)
    }

    static func escaped(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\u{0}"..."\u{1F}": out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
