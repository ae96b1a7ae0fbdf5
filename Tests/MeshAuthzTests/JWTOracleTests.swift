import Foundation
import Testing
import MeshAuthz

/// Every case recorded from Envoy's jwt_authn + RBAC (Tests/fixtures/jwt-oracle, copies of
/// ../shared/jwt-oracle) through authentication then each engine, in process. Tests/e2e runs the same
/// cases through the server on both routes (/v1/check and /ext_authz).
@Suite struct JWTOracleTests {
    static let cases = (try? FixtureCase.all(in: ["jwt-oracle"])) ?? []

    @Test func casesArePresent() throws {
        #expect(Self.cases.count >= 4)
        #expect(Self.cases.reduce(0) { $0 + $1.checks.count } >= 40)
    }

    @Test(arguments: cases)
    func caseMatchesEnvoy(_ fixture: FixtureCase) throws {
        let set = try PolicyLoader.load(fixture.policyFiles).get()
        #expect(!set.requestAuthentications.isEmpty)
        let check = AuthenticatedCheck(set)
        let engines: [(String, (CheckRequest) -> Decision)] = [
            ("reference", ReferenceEvaluator(set).evaluate), ("compiled", CompiledPolicySet(set).evaluate),
        ]
        let now = Int64(Date.now.timeIntervalSince1970)
        for (name, evaluate) in engines {
            for (index, one) in fixture.checks.enumerated() {
                let (decision, _) = try check.decide(one.request, now: now, evaluate: evaluate)
                #expect(one.mismatches(decision).isEmpty,
                        "\(name) check \(index) (\(one.why)): \(one.mismatches(decision)): \(decision.reason)")
            }
        }
    }
}
