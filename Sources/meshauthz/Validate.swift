import ArgumentParser
import MeshAuthz
import MeshAuthzServer

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a policy directory as serve would load it.",
        discussion: """
            Exit status 0 with a summary line when every file is valid; 2 with one line per problem on \
            standard error, FILE:LINE:COL: FIELD: message (FILE relative to the directory). A set with no \
            AuthorizationPolicy and no PeerAuthentication is a problem unless --allow-empty. Resources of \
            other kinds are counted by kind in the summary (they are never used in decisions).
            """)

    @OptionGroup var policyOptions: PolicyOptions

    @OptionGroup var loadOptions: LoadOptions

    func run() throws {
        let directory = policyOptions.policies
        let (result, fileCount) = PolicyDirectory.load(directory, options: policyOptions.mesh, limits: loadOptions.limits,
                                                       allowEmpty: loadOptions.allowEmpty)
        switch result {
        case .success(let set):
            let others = set.otherResourceCounts.map { "\($0.kind): \($0.count)" }.joined(separator: ", ")
            writeStandardOutput(Array("""
                \(directory): valid: \(set.authorizationPolicies.count) AuthorizationPolicies, \
                \(set.peerAuthentications.count) PeerAuthentications, \(set.requestAuthentications.count) RequestAuthentications, \
                \(set.otherResources.count) other resources\
                \(others.isEmpty ? "" : " (\(others))") in \(fileCount) files

                """.utf8))
        case .failure(let failure):
            for error in failure.errors { printError(error.description) }
            printError("\(directory): invalid: \(failure.errors.count) error(s)")
            throw ExitCode(2)
        }
    }
}
