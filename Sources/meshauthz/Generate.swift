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

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the zero-trust policy set for a list of services and their allowed callers.",
        discussion: """
            Reads FILE (a services: list; README "meshauthz generate") and writes mesh-wide STRICT mTLS \
            (00-mesh.yaml), then per namespace (NAMESPACE.yaml) an allow-nothing policy, one ALLOW policy per \
            service naming its callers' principals, and a DestinationRule with ISTIO_MUTUAL per service. \
            With --out DIR the files are written there (each replaced whole, by rename); without, the stream \
            is printed. Exit status 0, or 2 with FILE:LINE:COL: FIELD: message for a bad list.
            """)

    @Option(name: .long, help: ArgumentHelp("The services and their allowed callers (YAML).", valueName: "file"))
    var services: String

    @Option(name: .long, help: ArgumentHelp("Directory to write the policy files to (default: standard output).", valueName: "dir"))
    var out: String?

    @Option(name: .long, help: ArgumentHelp("Istio root namespace: where the mesh-wide PeerAuthentication goes.", valueName: "namespace"))
    var rootNamespace: String = "istio-system"

    @Option(name: .long, help: ArgumentHelp("Istio trust domain: the principals' first part.", valueName: "domain"))
    var trustDomain: String = "cluster.local"

    func run() throws {
        let text: String
        switch readAll(path: services, maxBytes: LoadLimits.defaultMaxFileBytes) {
        case .success(let bytes):
            guard bytes.count <= LoadLimits.defaultMaxFileBytes, let decoded = String(validating: bytes, as: UTF8.self) else {
                printError("meshauthz generate: \(services): not a UTF-8 file of at most \(LoadLimits.defaultMaxFileBytes) bytes")
                throw ExitCode(2)
            }
            text = decoded
        case .failure(let error):
            printError("meshauthz generate: cannot read \(error)")
            throw ExitCode(2)
        }
        let options = MeshOptions(rootNamespace: rootNamespace, trustDomain: trustDomain)
        let name = services.split(separator: "/").last.map(String.init) ?? services
        let result = ServiceList.read(PolicyFile(name: services, text: text))
            .flatMap { ZeroTrustGenerator.generate($0, options: options, source: name) }
        let files: [ZeroTrustGenerator.File]
        switch result {
        case .success(let generated): files = generated
        case .failure(let failure):
            for error in failure.errors { printError(error.description) }
            throw ExitCode(2)
        }
        guard let out else {
            writeStandardOutput(Array(files.map(\.text).joined(separator: "---\n").utf8))
            return
        }
        if mkdir(out, 0o755) != 0 && errno != EEXIST {
            printError("meshauthz generate: cannot create \(out): \(String(cString: strerror(errno)))")
            throw ExitCode(2)
        }
        for file in files {
            let path = out + "/" + file.name
            if let problem = writeReplacing(path, Array(file.text.utf8)) {
                printError("meshauthz generate: cannot write \(path): \(problem)")
                throw ExitCode(2)
            }
        }
        printError("meshauthz generate: wrote \(files.count) files to \(out)")
    }

    /// Writes a temporary file next to `path` and renames it over `path`, so a server polling the
    /// directory never reads half a file.
    func writeReplacing(_ path: String, _ bytes: [UInt8]) -> String? {
        let temporary = path + ".tmp-generate"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                let problem = String(cString: strerror(errno))
                close(fd)
                unlink(temporary)
                return problem
            }
            offset += n
        }
        close(fd)
        if rename(temporary, path) != 0 {
            let problem = String(cString: strerror(errno))
            unlink(temporary)
            return problem
        }
        return nil
    }
}
