import MeshAuthz
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

    /// `/ext_authz`, `/ext_authz?...` or `/ext_authz/...`: the API's own routing of the gateway entry point.
    static func isGatewayTarget(_ rawTarget: String) -> Bool {
        switch API.extAuthzTarget(rawTarget) {
        case .bare, .forwarded: return true
        case .other: return false
        }
    }

    /// `{"error":{"code":...,"message":...,"field":null}}`, the API's error shape, written by the same writer.
    static func errorBody(code: String, message: String) -> [UInt8] {
        RequestError(code: code, message: message).jsonBytes
    }
}
