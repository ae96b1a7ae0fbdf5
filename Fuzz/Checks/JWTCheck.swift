import MeshAuthz

/// A token, as a client sends it in `Authorization: Bearer`, through `JWT.parse` and the whole jwt_authn
/// step (`RequestAuthenticator`) of a fixed RequestAuthentication with one ES256 key. Beyond not crashing:
/// - a parsed token has an implemented `alg`, and its `payloadBase64URL` is the token's second section;
/// - only an ES256 token can verify against the (ES256, P-256) key: never `alg: none`, never HMAC keyed
///   with the public key, whatever the bytes;
/// - a request that passes with an identity carries a token (as Envoy 1.40 extracts it from the header: from
///   the first base64url character or dot after the prefix to the end) that parses, verifies on its own against the
///   key, names the configured issuer, is within its time window and has the configured audience; and
///   the identity is that token's `iss` and `sub`;
/// - the verified-token cache changes nothing: the same request again, with the cache filled by the first,
///   gets the same verdict and identity.
public enum JWTCheck {
    /// The seeds in `Fuzz/corpus/JWT` are signed by this key's private half (its scalar is derived from a
    /// public phrase: the key signs fuzz seeds only).
    static let jwks = #"{"keys": [{"kty": "EC", "crv": "P-256", "kid": "fuzz", "alg": "ES256", "x": "V1Nm9ZczW1-yUUSmY5ZrpCSvr2VAjVRyvpoEXxUm-Fo", "y": "1Ad1UMVCXPvgNsOdpAfjNjMAL7dZZyqeX_sUEP7fyI4"}]}"#
    static let issuer = "https://fuzz.test"
    static let now: Int64 = 1_700_000_000

    /// The RequestAuthentication, its authenticator and the key, made for each input. Not kept in statics:
    /// LeakSanitizer (`make asan` replays the corpus) reports swift-crypto keys still held at exit, their
    /// references being tagged enum payloads it cannot follow.
    struct Fixture {
        let authenticator: RequestAuthenticator
        let rules: [JWTRule]
        let keys: JWKS

        init() {
            let text = """
                apiVersion: security.istio.io/v1
                kind: RequestAuthentication
                metadata: {name: jwt, namespace: fuzz}
                spec:
                  jwtRules:
                  - issuer: \(JWTCheck.issuer)
                    audiences: [api, web]
                    jwks: '\(JWTCheck.jwks)'
                    outputClaimToHeaders: [{header: x-tenant, claim: org.tenant}]
                """
            guard case .success(let set) = PolicyLoader.load([PolicyFile(name: "jwt.yaml", text: text)]),
                  case .success(let keys) = JWKS.parse(JWTCheck.jwks) else {
                preconditionFailure("the fuzz RequestAuthentication does not load")
            }
            authenticator = RequestAuthenticator(set)
            rules = authenticator.rules(for: CheckRequest.Workload(namespace: "fuzz", labels: [:]))
            self.keys = keys
        }
    }

    public static func check(_ input: UnsafeBufferPointer<UInt8>) -> [String] {
        let fixture = Fixture()
        let (authenticator, rules, keys) = (fixture.authenticator, fixture.rules, fixture.keys)
        var problems: [String] = []
        let token = String(decoding: input, as: UTF8.self)
        let parsed = JWT.parse(token)
        if case .success(let jwt) = parsed {
            if !["ES256", "ES384", "ES512", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"]
                .contains(jwt.alg) {
                problems.append("parsed with alg \(jwt.alg)")
            }
            let sections = token.split(separator: ".", omittingEmptySubsequences: false)
            if sections.count != 3 || jwt.payloadBase64URL != String(sections[1]) {
                problems.append("payloadBase64URL \(jwt.payloadBase64URL) is not the token's second section")
            }
            if jwt.verifySignature(with: keys) == nil && jwt.alg != "ES256" {
                problems.append("an \(jwt.alg) token verified against the ES256 key")
            }
        }

        let request = AuthenticationInput(method: "GET", target: "/", host: "fuzz.test",
                                          headers: [("authorization", "Bearer " + token)])
        let cache = SeenTokens()
        let first = authenticator.authenticate(request, rules: rules, now: now, cache: cache)
        switch first.verdict {
        case .notApplicable:
            problems.append("the RequestAuthentication did not apply")
        case .failed:
            if first.identity != nil { problems.append("a failed request has an identity") }
        case .passed:
            guard let identity = first.identity else { break }  // no token found where the rule reads
            let sent = extracted(input)
            guard case .success(let jwt) = JWT.parse(sent) else {
                problems.append("passed with an identity, but the token \(sent) does not parse")
                break
            }
            if jwt.verifySignature(with: keys) != nil { problems.append("passed, but the signature does not verify") }
            if jwt.checkTime(now: now) != nil { problems.append("passed outside the token's time window") }
            if jwt.issuer != issuer || identity.issuer != issuer { problems.append("passed for issuer \(jwt.issuer ?? "nil")") }
            if !jwt.audiences.contains(where: { $0 == "api" || $0 == "web" }) { problems.append("passed without an allowed audience") }
            if identity.subject != jwt.subject { problems.append("identity subject \(identity.subject ?? "nil") != token's \(jwt.subject ?? "nil")") }
        }
        let again = authenticator.authenticate(request, rules: rules, now: now, cache: cache)
        if again.verdict != first.verdict || again.identity != first.identity {
            problems.append("with the cache: \(again.verdict) \(String(describing: again.identity)) instead of \(first.verdict) \(String(describing: first.identity))")
        }
        return problems
    }

    /// Envoy 1.40's `extractJWT` on `Bearer <input>`, written again: from the first base64url-or-dot byte after
    /// the prefix to the end of the (trimmed) header value; the whole value when there is no such byte.
    static func extracted(_ input: UnsafeBufferPointer<UInt8>) -> String {
        let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.".utf8)
        var value = Array("Bearer ".utf8) + Array(String(decoding: input, as: UTF8.self).utf8)
        while let last = value.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") { value.removeLast() }
        guard let start = value[7...].firstIndex(where: allowed.contains) else {
            return String(decoding: value, as: UTF8.self)
        }
        return String(decoding: value[start...], as: UTF8.self)
    }

    /// The verified-token cache, as the server's (kept by exact token text), for one input.
    final class SeenTokens: VerifiedTokenCache, @unchecked Sendable {  // one input, one thread
        var tokens: [String: JWT] = [:]
        func lookup(token: String) -> JWT? { tokens[token] }
        func insert(token: String, _ jwt: JWT) { tokens[token] = jwt }
    }
}
