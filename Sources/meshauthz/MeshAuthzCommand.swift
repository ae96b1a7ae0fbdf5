import ArgumentParser
import Logging
import MeshAuthz
import MeshAuthzServer

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

@main
struct MeshAuthzCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meshauthz",
        abstract: "Istio AuthorizationPolicy / PeerAuthentication decisions, over HTTP or on the command line.",
        version: BuildInfo.versionLine,
        subcommands: [Serve.self, Check.self, Validate.self, Explain.self, Test.self, Lint.self, Graph.self, Generate.self])
}

/// The options every command that loads policies takes.
struct PolicyOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Directory of policy files (*.yaml, *.yml, *.json in any case, read recursively).", valueName: "dir"))
    var policies: String = "policies"

    @OptionGroup var meshOptions: MeshSettingOptions

    var mesh: MeshOptions { meshOptions.mesh }
}

/// The mesh's root namespace and trust domain (every command that reads policies).
struct MeshSettingOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Istio root namespace: its policies apply mesh-wide.", valueName: "namespace"))
    var rootNamespace: String = "istio-system"

    @Option(name: .long, help: ArgumentHelp("Istio trust domain of the mesh.", valueName: "domain"))
    var trustDomain: String = "cluster.local"

    var mesh: MeshOptions { MeshOptions(rootNamespace: rootNamespace, trustDomain: trustDomain) }
}

/// How request paths are normalized before they are judged (`serve`, `check`).
struct NormalizationOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Path normalization before matching, as Istio's meshConfig.pathNormalization: none, base, merge-slashes, decode-and-merge-slashes (the safe choice when backends decode %2F).",
        valueName: "mode"))
    var pathNormalization: PathNormalizationMode = .base
}

// Enumerated flags: ArgumentParser lists the values in help and refuses any other with one message.
extension PathNormalizationMode: ExpressibleByArgument {}
extension GatewayConvention: ExpressibleByArgument {}
extension EngineKind: ExpressibleByArgument {}
extension DecisionLogMode: ExpressibleByArgument {}
extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Writes to standard error without stdio's global state.
func printError(_ text: String) {
    var line = text
    if !line.hasSuffix("\n") { line += "\n" }
    var bytes = Array(line.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
        if n <= 0 { if errno == EINTR { continue } else { return } }
        offset += n
    }
}

/// Writes bytes to standard output.
func writeStandardOutput(_ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { write(1, $0.baseAddress! + offset, $0.count - offset) }
        if n <= 0 { if errno == EINTR { continue } else { return } }
        offset += n
    }
}
