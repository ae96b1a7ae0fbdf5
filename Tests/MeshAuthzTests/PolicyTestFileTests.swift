import Foundation
import Testing
import MeshAuthz

/// `PolicyTestFile`: the test runner's reading of the conformance format agrees with the suite's own reader on
/// every fixture (same checks, same verdicts), and refuses what would make a check silently weaker, with line.
@Suite struct PolicyTestFileTests {
    @Test(arguments: DifferentialTests.fixtures)
    func readsEveryFixtureAsTheSuiteDoes(_ fixture: FixtureCase) throws {
        let url = FixtureCase.fixturesDirectory.appendingPathComponent(fixture.file)
        let parsed = try PolicyTestFile.parse(try String(contentsOf: url, encoding: .utf8), file: fixture.file).get()
        #expect(parsed.checks.count == fixture.checks.count)
        let set: PolicySet
        switch parsed.policies {
        case .inline(let inline): set = inline
        case .directory, .commandLine:
            Issue.record("fixtures carry their policies inline")
            return
        }
        let reference = ReferenceEvaluator(set)
        // Tokens are validated as the runner does (jwt-oracle's UNAUTHENTICATED checks).
        let authentication = AuthenticatedCheck(set)
        let now = Int64(Date.now.timeIntervalSince1970)
        for (check, expected) in zip(parsed.checks, fixture.checks) {
            let request = try check.request.normalizingPath(.base).request
            #expect(request == expected.request, "\(fixture.file) \(check.displayName)")
            let decision = try authentication.decide(request, now: now, evaluate: reference.evaluate).0
            #expect(check.failures(decision).isEmpty == expected.mismatches(decision).isEmpty)
            #expect(check.failures(decision).isEmpty, "\(fixture.file) \(check.displayName): \(check.failures(decision))")
        }
    }

    static let head = "policies: []\nchecks:\n"

    /// (checks text, expected error prefix "line:col: field").
    static let invalid: [(String, String)] = [
        ("  - {expect: ALLOW, expectStag: x}\n", "t.yaml:3:21: checks[0].expectStag"),
        ("  - {expect: allow}\n", "t.yaml:3:14: checks[0].expect"),
        ("  - {why: no expect}\n", "t.yaml:3:5: checks[0].expect"),
        ("  - expect: DENY\n    expectStage: denied\n", "t.yaml:4:18: checks[0].expectStage"),
        ("  - expect: DENY\n    expectMtlsMode: UNSET\n", "t.yaml:4:21: checks[0].expectMtlsMode"),
        ("  - expect: DENY\n    expectDryRun: [{wouldbe: DENY}]\n", "t.yaml:4:20: checks[0].expectDryRun[0].wouldbe"),
        ("  - expect: DENY\n    destination: {port: 8080.5}\n", "t.yaml:3:5: checks[0].destination.port"),
        ("  - expect: DENY\n    source: {principal: *a}\n", "t.yaml:"),
    ]

    @Test(arguments: invalid)
    func refusesWithLine(_ checks: String, _ expected: String) {
        switch PolicyTestFile.parse(Self.head + checks, file: "t.yaml") {
        case .success: Issue.record("accepted: \(checks)")
        case .failure(let failure):
            #expect(failure.errors.first?.description.hasPrefix(expected) == true, "\(failure.errors)")
        }
    }

    @Test func expectationsAreChecked() throws {
        let text = Self.head + """
              - expect: ALLOW
                expectStage: no-allow-policy
                expectRuleId: null
                expectMtlsMode: PERMISSIVE
                expectReasonContains: [nothing is required]
              - expect: DENY
                expectPolicy: default/x
            """
        let file = try PolicyTestFile.parse(text, file: "t.yaml").get()
        let decision = ReferenceEvaluator(PolicySet()).evaluate(file.checks[0].request)
        #expect(file.checks[0].failures(decision).isEmpty)
        #expect(file.checks[1].failures(decision) == [
            "expected DENY, got ALLOW (no-allow-policy: \(decision.reason))", "expected policy default/x, got null"])
    }
}
