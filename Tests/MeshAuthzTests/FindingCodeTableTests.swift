import Foundation
import Testing
@testable import MeshAuthz

/// The README's findings table is the documentation of the codes: it lists every code, with its
/// severity and summary, in order, and nothing else.
@Suite struct FindingCodeTableTests {
    @Test func readmeListsEveryCode() throws {
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        let rows = text.split(separator: "\n").filter { $0.hasPrefix("| `MA") }
        let expected = FindingCode.allCases.map { "| `\($0.rawValue)` | \($0.severity.rawValue) | \($0.summary) |" }
        #expect(rows.map(String.init) == expected)
        #expect(Set(FindingCode.allCases.map(\.rawValue)).count == FindingCode.allCases.count, "codes are unique")
    }
}
