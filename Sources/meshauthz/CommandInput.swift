import ArgumentParser
import MeshAuthz
import MeshAuthzServer

/// What `check` and `explain` read before they decide: the policy directory and one request body. Either
/// failing is exit 2 with the reason on standard error, named after the command.
extension PolicyOptions {
    func loadSet(_ loadOptions: LoadOptions, command: String) throws -> PolicySet {
        let (result, _) = PolicyDirectory.load(policies, options: mesh, limits: loadOptions.limits, allowEmpty: loadOptions.allowEmpty)
        switch result {
        case .success(let set):
            return set
        case .failure(let failure):
            for error in failure.errors { printError(error.description) }
            printError("meshauthz \(command): the policy set in \(policies) is invalid (\(failure.errors.count) error(s))")
            throw ExitCode(2)
        }
    }
}

/// The request body from `--request FILE` (`-` or none: standard input).
func readRequestBody(_ path: String?, command: String) throws -> [UInt8] {
    switch readAll(path: path == "-" ? nil : path) {
    case .success(let bytes): return bytes
    case .failure(let error):
        printError("meshauthz \(command): cannot read the request: \(error)")
        throw ExitCode(2)
    }
}
