import Crypto
import Foundation
@testable import MeshAuthz

/// Tokens signed here with swift-crypto (ES256: fast), for an issuer whose key set a RequestAuthentication
/// names inline.
struct TestIssuer {
    let issuer: String
    let kid: String
    let key = P256.Signing.PrivateKey()

    init(_ issuer: String = "https://issuer.test", kid: String = "k1") {
        self.issuer = issuer
        self.kid = kid
    }

    var jwks: String {
        let raw = key.publicKey.rawRepresentation
        let x = Base64URL.encode(raw.prefix(32)), y = Base64URL.encode(raw.suffix(32))
        return #"{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","kid":"\#(kid)","x":"\#(x)","y":"\#(y)"}]}"#
    }

    /// A token over `payloadJSON` as given (so tests control every byte), `iss` not added.
    func sign(payloadJSON: String, header: String? = nil) -> String {
        let head = header ?? #"{"alg":"ES256","typ":"JWT","kid":"\#(kid)"}"#
        let input = Base64URL.encode(Array(head.utf8)) + "." + Base64URL.encode(Array(payloadJSON.utf8))
        let signature = try! key.signature(for: Array(input.utf8))
        return input + "." + Base64URL.encode(signature.rawRepresentation)
    }

    /// A token for `claims` (JSON members, without braces) with this issuer's `iss`.
    func token(_ members: String) -> String {
        sign(payloadJSON: #"{"iss":"\#(issuer)"\#(members.isEmpty ? "" : ",")\#(members)}"#)
    }

    /// A RequestAuthentication document for `app: api` in namespace `core`.
    func requestAuthentication(name: String = "jwt", extra: String = "") -> String {
        """
        apiVersion: security.istio.io/v1
        kind: RequestAuthentication
        metadata: {name: \(name), namespace: core}
        spec:
          selector: {matchLabels: {app: api}}
          jwtRules:
          - issuer: \(issuer)
            jwks: '\(jwks)'
        \(extra)
        """
    }
}
