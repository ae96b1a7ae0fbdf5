import Foundation
import Testing
import MeshAuthz

/// Every conformance and oracle case through the reference evaluator, in process. The same cases also
/// run through the real HTTP server in Tests/e2e.
@Suite struct ReferenceConformanceTests {
    static let cases = (try? FixtureCase.all()) ?? []

    @Test func fixturesArePresent() throws {
        #expect(Self.cases.count >= 60, "conformance + oracle fixtures should be under Tests/fixtures")
        // Every check decodes strictly: an unknown key or an `expect` other than ALLOW/DENY is an error here.
        #expect(try FixtureCase.all().count == Self.cases.count)
    }

    @Test(arguments: cases)
    func caseMatchesExpectations(_ fixture: FixtureCase) throws {
        let set = try PolicyLoader.load(fixture.policyFiles).get()
        let evaluator = ReferenceEvaluator(set)
        let authentication = AuthenticatedCheck(set)
        let now = Int64(Date.now.timeIntervalSince1970)
        for (index, check) in fixture.checks.enumerated() {
            let decision = try authentication.decide(check.request, now: now, evaluate: evaluator.evaluate).0
            #expect(check.mismatches(decision).isEmpty,
                    "check \(index) (\(check.why)): \(check.mismatches(decision)): \(decision.reason)")
        }
    }
}
