import MeshAuthz

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The files named on a command line (`lint`, `graph`): each path a file or a directory read as
/// `PolicyDirectory` reads one (recursively, `*.yaml`/`*.yml`/`*.json`, hidden entries skipped, read again
/// if it changes meanwhile). Files are named as the user can open them: the directory's path joined with
/// the name relative to it, or the file's path as given.
public enum PolicyPaths {
    /// What the paths hold right now, as `stat` sees it (no file is opened): one listing per path (a file's
    /// has its one entry), compared between polls to notice a change.
    public static func scan(_ paths: [String]) -> [PolicyDirectory.Listing] {
        paths.map { path in
            var st = stat()
            guard stat(path, &st) == 0 else {
                return PolicyDirectory.Listing(entries: [], errors: [PolicyDirectory.unreadable(path, "cannot read \(path): \(errnoText())")])
            }
            if PolicyDirectory.isDirectory(st) { return PolicyDirectory.scan(path) }
            return PolicyDirectory.Listing(entries: [PolicyDirectory.entry(name: path, path: path, st)], errors: [])
        }
    }

    public static func read(_ paths: [String], limits: LoadLimits = LoadLimits()) -> (files: [PolicyFile], errors: [PolicyError]) {
        var files: [PolicyFile] = []
        var errors: [PolicyError] = []
        var seen: Set<String> = []
        for path in paths {
            var st = stat()
            guard stat(path, &st) == 0 else {
                errors.append(PolicyDirectory.unreadable(path, "cannot read \(path): \(errnoText())"))
                continue
            }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                let (_, read, readErrors, _) = PolicyDirectory.readStable(path, limits: limits)
                let prefix = path == "." ? "" : (path.hasSuffix("/") ? path : path + "/")
                for file in read where seen.insert(prefix + file.name).inserted {
                    files.append(PolicyFile(name: prefix + file.name, text: file.text))
                }
                errors += readErrors.map { error in
                    if error.location.file == path { return error }
                    return PolicyError(error.code, at: SourceLocation(file: prefix + error.location.file, line: error.location.line,
                                                               column: error.location.column), field: error.field, error.message)
                }
                continue
            }
            guard seen.insert(path).inserted else { continue }
            switch readAll(path: path, maxBytes: limits.maxFileBytes) {
            case .success(let bytes):
                if bytes.count > limits.maxFileBytes {
                    errors.append(PolicyDirectory.tooLarge(path, limits))
                } else if let text = String(validating: bytes, as: UTF8.self) {
                    files.append(PolicyFile(name: path, text: text))
                } else {
                    errors.append(PolicyDirectory.unreadable(path, "the file is not valid UTF-8"))
                }
            case .failure(let failure):
                errors.append(PolicyDirectory.unreadable(path, "cannot read the file: \(failure.reason)"))
            }
        }
        return (files, errors)
    }
}
