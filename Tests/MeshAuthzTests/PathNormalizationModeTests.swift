import MeshAuthz
import Testing

/// The four normalization modes (`serve --path-normalization`), and a corpus of bypass attempts against
/// `DENY /admin*` + `ALLOW /public/*` judged under each mode by both engines.
struct PathNormalizationModeTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let target: String
        /// Expected `path?query` per mode, in `PathNormalizationMode.allCases` order (none, base, merge, decode); nil: refused.
        let expected: [String?]
        var testDescription: String { target }
        init(_ target: String, _ none: String?, _ base: String?, _ merge: String?, _ decode: String?) {
            self.target = target
            self.expected = [none, base, merge, decode]
        }
    }

    static let cases: [Case] = [
        Case("/a/b", "/a/b", "/a/b", "/a/b", "/a/b"),
        Case("/a//b", "/a//b", "/a//b", "/a/b", "/a/b"),
        Case("///a", "///a", "///a", "/a", "/a"),
        Case("/a/../b", "/a/../b", "/b", "/b", "/b"),
        Case("/a/..//b", "/a/..//b", "//b", "/b", "/b"),
        Case("/public/..%2fadmin", "/public/..%2fadmin", "/public/..%2fadmin", "/public/..%2fadmin", "/admin"),
        Case("/public/..%2Fadmin", "/public/..%2Fadmin", "/public/..%2Fadmin", "/public/..%2Fadmin", "/admin"),
        Case("/public/..%5cadmin", "/public/..%5cadmin", "/public/..%5cadmin", "/public/..%5cadmin", "/admin"),
        Case("/a%2f%2fb", "/a%2f%2fb", "/a%2f%2fb", "/a%2f%2fb", "/a/b"),
        Case("/a%252fb", "/a%252fb", "/a%252fb", "/a%252fb", "/a%252fb"),  // decoded once only
        Case("/a//b?x=//y", "/a//b?x=//y", "/a//b?x=//y", "/a/b?x=//y", "/a/b?x=//y"),  // the query is not touched
        Case("/a?x=%2f", "/a?x=%2f", "/a?x=%2f", "/a?x=%2f", "/a?x=%2f"),
        Case("/a#/../b", "/a", "/a", "/a", "/a"),
        Case("/a%00b", nil, nil, nil, nil),  // %00 is refused under every mode
        Case("/a%2F%00", nil, nil, nil, nil),
        Case("a/b", nil, nil, nil, nil),
        Case("/a\u{7F}", nil, nil, nil, nil),
        Case("/é", nil, nil, nil, nil),
    ]

    @Test(arguments: cases)
    func normalizes(_ test: Case) {
        for (mode, expected) in zip(PathNormalizationMode.allCases, test.expected) {
            #expect(PathNormalization.normalize(test.target, mode) == expected, "\(mode)")
        }
    }

    @Test(arguments: cases)
    func isIdempotent(_ test: Case) {
        for mode in PathNormalizationMode.allCases where mode != .none {
            guard let once = PathNormalization.normalize(test.target, mode) else { continue }
            #expect(PathNormalization.normalize(once, mode) == once, "\(mode)")
        }
    }

    // MARK: Bypass corpus

    static let policies = """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: deny-admin, namespace: default}
        spec:
          selector: {matchLabels: {app: web}}
          action: DENY
          rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: allow-public, namespace: default}
        spec:
          selector: {matchLabels: {app: web}}
          action: ALLOW
          rules: [{to: [{operation: {paths: ["/public/*"]}}]}]
        """

    enum Outcome: Sendable { case allow, deny, refused }

    struct Attempt: Sendable, CustomTestStringConvertible {
        let target: String
        /// Per mode: none, base, merge-slashes, decode-and-merge-slashes.
        let outcomes: [Outcome]
        var testDescription: String { target }
        init(_ target: String, _ outcomes: Outcome...) {
            self.target = target
            self.outcomes = outcomes
        }
    }

    /// What each mode decides. Under `base` (Istio's default) `/public/..%2fadmin` is allowed, as in Istio: a backend
    /// that decodes `%2F` then serves /admin. Only `decode-and-merge-slashes` denies it (see `PathNormalizationMode`).
    static let attempts: [Attempt] = [
        Attempt("/admin", .deny, .deny, .deny, .deny),
        Attempt("/public/x", .allow, .allow, .allow, .allow),
        Attempt("/public/../admin", .allow, .deny, .deny, .deny),
        Attempt("/public/./../admin", .allow, .deny, .deny, .deny),
        Attempt("/public/%2e%2e/admin", .allow, .deny, .deny, .deny),
        Attempt("/public/%2E%2E/admin", .allow, .deny, .deny, .deny),
        Attempt("/public/.%2e/admin", .allow, .deny, .deny, .deny),
        Attempt("/public\\..\\admin", .deny, .deny, .deny, .deny),
        Attempt("/%61dmin", .deny, .deny, .deny, .deny),
        Attempt("/public/..%2fadmin", .allow, .allow, .allow, .deny),
        Attempt("/public/..%2Fadmin", .allow, .allow, .allow, .deny),
        Attempt("/public/..%5cadmin", .allow, .allow, .allow, .deny),
        Attempt("/public/%2e%2e%2fadmin", .allow, .allow, .allow, .deny),
        Attempt("//admin", .deny, .deny, .deny, .deny),
        // Envoy normalizes before it merges slashes: `..` removes the empty segment, leaving /public/admin in
        // every mode (a backend that merges first would see /admin: a gap Istio's modes share).
        Attempt("/public//../admin", .allow, .allow, .allow, .allow),
        Attempt("/public/%2f../admin", .allow, .allow, .allow, .allow),
        Attempt("/admin%00", .refused, .refused, .refused, .refused),
        Attempt("/public/%00/../../admin", .refused, .refused, .refused, .refused),
        Attempt("/public/x#/../../admin", .allow, .allow, .allow, .allow),
        Attempt("/public/x?/../../admin", .allow, .allow, .allow, .allow),
        Attempt("/ADMIN", .deny, .deny, .deny, .deny),
    ]

    static let engines: [any DecisionEngineUnderTest] = {
        let set = try! PolicyLoader.load([PolicyFile(name: "corpus.yaml", text: policies)]).get()
        return [ReferenceEvaluator(set), CompiledPolicySet(set)]
    }()

    @Test(arguments: attempts)
    func bypassCorpus(_ attempt: Attempt) {
        for (mode, expected) in zip(PathNormalizationMode.allCases, attempt.outcomes) {
            let normalized = PathNormalization.normalize(attempt.target, mode)
            guard let normalized else {
                #expect(expected == .refused, "\(mode): refused, expected \(expected)")
                continue
            }
            let request = CheckRequest(destination: .init(namespace: "default", labels: ["app": "web"]),
                                       request: .init(method: "GET", path: normalized))
            for engine in Self.engines {
                let allowed = engine.decide(request).allowed
                #expect((allowed ? Outcome.allow : .deny) == expected, "\(mode) \(type(of: engine)): \(normalized)")
            }
        }
    }
}

/// The two engines, as the tests call them.
protocol DecisionEngineUnderTest: Sendable {
    func decide(_ request: CheckRequest) -> Decision
}

extension ReferenceEvaluator: DecisionEngineUnderTest {
    func decide(_ request: CheckRequest) -> Decision { evaluate(request) }
}

extension CompiledPolicySet: DecisionEngineUnderTest {
    func decide(_ request: CheckRequest) -> Decision { evaluate(request) }
}
