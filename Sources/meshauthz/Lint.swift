import ArgumentParser
import MeshAuthz
import MeshAuthzServer

struct Lint: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Analyze a GitOps repo of policies and manifests offline, like istioctl analyze.",
        discussion: """
            Reads every PATH (files or directories, recursively): AuthorizationPolicy, PeerAuthentication, \
            DestinationRule and Kubernetes workload manifests (Deployment, StatefulSet, DaemonSet, ReplicaSet, \
            Pod, Job, CronJob, ServiceAccount, Service, Namespace); other kinds are skipped. Prints one finding \
            per line, FILE:LINE:COL: severity [CODE] (resource) message, with its fix; the README lists the codes. \
            Exit status: 0 when no finding is at or above --fail-on, 1 otherwise, 2 for a usage error or an \
            unreadable path.
            """)

    enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    @Argument(help: ArgumentHelp("Files or directories to read.", valueName: "path"))
    var paths: [String] = []

    @Option(name: .long, help: ArgumentHelp("text or json.", valueName: "format"))
    var output: OutputFormat = .text

    @Option(name: .long, help: ArgumentHelp("Exit 1 when a finding is at or above this severity: error, warning or info.", valueName: "severity"))
    var failOn: Finding.Severity = .error

    @OptionGroup var analysis: AnalysisOptions

    func validate() throws {
        if paths.isEmpty { throw ValidationError("name at least one file or directory to lint") }
    }

    func run() throws {
        let input = try analysis.read(paths, command: "lint")
        let findings = Linter.run(input)
        switch output {
        case .text: writeStandardOutput(Array(FindingReport.text(findings).utf8))
        case .json: writeStandardOutput(FindingReport.json(findings))
        }
        if findings.contains(where: { $0.severity >= failOn }) { throw ExitCode(1) }
    }
}

extension Finding.Severity: ExpressibleByArgument {}
