import Yams

/// A policy test file (`meshauthz test`), the format of the shared conformance cases:
///
///     description: what the file is about            # optional, ignored (as is `golden`, an oracle case's source)
///     policies: [ ...AuthorizationPolicy / PeerAuthentication resources... ]   # or
///     policiesDir: ../policies                       # relative to this file; or neither: `--policies DIR`
///     checks:
///       - name: frontend may GET                     # optional
///         source: {...}  destination: {...}  request: {...}  connection: {...}   # as POST /v1/check
///         expect: ALLOW | DENY
///         expectStage: default-deny                  # optional: expectRuleId, expectPolicy, expectRule,
///                                                    # expectMtlsMode, expectReasonContains, expectDryRun
///         why: one line                              # optional
///
/// Everything is checked before anything runs, with file, line and field: an unknown key (a misspelt
/// `expectStage` would make a check silently weaker), an `expect` that is not ALLOW or DENY, an unknown stage,
/// a request `/v1/check` would refuse, inline policies that do not load. Pure: the caller reads the file.
public struct PolicyTestFile: Sendable {
    public enum Policies: Sendable {
        /// `policies:` inline (an empty list is an intended empty set).
        case inline(PolicySet)
        /// `policiesDir:`, as written (relative to the test file).
        case directory(String)
        /// Neither: the runner's `--policies`.
        case commandLine
    }

    public let file: String
    public let policies: Policies
    public let checks: [PolicyTestCheck]

    /// `description`, `golden` and `oracle` (where and with which Envoy an oracle case's expectations were
    /// recorded) are read by people only.
    static let fileKeys: Set<String> = ["description", "golden", "oracle", "policies", "policiesDir", "checks"]

    public static func parse(_ text: String, file: String, options: MeshOptions = MeshOptions(),
                             limits: LoadLimits = LoadLimits()) -> Result<PolicyTestFile, PolicyLoadFailure> {
        let reader = YAMLReader(file: file)
        func failed(_ error: PolicyError) -> Result<PolicyTestFile, PolicyLoadFailure> {
            .failure(PolicyLoadFailure(errors: [error]))
        }
        if text.utf8.count > limits.maxFileBytes {
            return failed(.limit(file, "the file is \(text.utf8.count) bytes, over the limit of \(limits.maxFileBytes)"))
        }
        if let aliases = AliasBudget.check(text, file: file, maxAliasNodes: limits.maxAliasNodes) { return failed(aliases) }
        let documents = PolicyLoader.documents(of: PolicyFile(name: file, text: text), reader)
        guard reader.errors.isEmpty else { return .failure(PolicyLoadFailure(errors: reader.errors)) }
        guard documents.count == 1, let root = documents.first, !reader.isNull(root) else {
            return failed(PolicyError(.invalidValue, at: SourceLocation(file: file, line: 1, column: 1), field: "",
                                      "a test file is one YAML document (found \(documents.count))"))
        }
        guard let entries = reader.mapping(root, "", allowed: fileKeys) else {
            return .failure(PolicyLoadFailure(errors: reader.errors))
        }
        let fields = Dictionary(entries.map { ($0.key, $0.node) }, uniquingKeysWith: { a, _ in a })
        var policies = Policies.commandLine
        var errors: [PolicyError] = []
        switch (fields["policies"], fields["policiesDir"]) {
        case (let inline?, let directory?):
            _ = inline
            reader.fail(.invalidValue, directory, "policiesDir", "give policies or policiesDir, not both")
        case (let inline?, nil):
            let nodes = reader.isNull(inline) ? [] : reader.sequence(inline, "policies") ?? []
            switch PolicyLoader.load(nodes: nodes, file: file, options: options, limits: limits) {
            case .success(let set): policies = .inline(set)
            case .failure(let failure): errors += failure.errors
            }
        case (nil, let directory?):
            if let path = reader.string(directory, "policiesDir") {
                if path.isEmpty { reader.fail(.invalidValue, directory, "policiesDir", "policiesDir must not be empty") }
                policies = .directory(path)
            }
        case (nil, nil):
            break
        }
        var checks: [PolicyTestCheck] = []
        if let checksNode = fields["checks"], let items = reader.sequence(checksNode, "checks") {
            for (index, item) in items.enumerated() {
                if let check = PolicyTestCheck.parse(item, index: index, reader) { checks.append(check) }
            }
        } else if fields["checks"] == nil {
            reader.fail(.missingField, root, "checks", "a test file needs checks")
        }
        errors = reader.errors + errors
        if !errors.isEmpty { return .failure(PolicyLoadFailure(errors: errors)) }
        return .success(PolicyTestFile(file: file, policies: policies, checks: checks))
    }
}

extension PolicyLoader {
    /// Resources already parsed (a test file's inline `policies:`): positions are the test file's. No resource
    /// at all is an intended empty set here: the author wrote `policies: []`.
    static func load(nodes: [Node], file: String, options: MeshOptions, limits: LoadLimits) -> Result<PolicySet, PolicyLoadFailure> {
        var context = Context(set: PolicySet(options: options), limits: limits)
        let reader = YAMLReader(file: file)
        for node in nodes where !context.overLimit { decodeResource(node, reader, &context) }
        if !reader.errors.isEmpty { return .failure(PolicyLoadFailure(errors: reader.errors)) }
        var set = context.set
        set.authorizationPolicies.sort { $0.id < $1.id }
        set.peerAuthentications.sort { $0.id < $1.id }
        return .success(set)
    }
}
