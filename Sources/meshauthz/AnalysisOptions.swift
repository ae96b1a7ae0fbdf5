import ArgumentParser
import MeshAuthz
import MeshAuthzServer

extension MeshAuthzCommand {
    /// The analysis commands whose exit status 1 means "found something" (a pre-commit hook or CI step
    /// tests it), so a usage error must not look like one: they exit 2 for it, not ArgumentParser's 64.
    static let analysisCommands: Set<String> = ["lint", "graph", "generate"]

    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let isUsageError = exitCode(for: error) == .validationFailure
            if isUsageError, let name = CommandLine.arguments.dropFirst().first, analysisCommands.contains(name) {
                printError(fullMessage(for: error))
                exit(withError: ExitCode(2))
            }
            exit(withError: error)
        }
    }
}

/// What `lint`, `graph` and `generate` read with: the mesh settings and the loader's bounds (the same
/// flags and defaults as `serve`'s).
struct AnalysisOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Istio root namespace: its policies apply mesh-wide.", valueName: "namespace"))
    var rootNamespace: String = "istio-system"

    @Option(name: .long, help: ArgumentHelp("Istio trust domain of the mesh.", valueName: "domain"))
    var trustDomain: String = "cluster.local"

    @Option(name: .long, help: ArgumentHelp("Largest file, in bytes.", valueName: "bytes"))
    var maxPolicyFileBytes: Int = LoadLimits.defaultMaxFileBytes

    @Option(name: .long, help: ArgumentHelp("Largest total size of the files, in bytes.", valueName: "bytes"))
    var maxPolicyTotalBytes: Int = LoadLimits.defaultMaxTotalBytes

    @Option(name: .long, help: ArgumentHelp("Most resources (YAML documents, List items) in all the files.", valueName: "n"))
    var maxResources: Int = LoadLimits.defaultMaxResources

    @Option(name: .long, help: ArgumentHelp("Most YAML nodes a file may reach through aliases.", valueName: "n"))
    var maxAliasNodes: Int = LoadLimits.defaultMaxAliasNodes

    var mesh: MeshOptions { MeshOptions(rootNamespace: rootNamespace, trustDomain: trustDomain) }

    var limits: LoadLimits {
        LoadLimits(maxFileBytes: maxPolicyFileBytes, maxTotalBytes: maxPolicyTotalBytes, maxResources: maxResources,
                   maxAliasNodes: maxAliasNodes)
    }

    func validate() throws {
        for (flag, value) in [("--max-policy-file-bytes", maxPolicyFileBytes), ("--max-policy-total-bytes", maxPolicyTotalBytes),
                              ("--max-resources", maxResources), ("--max-alias-nodes", maxAliasNodes)] where value < 0 {
            throw ValidationError("\(flag) must be >= 0")
        }
    }

    /// Reads the paths as `lint` does; an unreadable path is printed and exits 2.
    func read(_ paths: [String], command: String) throws -> AnalysisInput {
        let (files, readErrors) = PolicyPaths.read(paths, limits: limits)
        let unreadable = readErrors.filter { $0.code == .unreadable }
        if !unreadable.isEmpty {
            for error in unreadable { printError("meshauthz \(command): \(error.description)") }
            throw ExitCode(2)
        }
        return AnalysisInput.read(files, readErrors: readErrors, options: mesh, limits: limits)
    }
}
