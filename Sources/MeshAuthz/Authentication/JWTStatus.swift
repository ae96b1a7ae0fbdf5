/// Why a token failed, with the text Envoy's jwt_authn answers (jwt_verify_lib's status strings): the
/// `/ext_authz` body and the `/v1/check` reason carry it unchanged.
public enum JWTStatus: Error, Sendable, Hashable {
    case missing
    case expired
    case notYetValid
    case badFormat
    case headerBadBase64
    case headerBadJSON
    case headerBadAlg
    case headerAlgNotImplemented
    case headerBadKid
    case payloadBadBase64
    case payloadBadJSON
    case payloadNotString(String)
    case payloadNotInteger(String)
    case payloadAudNotString
    case signatureBadBase64
    case unknownIssuer
    case audienceNotAllowed
    case verificationFailed
    case ed25519SignatureWrongLength
    case kidAlgMismatch
    case jwksFetchFailed

    public var message: String {
        switch self {
        case .missing: return "Jwt is missing"
        case .expired: return "Jwt is expired"
        case .notYetValid: return "Jwt not yet valid"
        case .badFormat: return "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
        case .headerBadBase64: return "Jwt header is an invalid Base64url encoded"
        case .headerBadJSON: return "Jwt header is an invalid JSON"
        case .headerBadAlg: return "Jwt header [alg] field is required and must be a string"
        case .headerAlgNotImplemented: return "Jwt header [alg] is not supported"
        case .headerBadKid: return "Jwt header [kid] field is not a string"
        case .payloadBadBase64: return "Jwt payload is an invalid Base64url encoded"
        case .payloadBadJSON: return "Jwt payload is an invalid JSON"
        case .payloadNotString(let field): return "Jwt payload [\(field)] field is not a string"
        case .payloadNotInteger(let field): return "Jwt payload [\(field)] field is not an integer"
        case .payloadAudNotString: return "Jwt payload [aud] field is not a string or string list"
        case .signatureBadBase64: return "Jwt signature is an invalid Base64url encoded"
        case .unknownIssuer: return "Jwt issuer is not configured"
        case .audienceNotAllowed: return "Audiences in Jwt are not allowed"
        case .verificationFailed: return "Jwt verification fails"
        case .ed25519SignatureWrongLength: return "Jwt ED25519 signature is wrong length"
        case .kidAlgMismatch: return "Jwks doesn't have key to match kid or alg from Jwt"
        case .jwksFetchFailed: return "Jwks remote fetch is failed"
        }
    }

    /// Envoy answers 403 for a token whose audience is not allowed, 401 for every other failure.
    public var httpStatus: Int { self == .audienceNotAllowed ? 403 : 401 }

    /// A short fixed label for metrics (bounded cardinality).
    public var metricLabel: String {
        switch self {
        case .missing: return "missing"
        case .expired: return "expired"
        case .notYetValid: return "not_yet_valid"
        case .badFormat, .headerBadBase64, .headerBadJSON, .headerBadAlg, .headerBadKid, .payloadBadBase64,
             .payloadBadJSON, .payloadNotString, .payloadNotInteger, .payloadAudNotString, .signatureBadBase64:
            return "malformed"
        case .headerAlgNotImplemented: return "unsupported_alg"
        case .unknownIssuer: return "unknown_issuer"
        case .audienceNotAllowed: return "audience_not_allowed"
        case .verificationFailed, .ed25519SignatureWrongLength: return "bad_signature"
        case .kidAlgMismatch: return "no_matching_key"
        case .jwksFetchFailed: return "jwks_unavailable"
        }
    }
}
