import MeshAuthz
import MeshAuthzServer

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs policy test files (`meshauthz test`): reads them, loads the policies each names (a directory once,
/// however many files use it), decides every check with the chosen engine and, for a failure, explains it.
struct PolicyTestRunner {
    struct CheckResult {
        let check: PolicyTestCheck
        let answer: CheckAnswer
        /// Empty when the check passed.
        let failures: [String]
        var passed: Bool { failures.isEmpty }
    }

    struct FileResult {
        /// The path as given or found under a directory argument.
        let file: String
        /// Why the file could not run (unreadable, invalid, its policies invalid); its checks then did not run.
        let errors: [PolicyError]
        let checks: [CheckResult]
        let seconds: Double
    }

    struct Summary {
        let passed: Int
        let failed: Int
        /// Files that could not run.
        let errors: Int

        init(_ results: [FileResult]) {
            passed = results.reduce(0) { $0 + $1.checks.filter(\.passed).count }
            failed = results.reduce(0) { $0 + $1.checks.filter { !$0.passed }.count }
            errors = results.filter { !$0.errors.isEmpty }.count
        }
    }

    let mesh: MeshOptions
    let limits: LoadLimits
    let allowEmpty: Bool
    let normalization: PathNormalizationMode
    let engine: EngineKind
    let commandLinePolicies: String?
    /// Policy directories already loaded, by path.
    private var directories: [String: Result<(PolicySet, any DecisionEngine), PolicyLoadFailure>] = [:]

    init(mesh: MeshOptions, limits: LoadLimits, allowEmpty: Bool, normalization: PathNormalizationMode,
         engine: EngineKind, commandLinePolicies: String?) {
        self.mesh = mesh
        self.limits = limits
        self.allowEmpty = allowEmpty
        self.normalization = normalization
        self.engine = engine
        self.commandLinePolicies = commandLinePolicies
    }

    /// A test file, or every test file under a directory (sorted, as the policy loader lists them).
    mutating func run(path: String) -> [FileResult] {
        var st = stat()
        guard stat(path, &st) == 0 else {
            return [FileResult(file: path, errors: [Self.unreadable(path, "cannot read: \(String(cString: strerror(errno)))")],
                               checks: [], seconds: 0)]
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { return [run(file: path)] }
        let listing = PolicyDirectory.scan(path)
        var results = listing.errors.map { FileResult(file: path, errors: [$0], checks: [], seconds: 0) }
        if listing.entries.isEmpty && listing.errors.isEmpty {
            results.append(FileResult(file: path, errors: [Self.unreadable(path, "no test file (*.yaml, *.yml, *.json) in this directory")],
                                      checks: [], seconds: 0))
        }
        for entry in listing.entries { results.append(run(file: entry.path)) }
        return results
    }

    mutating func run(file: String) -> FileResult {
        let started = monotonicNanoseconds()
        func done(_ errors: [PolicyError], _ checks: [CheckResult] = []) -> FileResult {
            FileResult(file: file, errors: errors, checks: checks, seconds: Double(monotonicNanoseconds() - started) / 1e9)
        }
        let text: String
        switch readAll(path: file, maxBytes: limits.maxFileBytes) {
        case .success(let bytes): text = String(decoding: bytes, as: UTF8.self)
        case .failure(let error): return done([Self.unreadable(file, error.reason)])
        }
        let test: PolicyTestFile
        switch PolicyTestFile.parse(text, file: file, options: mesh, limits: limits) {
        case .success(let parsed): test = parsed
        case .failure(let failure): return done(failure.errors)
        }
        let loaded: Result<(PolicySet, any DecisionEngine), PolicyLoadFailure>
        switch test.policies {
        case .inline(let set): loaded = .success((set, engine.makeEngine(set)))
        case .directory(let relative): loaded = directory(relative.hasPrefix("/") ? relative : Self.parent(of: file) + relative)
        case .commandLine:
            guard let commandLinePolicies else {
                return done([PolicyError(.missingField, at: SourceLocation(file: file, line: 1, column: 1), field: "policies",
                                         "the file names no policies (policies: or policiesDir:) and there is no --policies")])
            }
            loaded = directory(commandLinePolicies)
        }
        let (set, decider): (PolicySet, any DecisionEngine)
        switch loaded {
        case .success(let pair): (set, decider) = pair
        case .failure(let failure): return done(failure.errors)
        }
        var results: [CheckResult] = []
        // Tokens in a check's request are validated as the server does (inline keys only: nothing is fetched).
        let authentication = AuthenticatedCheck(set)
        let now = Int64(WallTime.now().seconds)
        for check in test.checks {
            guard let prepared = try? check.request.normalizingPath(normalization) else {
                return done([PolicyError(.invalidValue, at: check.location, field: "checks[\(check.index)].request.path",
                                         "not a path Envoy would accept (origin form starting with /, no control or non-ASCII bytes, no %00)")])
            }
            var decided = prepared.request
            let decision: Decision
            do {
                (decision, _) = try authentication.decide(prepared.request, now: now, element: nil) { request in
                    decided = request
                    return decider.evaluate(request)
                }
            } catch {
                return done([PolicyError(.invalidValue, at: check.location, field: "checks[\(check.index)]\(error.field.map { "." + $0 } ?? "")",
                                         error.message)])
            }
            let failures = check.failures(decision)
            // A failure is explained (the reference evaluator's trace of the request as decided, its verified
            // identity included); a pass costs no more than the decision.
            let explanation = failures.isEmpty || decision.stage == .requestAuthentication
                ? nil : ReferenceEvaluator(set).explain(decided)
            results.append(CheckResult(check: check, answer: CheckAnswer(decision: decision, normalizedPath: prepared.normalizedPath,
                                                                         explanation: explanation),
                                       failures: failures))
        }
        return done([], results)
    }

    private mutating func directory(_ path: String) -> Result<(PolicySet, any DecisionEngine), PolicyLoadFailure> {
        if let known = directories[path] { return known }
        let result = PolicyDirectory.load(path, options: mesh, limits: limits, allowEmpty: allowEmpty).result
            .map { set in (set, engine.makeEngine(set)) }
            // Errors name files relative to the directory: say which directory.
            .mapError { failure in
                PolicyLoadFailure(errors: failure.errors.map { error in
                    let location = error.location.file.hasPrefix("/") || error.location.file == path ? error.location
                        : SourceLocation(file: Self.join(path, error.location.file), line: error.location.line,
                                         column: error.location.column)
                    return PolicyError(error.code, at: location, field: error.field, error.message)
                })
            }
        directories[path] = result
        return result
    }

    static func parent(of file: String) -> String {
        guard let slash = file.lastIndex(of: "/") else { return "" }
        return String(file[...slash])
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    static func unreadable(_ path: String, _ message: String) -> PolicyError {
        PolicyError(.unreadable, at: SourceLocation(file: path, line: 1, column: 1), field: "", message)
    }
}
