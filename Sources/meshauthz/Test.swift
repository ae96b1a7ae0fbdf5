import ArgumentParser
import MeshAuthz
import MeshAuthzServer

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

struct Test: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run policy test files: requests with the decision each must get (the conformance-case format).",
        discussion: """
            Each PATH is a test file or a directory of them (*.yaml, *.yml, *.json, recursively). A file's \
            policies are its inline `policies:`, else its `policiesDir:` (relative to the file), else --policies. \
            Every failure is printed with the explanation of its decision (the fields that did not match); the \
            last line is "N passed, M failed". --junit FILE also writes JUnit XML (one testcase per check) for \
            CI test reporters. Exit status: 0 all passed, 1 any failed, 2 an unreadable or invalid test file or \
            policy set (FILE:LINE:COL: FIELD: message).
            """)

    enum Output: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    @Argument(help: ArgumentHelp("Test files or directories of them.", valueName: "path"))
    var paths: [String]

    @Option(name: .long, help: ArgumentHelp(
        "Policy directory for test files that name none (no policies: or policiesDir:).", valueName: "dir"))
    var policies: String?

    @OptionGroup var meshOptions: MeshSettingOptions

    @OptionGroup var normalization: NormalizationOptions

    @OptionGroup var loadOptions: LoadOptions

    @Option(name: .long, help: ArgumentHelp("Also write a JUnit XML report here.", valueName: "file"))
    var junit: String?

    @Option(name: .long, help: ArgumentHelp("text or json (on standard output).", valueName: "format"))
    var output: Output = .text

    @Option(name: .long, help: ArgumentHelp("Decision engine: reference or compiled.", valueName: "engine"))
    var engine: EngineKind = .compiled

    func validate() throws {
        if paths.isEmpty { throw ValidationError("give at least one test file or directory") }
    }

    func run() throws {
        var runner = PolicyTestRunner(mesh: meshOptions.mesh, limits: loadOptions.limits, allowEmpty: loadOptions.allowEmpty,
                                      normalization: normalization.pathNormalization, engine: engine,
                                      commandLinePolicies: policies)
        var results: [PolicyTestRunner.FileResult] = []
        for path in paths { results += runner.run(path: path) }
        let summary = PolicyTestRunner.Summary(results)
        switch output {
        case .text: writeStandardOutput(Array(PolicyTestReport.text(results, summary).utf8))
        case .json: writeStandardOutput(PolicyTestReport.json(results, summary))
        }
        if let junit {
            let xml = Array(JUnitReport.xml(results, summary).utf8)
            if let problem = writeFile(junit, xml) {
                printError("meshauthz test: cannot write the JUnit report \(junit): \(problem)")
                throw ExitCode(2)
            }
        }
        if summary.errors > 0 { throw ExitCode(2) }
        if summary.failed > 0 { throw ExitCode(1) }
    }
}

/// Writes `bytes` to `path` (created or truncated); the error text, or nil.
func writeFile(_ path: String, _ bytes: [UInt8]) -> String? {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { return String(cString: strerror(errno)) }
    defer { close(fd) }
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        if n < 0 {
            if errno == EINTR { continue }
            return String(cString: strerror(errno))
        }
        offset += n
    }
    return nil
}
