import ArgumentParser
import MeshAuthz
import MeshAuthzServer

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a policy directory as serve would load it.",
        discussion: """
            Exit status 0 with a summary line when every file is valid; 2 with one line per problem on \
            standard error, FILE:LINE:COL: FIELD: message (FILE relative to the directory).
            """)

    @OptionGroup var policyOptions: PolicyOptions

    func run() throws {
        let directory = policyOptions.policies
        let (result, fileCount) = PolicyDirectory.load(directory, options: policyOptions.mesh)
        switch result {
        case .success(let set):
            writeStandardOutput(Array("""
                \(directory): valid: \(set.authorizationPolicies.count) AuthorizationPolicies, \
                \(set.peerAuthentications.count) PeerAuthentications, \(set.otherResources.count) other resources \
                in \(fileCount) files

                """.utf8))
        case .failure(let failure):
            for error in failure.errors { printError(error.description) }
            printError("\(directory): invalid: \(failure.errors.count) error(s)")
            throw ExitCode(2)
        }
    }
}
