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
    @OptionGroup var meshOptions: MeshSettingOptions
    @OptionGroup var limitOptions: LimitOptions

    var mesh: MeshOptions { meshOptions.mesh }
    var limits: LoadLimits { limitOptions.limits }

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
