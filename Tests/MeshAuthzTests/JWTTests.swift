import Foundation
import Testing
@testable import MeshAuthz

/// Token parsing, time and audience checks, token locations and the several-rules requirement, each table
/// row an input Envoy was seen (or its source read) to answer this way.
@Suite struct JWTTests {
    static let issuer = TestIssuer()
    static let now: Int64 = 2_000_000_000

    struct ParseCase: CustomStringConvertible, Sendable {
        let name: String
        let token: String
        let status: JWTStatus?
        var description: String { name }
    }

    static func b64(_ text: String) -> String { Base64URL.encode(Array(text.utf8)) }
    static let head = b64(#"{"alg":"ES256"}"#)
    static let body = b64(#"{"iss":"i","sub":"s"}"#)

    static let parseCases: [ParseCase] = [
        ParseCase(name: "garbage", token: "garbage", status: .badFormat),
        ParseCase(name: "two sections", token: "\(head).\(body)", status: .badFormat),
        ParseCase(name: "empty signature", token: "\(head).\(body).", status: .badFormat),
        ParseCase(name: "four sections", token: "\(head).\(body).c2ln.c2ln", status: .badFormat),
        ParseCase(name: "bad base64 header", token: "!!.\(body).c2ln", status: .headerBadBase64),
        ParseCase(name: "standard base64 alphabet", token: "a+b/.\(body).c2ln", status: .headerBadBase64),
        ParseCase(name: "header not JSON", token: "\(b64("{nope")).\(body).c2ln", status: .headerBadJSON),
        ParseCase(name: "header an array", token: "\(b64("[1]")).\(body).c2ln", status: .headerBadJSON),
        ParseCase(name: "no alg", token: "\(b64("{}")).\(body).c2ln", status: .headerBadAlg),
        ParseCase(name: "alg a number", token: "\(b64(#"{"alg":1}"#)).\(body).c2ln", status: .headerBadAlg),
        ParseCase(name: "alg none", token: "\(b64(#"{"alg":"none"}"#)).\(body).c2ln", status: .headerAlgNotImplemented),
        ParseCase(name: "alg lower-case", token: "\(b64(#"{"alg":"es256"}"#)).\(body).c2ln", status: .headerAlgNotImplemented),
        ParseCase(name: "kid a number", token: "\(b64(#"{"alg":"ES256","kid":7}"#)).\(body).c2ln", status: .headerBadKid),
        ParseCase(name: "payload bad base64", token: "\(head).*.c2ln", status: .payloadBadBase64),
        ParseCase(name: "payload not JSON", token: "\(head).\(b64("x")).c2ln", status: .payloadBadJSON),
        ParseCase(name: "iss a number", token: "\(head).\(b64(#"{"iss":1}"#)).c2ln", status: .payloadNotString("iss")),
        ParseCase(name: "sub a list", token: "\(head).\(b64(#"{"sub":[]}"#)).c2ln", status: .payloadNotString("sub")),
        ParseCase(name: "exp a string", token: "\(head).\(b64(#"{"exp":"1"}"#)).c2ln", status: .payloadNotInteger("exp")),
        ParseCase(name: "nbf a fraction", token: "\(head).\(b64(#"{"nbf":1.5}"#)).c2ln", status: .payloadNotInteger("nbf")),
        ParseCase(name: "iat negative", token: "\(head).\(b64(#"{"iat":-1}"#)).c2ln", status: .payloadNotInteger("iat")),
        ParseCase(name: "jti an object", token: "\(head).\(b64(#"{"jti":{}}"#)).c2ln", status: .payloadNotString("jti")),
        ParseCase(name: "aud a number", token: "\(head).\(b64(#"{"aud":1}"#)).c2ln", status: .payloadAudNotString),
        ParseCase(name: "aud list with a number", token: "\(head).\(b64(#"{"aud":["a",1]}"#)).c2ln", status: .payloadAudNotString),
        ParseCase(name: "signature bad base64", token: "\(head).\(body).%%", status: .signatureBadBase64),
        ParseCase(name: "well formed", token: "\(head).\(body).c2ln", status: nil),
        ParseCase(name: "padded sections", token: "\(b64(#"{"alg":"ES256" }"#))==.\(body).c2ln", status: nil),
        ParseCase(name: "padding where none is due", token: "\(head)=.\(body).c2ln", status: .headerBadBase64),
    ]

    @Test(arguments: parseCases)
    func parsing(_ c: ParseCase) {
        switch JWT.parse(c.token) {
        case .success: #expect(c.status == nil, "\(c.name): parsed, expected \(String(describing: c.status))")
        case .failure(let status): #expect(status == c.status, "\(c.name): \(status.message)")
        }
    }

    struct TimeCase: CustomStringConvertible, Sendable {
        let claims: String
        let status: JWTStatus?
        var description: String { claims }
    }

    /// Envoy's 60 s skew on both sides, `exp` 0 meaning none.
    static let timeCases: [TimeCase] = [
        TimeCase(claims: #""exp":\#(now)"#, status: nil),
        TimeCase(claims: #""exp":\#(now - 60)"#, status: nil),
        TimeCase(claims: #""exp":\#(now - 61)"#, status: .expired),
        TimeCase(claims: #""nbf":\#(now + 60)"#, status: nil),
        TimeCase(claims: #""nbf":\#(now + 61)"#, status: .notYetValid),
        TimeCase(claims: #""exp":0"#, status: nil),
        TimeCase(claims: #""nbf":\#(now + 61),"exp":1"#, status: .notYetValid),
    ]

    @Test(arguments: timeCases)
    func timeConstraints(_ c: TimeCase) throws {
        let jwt = try JWT.parse(Self.issuer.token(c.claims)).get()
        #expect(jwt.checkTime(now: Self.now) == c.status)
    }

    @Test func audiencesCompareWithoutSchemeAndTrailingSlash() {
        #expect(AuthenticationRun.audiencesAllowed(["https://api.test/"], ["api.test"]))
        #expect(AuthenticationRun.audiencesAllowed(["api.test"], ["http://api.test"]))
        #expect(AuthenticationRun.audiencesAllowed([], []))
        #expect(!AuthenticationRun.audiencesAllowed([], ["api.test"]))
        #expect(!AuthenticationRun.audiencesAllowed(["other"], ["api.test"]))
    }

    struct LocationCase: CustomStringConvertible, Sendable {
        let name: String
        let headers: [(String, String)]
        let target: String
        let found: [String]
        var description: String { name }
    }

    static let locationCases: [LocationCase] = [
        LocationCase(name: "Bearer", headers: [("authorization", "Bearer a.b.c")], target: "/", found: ["a.b.c"]),
        LocationCase(name: "lower-case bearer", headers: [("authorization", "bearer a.b.c")], target: "/", found: []),
        LocationCase(name: "prefix mid-value", headers: [("authorization", "Basic eA==, Bearer a.b.c")], target: "/", found: ["a.b.c"]),
        LocationCase(name: "junk after prefix skipped", headers: [("authorization", "Bearer !!!a.b.c")], target: "/", found: ["a.b.c"]),
        LocationCase(name: "Bearer and spaces only", headers: [("authorization", "Bearer   ")], target: "/", found: []),
        LocationCase(name: "two headers", headers: [("authorization", "Bearer a.b.c"), ("authorization", "Bearer d.e.f")], target: "/", found: ["a.b.c", "d.e.f"]),
        LocationCase(name: "access_token", headers: [], target: "/x?y=1&access_token=a.b%2Ec", found: ["a.b.c"]),
        LocationCase(name: "first access_token", headers: [], target: "/x?access_token=1&access_token=2", found: ["1"]),
        LocationCase(name: "header before param", headers: [("authorization", "Bearer h")], target: "/?access_token=p", found: ["h", "p"]),
    ]

    @Test(arguments: locationCases)
    func defaultLocations(_ c: LocationCase) throws {
        let rule = JWTRule(issuer: "i", keys: .inline(JWKS(keys: [])), location: SourceLocation(file: "f", line: 1, column: 1))
        let input = AuthenticationInput(method: "GET", target: c.target, host: "h", headers: c.headers.map { (name: $0.0, value: $0.1) })
        #expect(TokenExtractor([rule]).extract(input).map(\.token) == c.found)
    }

    @Test func cookiesAreParsedAsEnvoyDoes() {
        let cookies = TokenExtractor.cookies(["a=1; session=\"x.y.z\";b", "session=second; c=3"])
        #expect(cookies == ["a": "1", "session": "x.y.z", "c": "3"])
    }

    // MARK: Several rules (istiod's requirement)

    static let one = TestIssuer("https://one.test", kid: "1")
    static let two = TestIssuer("https://two.test", kid: "2")

    static func authenticator(_ text: String) throws -> (AuthenticatedCheck, PolicySet) {
        let set = try PolicyLoader.load([PolicyFile(name: "p.yaml", text: text)]).get()
        return (AuthenticatedCheck(set), set)
    }

    static func request(_ headers: [String: String], path: String = "/") -> CheckRequest {
        CheckRequest(destination: .init(namespace: "core", labels: ["app": "api"]),
                     request: .init(method: "GET", path: path, headers: headers))
    }

    static func twoRules(secondLocation: String) -> String {
        """
        apiVersion: security.istio.io/v1
        kind: RequestAuthentication
        metadata: {name: jwt, namespace: core}
        spec:
          jwtRules:
          - issuer: \(one.issuer)
            jwks: '\(one.jwks)'
          - issuer: \(two.issuer)
            jwks: '\(two.jwks)'
        \(secondLocation)
        """
    }

    @Test func withTwoRulesAGarbageTokenElsewhereIsIgnoredWhenTheOtherValidates() throws {
        let (check, set) = try Self.authenticator(Self.twoRules(secondLocation: "    fromHeaders: [{name: x-two}]"))
        let reference = ReferenceEvaluator(set)
        let good = Self.one.token(#""sub":"alice""#)
        let (decision, result) = try check.decide(Self.request(["authorization": "Bearer \(good)", "x-two": "garbage"]),
                                                   now: Self.now, evaluate: reference.evaluate)
        #expect(decision.allowed, "\(decision.reason)")
        #expect(result?.identity?.requestPrincipal == "\(Self.one.issuer)/alice")
        // the garbage alone is a 401: "every provider's token valid or absent"
        let (alone, _) = try check.decide(Self.request(["x-two": "garbage"]), now: Self.now, evaluate: reference.evaluate)
        #expect(alone.stage == .requestAuthentication && alone.reason.contains("Header.Payload.Signature"))
    }

    /// Envoy 1.40's `extractJWT`, recorded from a real Envoy 1.40 with jwt_authn: after the prefix, what precedes
    /// the first base64url character or dot is skipped, and the token runs to the end of the value.
    @Test(arguments: [("Bearer  TOKEN", nil), ("Bearer ,TOKEN", nil), ("Bearer TOKEN ", nil),
                      ("Bearer TOKEN, Bearer other", "Jwt signature is an invalid Base64url encoded")] as [(String, String?)])
    func theTokenRunsFromItsFirstCharacterToTheEndOfTheValue(_ value: String, _ rejection: String?) throws {
        let (check, set) = try Self.authenticator(Self.twoRules(secondLocation: ""))
        let token = Self.one.token(#""sub":"alice""#)
        let (decision, result) = try check.decide(Self.request(["authorization": value.replacingOccurrences(of: "TOKEN", with: token)]),
                                                   now: Self.now, evaluate: ReferenceEvaluator(set).evaluate)
        if let rejection {
            #expect(decision.stage == .requestAuthentication && decision.reason.contains(rejection), "\(decision.reason)")
        } else {
            #expect(decision.stage != .requestAuthentication, "\(decision.reason)")
            #expect(result?.identity?.requestPrincipal == "\(Self.one.issuer)/alice")
        }
    }

    @Test func withTwoIssuersInTheSameLocationTheFirstByIssuerIsTheIdentity() throws {
        let (check, set) = try Self.authenticator(Self.twoRules(secondLocation: ""))
        let reference = ReferenceEvaluator(set)
        let first = Self.one.token(#""sub":"one-user""#), second = Self.two.token(#""sub":"two-user""#)
        for order in [[first, second], [second, first]] {
            let headers = ["authorization": "Bearer \(order[0])", "x": "1"]
            var request = Self.request(headers, path: "/?access_token=\(order[1])")
            request.request.headers = headers
            let (decision, result) = try check.decide(request, now: Self.now, evaluate: reference.evaluate)
            #expect(decision.allowed)
            #expect(result?.identity?.requestPrincipal == "\(Self.one.issuer)/one-user")
        }
        // a token of an issuer no rule names
        let stranger = TestIssuer("https://evil.test").token(#""sub":"x""#)
        let (refused, _) = try check.decide(Self.request(["authorization": "Bearer \(stranger)"]), now: Self.now,
                                            evaluate: reference.evaluate)
        #expect(refused.reason.hasSuffix("Jwt issuer is not configured"))
    }

    @Test func spaceDelimitedClaimsAreSplit() throws {
        let text = Self.one.requestAuthentication(extra: "    spaceDelimitedClaims: [roles]")
        let (check, _) = try Self.authenticator(text)
        let token = Self.one.token(#""sub":"a","roles":"x y","scope":"r w","other":"p q","nested":{"roles":"m n"}"#)
        let input = AuthenticationInput(method: "GET", target: "/", host: nil, headers: [("authorization", "Bearer \(token)")])
        let rules = check.authenticator.rules(for: .init(namespace: "core", labels: ["app": "api"]))
        let claims = try #require(check.authenticator.authenticate(input, rules: rules, now: Self.now).identity?.claims)
        #expect(claims["roles"] == .array([.string("x"), .string("y")]))
        #expect(claims["scope"] == .array([.string("r"), .string("w")]))
        #expect(claims["other"] == .string("p q"))
        #expect(claims["nested"]?["roles"] == .string("m n"))
    }

    @Test func targetRefAndOtherNamespacesDoNotApplyToASidecar() throws {
        let text = """
            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata: {name: gw, namespace: core}
            spec:
              targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: edge}]
              jwtRules: [{issuer: a, jwksUri: "https://a.test/k"}]
            ---
            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata: {name: other, namespace: billing}
            spec:
              jwtRules: [{issuer: b, jwksUri: "https://b.test/k"}]
            ---
            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata: {name: mesh, namespace: istio-system}
            spec:
              jwtRules: [{issuer: c, jwksUri: "https://c.test/k"}]
            """
        let (check, _) = try Self.authenticator(text)
        let sidecar = check.authenticator.rules(for: .init(namespace: "core", labels: ["app": "api"]))
        #expect(sidecar.map(\.issuer) == ["c"])
        let gateway = check.authenticator.rules(for: .init(namespace: "core", labels: ["gateway.networking.k8s.io/gateway-name": "edge"]))
        #expect(gateway.map(\.issuer) == ["a", "c"])
    }

    /// Neither `jwks` nor `jwksUri`: istiod's OpenID discovery, from the issuer without a trailing `/`.
    @Test func aRuleWithoutKeysDiscoversThemFromTheIssuer() throws {
        let text = """
            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata: {name: jwt, namespace: core}
            spec:
              jwtRules:
              - issuer: "https://auth.test/tenants/"
              - issuer: "https://other.test"
                jwksUri: "https://other.test/keys"
            """
        let (_, set) = try Self.authenticator(text)
        let rules = set.requestAuthentications[0].jwtRules
        #expect(rules[0].remoteURI == "https://auth.test/tenants/.well-known/openid-configuration" && rules[0].discoversKeys)
        #expect(rules[1].remoteURI == "https://other.test/keys" && !rules[1].discoversKeys)
        // Until the server has fetched them, the discovered keys are missing: the issuer's tokens fail.
        let (check, discovering) = try Self.authenticator("""
            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata: {name: jwt, namespace: core}
            spec:
              jwtRules: [{issuer: "\(Self.one.issuer)"}]
            """)
        let token = Self.one.token(#""sub":"a""#)
        let (decision, _) = try check.decide(Self.request(["authorization": "Bearer \(token)"]), now: Self.now,
                                             evaluate: ReferenceEvaluator(discovering).evaluate)
        #expect(decision.stage == .requestAuthentication)
    }

    @Test func aRemoteKeySetThatNeverLoadedFailsItsTokens() throws {
        let text = """
            apiVersion: security.istio.io/v1
            kind: RequestAuthentication
            metadata: {name: jwt, namespace: core}
            spec:
              jwtRules: [{issuer: "\(Self.one.issuer)", jwksUri: "https://one.test/keys"}]
            """
        let (check, set) = try Self.authenticator(text)
        let token = Self.one.token(#""sub":"a""#)
        let (noKeys, _) = try check.decide(Self.request(["authorization": "Bearer \(token)"]), now: Self.now,
                                           evaluate: ReferenceEvaluator(set).evaluate)
        #expect(noKeys.stage == .requestAuthentication)
        let keys = try JWKS.parse(Self.one.jwks).get()
        let (withKeys, _) = try check.decide(Self.request(["authorization": "Bearer \(token)"]), now: Self.now,
                                             remoteKeys: { $0 == "https://one.test/keys" ? keys : nil },
                                             evaluate: ReferenceEvaluator(set).evaluate)
        #expect(withKeys.allowed)
    }

    struct JWKSCase: CustomStringConvertible, Sendable {
        let json: String
        let problem: String?
        var description: String { json }
    }

    static let jwksCases: [JWKSCase] = [
        JWKSCase(json: "nope", problem: "not valid JSON"),
        JWKSCase(json: "[]", problem: "JSON object"),
        JWKSCase(json: "{}", problem: "no \"keys\""),
        JWKSCase(json: #"{"keys":{}}"#, problem: "not an array"),
        JWKSCase(json: #"{"keys":[]}"#, problem: "no key"),
        JWKSCase(json: #"{"keys":[{"kty":"DSA"}]}"#, problem: "[kty] DSA is not supported"),
        JWKSCase(json: #"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#, problem: "2048"),
        JWKSCase(json: #"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}"#, problem: "not a point"),
        JWKSCase(json: #"{"keys":[{"kty":"EC","crv":"P-256","alg":"ES384","x":"AA","y":"AA"}]}"#, problem: "does not go with"),
        JWKSCase(json: #"{"keys":[{"kty":"OKP","crv":"X25519","x":"AA"}]}"#, problem: "Ed25519"),
        JWKSCase(json: #"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#, problem: nil),
    ]

    @Test(arguments: jwksCases)
    func keySets(_ c: JWKSCase) {
        switch JWKS.parse(c.json) {
        case .success: #expect(c.problem == nil)
        case .failure(let problem):
            #expect(c.problem.map { problem.message.contains($0) } ?? false, "\(problem.message)")
        }
    }

    @Test func anHS256TokenSignedWithThePublicKeyFindsNoKey() throws {
        let rsaJWKS = try #require(try? String(contentsOf: FixtureCase.fixturesDirectory.appendingPathComponent("jwt-oracle/j01-token-validation.yaml"), encoding: .utf8))
        #expect(rsaJWKS.contains("HS256"))  // the recorded case (j01) holds the real attack; this checks the rule
        let keys = try JWKS.parse(Self.one.jwks).get()
        let forged = Self.b64(#"{"alg":"HS256","kid":"1"}"#) + "." + Self.body + ".c2ln"
        #expect(try JWT.parse(forged).get().verifySignature(with: keys) == .kidAlgMismatch)
    }
}

/// Tampering, attacked byte by byte: every one-byte change, truncation and dot insertion of a valid token is
/// refused (with a status, no crash) unless it decodes to the very same header, payload and signature, which
/// base64url's unused low bits of a final character allow (Envoy's absl decoder ignores them too).
@Suite struct JWTTamperingTests {
    @Test func everyChangedByteIsRefused() throws {
        let issuer = TestIssuer("https://tamper.test")
        let set = try PolicyLoader.load([PolicyFile(name: "p.yaml", text: issuer.requestAuthentication())]).get()
        let authenticator = RequestAuthenticator(set)
        let rules = authenticator.rules(for: .init(namespace: "core", labels: ["app": "api"]))
        let token = issuer.token(#""sub":"alice","exp":4102444800"#)
        let original = Array(token.utf8)
        func verifies(_ bytes: [UInt8]) -> Bool {
            let input = AuthenticationInput(method: "GET", target: "/", host: nil,
                                            headers: [("authorization", "Bearer " + String(decoding: bytes, as: UTF8.self))])
            return authenticator.authenticate(input, rules: rules, now: 2_000_000_000).identity != nil
        }
        func decodesToOriginal(_ bytes: [UInt8]) -> Bool {
            let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
            let mine = original.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
            guard parts.count == 3 else { return false }
            return zip(parts, mine).allSatisfy { Base64URL.decode($0) != nil && Base64URL.decode($0) == Base64URL.decode($1) }
        }
        #expect(verifies(original))
        var accepted = 0, tried = 0
        let replacements: [UInt8] = Array("Aa0-_.=+/ ".utf8) + [0x00, 0x80]
        for i in original.indices {
            for replacement in replacements where replacement != original[i] {
                var changed = original
                changed[i] = replacement
                tried += 1
                if verifies(changed) {
                    accepted += 1
                    #expect(decodesToOriginal(changed), "byte \(i) -> \(replacement) verified a different token")
                }
            }
            var truncated = original
            truncated.removeSubrange(i...)
            #expect(!verifies(truncated) || truncated == original)
            var dotted = original
            dotted.insert(UInt8(ascii: "."), at: i)
            #expect(!verifies(dotted), "a dot at \(i) verified")
        }
        #expect(tried > 1000)
        // Only the last character of a segment can change without changing the bytes it encodes.
        #expect(accepted <= 3 * replacements.count)
    }
}
