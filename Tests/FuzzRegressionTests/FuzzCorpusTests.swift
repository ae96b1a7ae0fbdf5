import Foundation
import MeshAuthzFuzzChecks
import Testing

/// Every kept fuzz input, fed to the fuzzers' own checks in a normal `swift test`: the crashes and broken
/// invariants the fuzzers found (`Fuzz/corpus/<name>/regressions/`) and the seeds (`Fuzz/corpus/<name>/`).
@Suite struct FuzzCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/corpus")

    /// The fuzzers of Package.swift and their checks.
    static let checks: [String: FuzzCheck] = [
        "PolicyLoader": PolicyLoaderCheck.check,
        "CheckBody": CheckBodyCheck.check,
        "ForwardedClientCert": ForwardedClientCertCheck.check,
        "PathNormalization": PathNormalizationCheck.check,
        "GatewayHeaders": GatewayHeadersCheck.check,
        "Differential": DifferentialCheck.check,
        "JWT": JWTCheck.check,
    ]

    static func files(_ name: String, _ subdirectory: String? = nil) -> [URL] {
        var directory = corpus.appendingPathComponent(name)
        if let subdirectory { directory = directory.appendingPathComponent(subdirectory) }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { directory.appendingPathComponent($0) }.filter { url in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) && !isDirectory.boolValue
        }
    }

    @Test(arguments: checks.keys.sorted())
    func regressionsStayFixed(_ name: String) throws {
        try run(name, Self.files(name, "regressions"))
    }

    @Test(arguments: checks.keys.sorted())
    func seedsPass(_ name: String) throws {
        let seeds = Self.files(name)
        #expect(seeds.count >= 5, "Fuzz/corpus/\(name) has \(seeds.count) seeds")
        try run(name, seeds)
    }

    func run(_ name: String, _ files: [URL]) throws {
        let check = try #require(Self.checks[name])
        for file in files {
            // The replayer's reader (libc): Foundation's Data(contentsOf:) leaks a buffer per file under ASan.
            let bytes = try #require(FuzzEntry.readFile(file.path), "\(file.path) cannot be read")
            let problems = bytes.withUnsafeBufferPointer { check($0) }
            #expect(problems.isEmpty, "\(name)/\(file.lastPathComponent): \(problems.joined(separator: "\n"))")
        }
    }

    /// The corpus directories and Package.swift name the same fuzzers.
    @Test func everyFuzzerHasACorpus() {
        let directories = (try? FileManager.default.contentsOfDirectory(atPath: Self.corpus.path)) ?? []
        #expect(Set(directories.filter { !$0.hasPrefix(".") }) == Set(Self.checks.keys))
    }
}
