import MeshAuthz

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The policy files of a directory: every `*.yaml`, `*.yml` and `*.json` below it (any case: `deny.YAML`
/// is read, not silently skipped; JSON is YAML 1.2 and read by the same parser, with its line numbers),
/// recursively, sorted by their path relative to the directory (which is also the name errors and
/// `/v1/policies` show).
///
/// Choices:
/// - Entries whose name starts with `.` are skipped, files and directories alike. A Kubernetes ConfigMap
///   mounted as a volume holds each file twice: `x.yaml -> ..data/x.yaml` and the real one under
///   `..2025_01_01_00_00_00.123/`; reading both would define every resource twice.
/// - Symbolic links are followed (the ConfigMap's are); a directory reached twice (a link loop) is read once.
/// - Anything that cannot be read (the directory, a subdirectory, a policy file, a dangling link named
///   `*.yaml`, a file that is not UTF-8) is an error that refuses the whole set: a file that cannot be
///   seen might hold a DENY policy.
public enum PolicyDirectory {
    /// A policy file as `stat` sees it: enough to notice that it changed.
    public struct Entry: Sendable, Hashable {
        /// Path relative to the directory, `/`-separated.
        public let name: String
        /// Path to open.
        public let path: String
        let device: UInt64
        let inode: UInt64
        let size: Int64
        let mtimeSeconds: Int
        let mtimeNanoseconds: Int
        let ctimeSeconds: Int
        let ctimeNanoseconds: Int
    }

    /// What the directory holds right now; compared between polls to decide whether to reload.
    public struct Listing: Sendable, Hashable {
        public let entries: [Entry]
        /// Errors met while listing (the set cannot be loaded while there are any).
        public let errors: [PolicyError]

        /// Nanoseconds since the newest file was last written or changed status (wall clock); nil when
        /// there is no file or a time is in the future (a skewed clock: then only the settle wait counts).
        public func quietFor(nowWallNanoseconds now: Int64) -> Int64? {
            guard !entries.isEmpty else { return nil }
            let newest = entries.map { max(Int64($0.mtimeSeconds) * 1_000_000_000 + Int64($0.mtimeNanoseconds),
                                           Int64($0.ctimeSeconds) * 1_000_000_000 + Int64($0.ctimeNanoseconds)) }.max() ?? 0
            return now >= newest ? now - newest : nil
        }
    }

    /// Lists the policy files (no file is opened).
    public static func scan(_ directory: String) -> Listing {
        var entries: [Entry] = []
        var errors: [PolicyError] = []
        var visited: Set<[UInt64]> = []
        var st = stat()
        guard stat(directory, &st) == 0 else {
            errors.append(unreadable(directory, "cannot read the policy directory: \(errnoText())"))
            return Listing(entries: [], errors: errors)
        }
        guard isDirectory(st) else {
            errors.append(unreadable(directory, "the policy path is not a directory"))
            return Listing(entries: [], errors: errors)
        }
        visited.insert([UInt64(st.st_dev), UInt64(st.st_ino)])
        walk(directory, relative: "", into: &entries, errors: &errors, visited: &visited)
        entries.sort { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        return Listing(entries: entries, errors: errors)
    }

    /// Reads the files of a listing. The names are the relative paths. A file over `limits.maxFileBytes`
    /// (by `stat`, then by what is read) is refused without reading it whole; `consistent` is false when a
    /// file's size differs from the listing's (it changed meanwhile).
    public static func read(_ listing: Listing, limits: LoadLimits = LoadLimits())
        -> (files: [PolicyFile], errors: [PolicyError], consistent: Bool) {
        var files: [PolicyFile] = []
        var errors = listing.errors
        var consistent = true
        var total: Int64 = 0
        for entry in listing.entries {
            total += entry.size
            if entry.size > Int64(limits.maxFileBytes) {
                errors.append(tooLarge(entry.name, limits))
                continue
            }
            if total > Int64(limits.maxTotalBytes) {
                errors.append(PolicyError(.limitExceeded, at: SourceLocation(file: entry.name, line: 1, column: 1), field: "",
                                          "the policy files add up to more than \(limits.maxTotalBytes) bytes (--max-policy-total-bytes)"))
                break
            }
            switch readAll(path: entry.path, maxBytes: limits.maxFileBytes) {
            case .success(let bytes):
                if Int64(bytes.count) != entry.size { consistent = false }
                if bytes.count > limits.maxFileBytes {
                    errors.append(tooLarge(entry.name, limits))
                    continue
                }
                guard let text = String(validating: bytes, as: UTF8.self) else {
                    errors.append(unreadable(entry.name, "the file is not valid UTF-8"))
                    continue
                }
                files.append(PolicyFile(name: entry.name, text: text))
            case .failure(let failure):
                errors.append(unreadable(entry.name, "cannot read the file: \(failure.reason)"))
            }
        }
        return (files, errors, consistent)
    }

    /// How many times a read is retried when files change under it before the set is refused.
    public static let readAttempts = 3

    /// Lists and reads the directory so that no file changed during the read (`StableRead`); after
    /// `readAttempts` reads that each saw a change, a `changed_while_reading` error.
    public static func readStable(_ directory: String, limits: LoadLimits = LoadLimits())
        -> (listing: Listing, files: [PolicyFile], errors: [PolicyError], stable: Bool) {
        var last = scan(directory)
        let stable = StableRead.read(attempts: readAttempts, snapshot: { () -> Listing in
            last = scan(directory)
            return last
        }, read: { listing -> (value: ([PolicyFile], [PolicyError]), consistent: Bool) in
            let (files, errors, consistent) = read(listing, limits: limits)
            return ((files, errors), consistent)
        })
        guard let stable else {
            return (last, [], [PolicyError(.changedWhileReading, at: SourceLocation(file: directory, line: 1, column: 1),
                                           field: "", "the policy files changed while being read, \(readAttempts) times in a row; try again once the writer is done")], false)
        }
        return (stable.snapshot, stable.value.0, stable.value.1, true)
    }

    /// Lists, reads and loads a directory in one go (`check`, `validate`), as `serve` does.
    public static func load(_ directory: String, options: MeshOptions, limits: LoadLimits = LoadLimits(),
                            allowEmpty: Bool = false) -> (result: Result<PolicySet, PolicyLoadFailure>, fileCount: Int) {
        let (_, files, errors, _) = readStable(directory, limits: limits)
        return (PolicyLoader.loadDirectory(directory, files: files, readErrors: errors, options: options, limits: limits,
                                           allowEmpty: allowEmpty), files.count)
    }

    // MARK: Internals

    static func isPolicyFileName(_ name: String) -> Bool {
        let lowered = name.lowercased()
        return lowered.hasSuffix(".yaml") || lowered.hasSuffix(".yml") || lowered.hasSuffix(".json")
    }

    static func tooLarge(_ name: String, _ limits: LoadLimits) -> PolicyError {
        PolicyError(.limitExceeded, at: SourceLocation(file: name, line: 1, column: 1), field: "",
                    "the file is over the limit of \(limits.maxFileBytes) bytes (--max-policy-file-bytes)")
    }

    static func entry(name: String, path: String, _ st: stat) -> Entry {
        #if canImport(Darwin)
        let mtime = st.st_mtimespec, ctime = st.st_ctimespec
        #else
        let mtime = st.st_mtim, ctime = st.st_ctim
        #endif
        return Entry(name: name, path: path, device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
                     mtimeSeconds: Int(mtime.tv_sec), mtimeNanoseconds: Int(mtime.tv_nsec),
                     ctimeSeconds: Int(ctime.tv_sec), ctimeNanoseconds: Int(ctime.tv_nsec))
    }

    static func isDirectory(_ st: stat) -> Bool { (st.st_mode & S_IFMT) == S_IFDIR }
    private static func isRegular(_ st: stat) -> Bool { (st.st_mode & S_IFMT) == S_IFREG }

    private static func walk(_ directory: String, relative: String, into entries: inout [Entry],
                             errors: inout [PolicyError], visited: inout Set<[UInt64]>) {
        guard let dir = opendir(directory) else {
            errors.append(unreadable(relative.isEmpty ? directory : relative, "cannot list the directory: \(errnoText())"))
            return
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let item = readdir(dir) {
            let name = withUnsafePointer(to: &item.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if name.hasPrefix(".") { continue }  // ".", "..", hidden files, ConfigMap's "..data"
            names.append(name)
        }
        for name in names {
            let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            let rel = relative.isEmpty ? name : relative + "/" + name
            var st = stat()
            guard stat(path, &st) == 0 else {
                // A dangling link, or a file removed meanwhile. Only a policy file's absence matters.
                if isPolicyFileName(name) { errors.append(unreadable(rel, "cannot read the file: \(errnoText())")) }
                continue
            }
            if isDirectory(st) {
                let key = [UInt64(st.st_dev), UInt64(st.st_ino)]
                if visited.insert(key).inserted {
                    walk(path, relative: rel, into: &entries, errors: &errors, visited: &visited)
                }
            } else if isRegular(st) && isPolicyFileName(name) {
                entries.append(entry(name: rel, path: path, st))
            }
        }
    }

    static func unreadable(_ name: String, _ message: String) -> PolicyError {
        PolicyError(.unreadable, at: SourceLocation(file: name, line: 1, column: 1), field: "", message)
    }
}

func errnoText(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}

/// Reads a whole file (or standard input for `nil`); with `maxBytes`, stops after `maxBytes + 1` bytes
/// (enough for the caller to see it is over), so a growing or huge file cannot exhaust memory.
public func readAll(path: String?, maxBytes: Int? = nil) -> Result<[UInt8], ReadAllError> {
    let fd: Int32
    if let path {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(ReadAllError(path: path, reason: errnoText())) }
    } else {
        fd = 0
    }
    defer { if path != nil { close(fd) } }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return .failure(ReadAllError(path: path, reason: errnoText()))
        }
        if n == 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
        if let maxBytes, bytes.count > maxBytes { break }
    }
    return .success(bytes)
}

public struct ReadAllError: Error, Sendable, CustomStringConvertible {
    /// nil for standard input.
    public let path: String?
    public let reason: String
    public var description: String { "\(path ?? "standard input"): \(reason)" }
}
