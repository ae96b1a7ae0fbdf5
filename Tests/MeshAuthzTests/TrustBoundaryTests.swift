import Testing
@testable import MeshAuthz

/// Issue 7: what comes through the policy directory is refused unless it is clearly meant: an empty set,
/// a misspelled kind or group, a file over a limit, a billion-laughs file, a half-written file.
@Suite struct TrustBoundaryTests {
    static let allowNothing = """
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: allow-nothing, namespace: default}
    spec: {}

    """
    static let configMap = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n"

    // MARK: Empty sets (item 6)

    struct EmptyCase: CustomStringConvertible, Sendable {
        let name: String
        let files: [PolicyFile]
        var description: String { name }
    }

    static let emptyCases: [EmptyCase] = [
        EmptyCase(name: "no file", files: []),
        EmptyCase(name: "a comment only", files: [PolicyFile(name: "policies.yaml", text: "# nothing\n")]),
        EmptyCase(name: "other kinds only", files: [PolicyFile(name: "cm.yaml", text: configMap)]),
        EmptyCase(name: "RequestAuthentication only", files: [PolicyFile(name: "ra.yaml", text:
            "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt}\n")]),
    ]

    @Test(arguments: emptyCases)
    func anEmptySetIsRefusedUnlessIntended(_ empty: EmptyCase) throws {
        guard case .failure(let failure) = PolicyLoader.loadDirectory("/etc/policies", files: empty.files) else {
            Issue.record("\(empty.name): an empty set must be refused without allowEmpty")
            return
        }
        let error = try #require(failure.errors.first)
        #expect(error.code == .emptySet)
        #expect(error.location.file == "/etc/policies")
        #expect(error.message.contains("--allow-empty"))
        let allowed = try PolicyLoader.loadDirectory("/etc/policies", files: empty.files, allowEmpty: true).get()
        #expect(allowed.authorizationPolicies.isEmpty && allowed.peerAuthentications.isEmpty)
    }

    @Test func aSetWithOnePolicyIsNotEmpty() throws {
        for text in [Self.allowNothing, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: d}\n"] {
            _ = try PolicyLoader.loadDirectory("d", files: [PolicyFile(name: "p.yaml", text: text)]).get()
        }
    }

    @Test func readErrorsRefuseTheSetEvenWhenEmptyIsAllowed() {
        let unreadable = PolicyError(.unreadable, at: SourceLocation(file: "d", line: 1, column: 1), field: "", "gone")
        guard case .failure(let failure) = PolicyLoader.loadDirectory("d", files: [], readErrors: [unreadable], allowEmpty: true) else {
            Issue.record("a missing directory must be refused even with allowEmpty")
            return
        }
        #expect(failure.errors == [unreadable])
    }

    // MARK: Kinds and groups (item 7)

    struct KindCase: CustomStringConvertible, Sendable {
        let apiVersion: String
        let kind: String
        /// nil: accepted as another resource.
        let code: PolicyError.Code?
        let field: String
        let meant: String
        var description: String { "\(apiVersion) \(kind)" }
    }

    static let kindCases: [KindCase] = [
        KindCase(apiVersion: "security.istio.io/v1", kind: "AuthorisationPolicy", code: .misspelledKind, field: "kind", meant: "AuthorizationPolicy"),
        KindCase(apiVersion: "security.istio.io/v1", kind: "authorizationpolicy", code: .misspelledKind, field: "kind", meant: "AuthorizationPolicy"),
        KindCase(apiVersion: "security.istio.io/v1", kind: "PeerAuthenticaton", code: .misspelledKind, field: "kind", meant: "PeerAuthentication"),
        KindCase(apiVersion: "security.istio.io/v1", kind: "RequestAuthenticatoin", code: .misspelledKind, field: "kind", meant: "RequestAuthentication"),
        KindCase(apiVersion: "networking.istio.io/v1", kind: "AuthorizationPolicy", code: .wrongAPIGroup, field: "apiVersion", meant: "security.istio.io/v1"),
        KindCase(apiVersion: "v1", kind: "PeerAuthentication", code: .wrongAPIGroup, field: "apiVersion", meant: "security.istio.io/v1"),
        KindCase(apiVersion: "networking.istio.io/v1", kind: "RequestAuthentication", code: .wrongAPIGroup, field: "apiVersion", meant: "security.istio.io/v1"),
        KindCase(apiVersion: "securty.istio.io/v1", kind: "Whatever", code: .wrongAPIGroup, field: "apiVersion", meant: "security.istio.io"),
        KindCase(apiVersion: "v1", kind: "ConfigMap", code: nil, field: "", meant: ""),
        KindCase(apiVersion: "networking.istio.io/v1", kind: "DestinationRule", code: nil, field: "", meant: ""),
        KindCase(apiVersion: "apps/v1", kind: "Deployment", code: nil, field: "", meant: ""),
    ]

    @Test(arguments: kindCases)
    func nearMissesOfKnownKindsAreErrors(_ c: KindCase) throws {
        let text = Self.allowNothing + "---\n# a comment line\napiVersion: \(c.apiVersion)\nkind: \(c.kind)\nmetadata: {name: x}\n"
        let result = PolicyLoader.load([PolicyFile(name: "f.yaml", text: text)])
        guard let code = c.code else {
            let set = try result.get()
            #expect(set.otherResourceCounts.map(\.kind) == [c.kind])
            return
        }
        guard case .failure(let failure) = result else {
            Issue.record("\(c) must be refused")
            return
        }
        let error = try #require(failure.errors.first)
        #expect(error.code == code, "\(error)")
        #expect(error.field == c.field, "\(error)")
        #expect(error.location.line == (c.field == "kind" ? 8 : 7), "\(error)")
        #expect(error.message.contains("did you mean \(c.meant)"), "\(error)")
    }

    @Test func otherResourcesAreCountedByKind() throws {
        let text = Self.allowNothing + "---\n" + Self.configMap + "---\n" + Self.configMap.replacingOccurrences(of: "cm", with: "cm2")
            + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"
        let set = try PolicyLoader.load([PolicyFile(name: "f.yaml", text: text)]).get()
        #expect(set.otherResourceCounts.map(\.kind) == ["ConfigMap", "Deployment"])
        #expect(set.otherResourceCounts.map(\.count) == [2, 1])
    }

    @Test func jsonIsReadWithItsLinePositions() throws {
        let json = """
        {"apiVersion": "security.istio.io/v1",
         "kind": "AuthorizationPolicy",
         "metadata": {"name": "j", "namespace": "default"},
         "spec": {"rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/33"]}}]}]}}
        """
        guard case .failure(let failure) = PolicyLoader.load([PolicyFile(name: "deny.json", text: json)]) else {
            Issue.record("the bad CIDR must be found in JSON too")
            return
        }
        #expect(failure.errors.first?.location.line == 4)
        #expect(failure.errors.first?.field == "spec.rules[0].from[0].source.ipBlocks[0]")
    }

    // MARK: Limits (item 9)

    /// A billion-laughs document: nine anchors, each a list of nine aliases of the previous one (9^9
    /// nodes once expanded), used both as a mapping key (hashed by the composer) and as a value.
    static func billionLaughs(levels: Int = 9) -> String {
        var lines = ["apiVersion: security.istio.io/v1", "kind: AuthorizationPolicy", "metadata:", "  name: lol",
                     "  namespace: default", "  labels:", "    l0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]"]
        for level in 1..<levels {
            lines.append("    l\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 9).joined(separator: ", ") + "]")
        }
        lines += ["    ? *a\(levels - 1)", "    : key", "spec:", "  rules: *a\(levels - 1)"]
        return lines.joined(separator: "\n") + "\n"
    }

    @Test func billionLaughsIsRefusedAtTheFirstAliasOverTheBudget() throws {
        let text = Self.billionLaughs()
        #expect(text.utf8.count < 4096)
        guard case .failure(let failure) = PolicyLoader.load([PolicyFile(name: "lol.yaml", text: text)]) else {
            Issue.record("a billion-laughs file must be refused")
            return
        }
        let error = try #require(failure.errors.first)
        #expect(error.code == .limitExceeded)
        #expect(error.location.file == "lol.yaml")
        // aliases of l0..l3 expand to 8,289 nodes in all; l5 (line 12) names *a4, 66,430 nodes each,
        // and passes the budget of 100,000 at its first alias
        #expect(error.location.line == 12, "\(error)")
        #expect(error.message.contains("aliases"))
    }

    @Test func aliasesWithinTheBudgetLoad() throws {
        let text = """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: shared, namespace: default}
        spec:
          rules:
          - from:
            - source: {principals: &callers ["cluster.local/ns/a/sa/x", "cluster.local/ns/b/sa/y"]}
          - from:
            - source: {principals: *callers}
        """
        let set = try PolicyLoader.load([PolicyFile(name: "a.yaml", text: text)]).get()
        #expect(set.authorizationPolicies.first?.rules.count == 2)
        let tight = PolicyLoader.load([PolicyFile(name: "a.yaml", text: text)], limits: LoadLimits(maxAliasNodes: 2))
        guard case .failure(let failure) = tight else {
            Issue.record("3 alias nodes must be over a budget of 2")
            return
        }
        #expect(failure.errors.first?.location.line == 9)
    }

    struct LimitCase: CustomStringConvertible, Sendable {
        let name: String
        let limits: LoadLimits
        let files: [PolicyFile]
        let file: String
        let words: String
        var description: String { name }
    }

    static let limitCases: [LimitCase] = [
        LimitCase(name: "file bytes", limits: LoadLimits(maxFileBytes: 64),
                  files: [PolicyFile(name: "big.yaml", text: allowNothing)], file: "big.yaml", words: "--max-policy-file-bytes"),
        LimitCase(name: "total bytes", limits: LoadLimits(maxTotalBytes: 200),
                  files: [PolicyFile(name: "a.yaml", text: allowNothing),
                          PolicyFile(name: "b.yaml", text: allowNothing.replacingOccurrences(of: "allow-nothing", with: "b"))],
                  file: "b.yaml", words: "--max-policy-total-bytes"),
        LimitCase(name: "resources", limits: LoadLimits(maxResources: 3),
                  files: [PolicyFile(name: "many.yaml", text: (0..<5).map { allowNothing.replacingOccurrences(of: "allow-nothing", with: "p\($0)") }
                                        .joined(separator: "---\n"))],
                  file: "many.yaml", words: "--max-resources"),
        LimitCase(name: "resources in a List", limits: LoadLimits(maxResources: 3),
                  files: [PolicyFile(name: "list.yaml", text: "apiVersion: v1\nkind: List\nitems:\n"
                                        + (0..<5).map { "- {apiVersion: v1, kind: ConfigMap, metadata: {name: c\($0)}}\n" }.joined())],
                  file: "list.yaml", words: "--max-resources"),
    ]

    @Test(arguments: limitCases)
    func overALimitIsRefused(_ c: LimitCase) throws {
        guard case .failure(let failure) = PolicyLoader.load(c.files, limits: c.limits) else {
            Issue.record("\(c.name): expected a refusal")
            return
        }
        let error = try #require(failure.errors.first)
        #expect(error.code == .limitExceeded, "\(error)")
        #expect(error.location.file == c.file, "\(error)")
        #expect(error.message.contains(c.words), "\(error)")
        // the same files load under the default limits
        _ = try PolicyLoader.load(c.files).get()
    }

    // MARK: Settling and stable reads (item 8)

    static let settle: Int64 = 300_000_000

    @Test func aChangeLoadsOnlyOnceStillForTheSettleTime() {
        var gate = SettleGate<String>(settleNanoseconds: Self.settle)
        // the first half of a file appears (just written: no quiet time yet)
        #expect(gate.observe("half", now: 0, quietFor: 0) == .wait(nanoseconds: Self.settle))
        #expect(gate.observe("half", now: 100_000_000, quietFor: 100_000_000) == .wait(nanoseconds: 200_000_000))
        // the second half arrives before the settle time: the wait starts again
        #expect(gate.observe("whole", now: 200_000_000, quietFor: 0) == .wait(nanoseconds: Self.settle))
        #expect(gate.observe("whole", now: 400_000_000, quietFor: 200_000_000) == .wait(nanoseconds: 100_000_000))
        #expect(gate.observe("whole", now: 500_000_000, quietFor: nil) == .load)
        gate.attempted("whole")
        #expect(gate.observe("whole", now: 600_000_000, quietFor: 400_000_000) == .unchanged)
        #expect(!gate.isSettling)
        // a read that saw the files change is forgotten: the same look settles and loads again
        gate.forget()
        #expect(gate.observe("whole", now: 700_000_000, quietFor: 0) == .wait(nanoseconds: Self.settle))
    }

    @Test func filesAlreadyQuietLoadAtOnce() {
        var gate = SettleGate<String>(settleNanoseconds: Self.settle)
        #expect(gate.observe("a", now: 0, quietFor: Self.settle) == .load)
        gate.attempted("a")
        // files changed 100 ms before the first look wait only the rest of the settle time
        #expect(gate.observe("c", now: 0, quietFor: 100_000_000) == .wait(nanoseconds: 200_000_000))
        #expect(gate.observe("c", now: 200_000_000, quietFor: 300_000_000) == .load)
        gate.attempted("c")
        // a clock in the past (quietFor nil) falls back on watching for the settle time
        #expect(gate.observe("b", now: 1_000, quietFor: nil) == .wait(nanoseconds: Self.settle))
        #expect(gate.observe("b", now: 1_000 + Self.settle, quietFor: nil) == .load)
    }

    @Test func aReadThatSawChangesIsRetriedThenRefused() {
        // a directory that changes on every look: never stable
        var version = 0
        let never = StableRead.read(attempts: 3, snapshot: { () -> Int in version += 1; return version },
                                    read: { (snapshot: Int) in ("v\(snapshot)", true) })
        #expect(never == nil)
        #expect(version == 4, "one look before, one after each of the three reads")
        // a file whose size did not match on the first read only
        var reads = 0
        let second = StableRead.read(attempts: 3, snapshot: { 7 }, read: { (_: Int) -> (value: Int, consistent: Bool) in
            reads += 1
            return (reads, reads > 1)
        })
        #expect(second?.value == 2)
    }
}
