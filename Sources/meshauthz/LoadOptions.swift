import ArgumentParser
import MeshAuthz

/// The loader's bounds (`serve`, `check`, `validate`, `test`, and the analysis commands alike).
struct LimitOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Largest policy file, in bytes.", valueName: "bytes"))
    var maxPolicyFileBytes: Int = LoadLimits.defaultMaxFileBytes

    @Option(name: .long, help: ArgumentHelp("Largest total size of the policy files, in bytes.", valueName: "bytes"))
    var maxPolicyTotalBytes: Int = LoadLimits.defaultMaxTotalBytes

    @Option(name: .long, help: ArgumentHelp("Most resources (YAML documents, List items) in all the files.", valueName: "n"))
    var maxResources: Int = LoadLimits.defaultMaxResources

    @Option(name: .long, help: ArgumentHelp(
        "Most YAML nodes a file may reach through aliases (refuses billion-laughs files).", valueName: "n"))
    var maxAliasNodes: Int = LoadLimits.defaultMaxAliasNodes

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
}

/// What `serve`, `check` and `validate` accept as a policy set: the empty set, and the size limits.
struct LoadOptions: ParsableArguments {
    @Flag(name: .long, help: """
        Accept a set with no AuthorizationPolicy and no PeerAuthentication (it allows every request). \
        Without it such a set, or a missing or empty directory, is refused like an invalid one.
        """)
    var allowEmpty = false

    @OptionGroup var limitOptions: LimitOptions

    var limits: LoadLimits { limitOptions.limits }
}
