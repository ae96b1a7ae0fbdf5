import Yams

/// What every analyzer looks at: the policies that loaded (those with errors are reported and left out),
/// the inventory of the manifests, and the errors of both readers.
public struct AnalysisInput: Sendable {
    public let set: PolicySet
    public let inventory: Inventory
    public let loadErrors: [PolicyError]
    public let manifestErrors: [PolicyError]
    /// The inventory's queries, indexed.
    let index: InventoryIndex

    public init(set: PolicySet, inventory: Inventory, loadErrors: [PolicyError] = [], manifestErrors: [PolicyError] = []) {
        self.set = set
        self.inventory = inventory
        self.index = InventoryIndex(inventory)
        self.loadErrors = loadErrors
        self.manifestErrors = manifestErrors
    }

    public var options: MeshOptions { self.set.options }

    /// Reads files as `lint` does: the policy loader for the policies, the inventory reader for the rest.
    public static func read(_ files: [PolicyFile], readErrors: [PolicyError] = [], options: MeshOptions = MeshOptions(),
                            limits: LoadLimits = LoadLimits()) -> AnalysisInput {
        // Each file is parsed once: the loader's documents are read again for the manifests.
        var parsed: [String: [Node]] = [:]
        let (set, loadErrors) = PolicyLoader.loadCollecting(files, options: options, limits: limits) { file, reader in
            reader.recordsFieldLocations = true  // findings point at the field they are about
            let documents = PolicyLoader.documents(of: file, reader)
            parsed[file.name] = documents
            return documents
        }
        let (inventory, manifestErrors) = InventoryReader.read(files, limits: limits, parsed: parsed)
        // A syntax or limit error is found by both readers: report it once.
        let seen = Set(loadErrors.map { "\($0.location) \($0.message)" })
        return AnalysisInput(set: set, inventory: inventory, loadErrors: readErrors + loadErrors,
                             manifestErrors: manifestErrors.filter { !seen.contains("\($0.location) \($0.message)") })
    }

    /// The workloads a policy applies to (ReferenceEvaluator's rule: its namespace, or every namespace
    /// from the root namespace; selector or targetRefs).
    func workloads(of policy: AuthorizationPolicy) -> [Inventory.Workload] {
        let evaluator = ReferenceEvaluator(set)
        // Only the root namespace's policies reach other namespaces.
        let candidates = policy.id.namespace == options.rootNamespace ? inventory.workloads
            : index.workloads(in: policy.id.namespace, selectedBy: nil)
        return candidates.filter { evaluator.applies(policy, to: $0.asDestination) }
    }
}

extension Inventory.Workload {
    /// The destination a request to this workload names.
    public var asDestination: CheckRequest.Workload {
        CheckRequest.Workload(namespace: id.namespace, labels: labels)
    }
}

/// One check of the repo, reporting under one `FindingCode`.
public protocol Analyzer: Sendable {
    var code: FindingCode { get }
    /// Whether it needs workload manifests (without them it is skipped, and `lint` says so once).
    var needsInventory: Bool { get }
    func analyze(_ input: AnalysisInput) -> [Finding]
}

extension Analyzer {
    public var needsInventory: Bool { false }
}

/// `lint`: every analyzer over the input, findings sorted.
public enum Linter {
    public static let analyzers: [any Analyzer] = [
        LoadErrorAnalyzer(), ManifestErrorAnalyzer(),
        MeshNotStrictAnalyzer(), PlaintextToStrictAnalyzer(), MutualToDisabledAnalyzer(), UnknownHostAnalyzer(),
        AllowNothingOnWorkloadAnalyzer(), AllowNothingNamespaceAnalyzer(), AllowAnyRequestAnalyzer(),
        SelectsNothingAnalyzer(), UnknownServiceAccountAnalyzer(), PrincipalFormAnalyzer(), UnknownNamespaceAnalyzer(),
        AllowOverriddenByDenyAnalyzer(), PathNeverMatchesAnalyzer(), LowercaseMethodAnalyzer(), CustomPolicyAnalyzer(),
        ExperimentalKeyAnalyzer(), DeniedByAllowNothingAnalyzer(), UncoveredWorkloadAnalyzer(), UndiscoverableKeysAnalyzer(),
    ]

    public static func run(_ input: AnalysisInput) -> [Finding] {
        var findings: [Finding] = []
        var skipped: [FindingCode] = []
        for analyzer in analyzers {
            if analyzer.needsInventory && !input.inventory.hasWorkloads {
                skipped.append(analyzer.code)
                continue
            }
            findings += analyzer.analyze(input)
        }
        if !skipped.isEmpty {
            let first = input.set.authorizationPolicies.first?.location ?? input.set.peerAuthentications.first?.location
                ?? SourceLocation(file: "", line: 0, column: 0)
            findings.append(Finding(.noManifests, at: SourceLocation(file: first.file, line: 1, column: 1), resource: "",
                "no workload manifests (Deployment, StatefulSet, DaemonSet, ReplicaSet, Pod, Job, CronJob) among the files: " +
                "skipped \(skipped.map(\.rawValue).joined(separator: ", "))",
                fix: "add the directory of the workload manifests to the paths"))
        }
        return findings.sorted(by: Finding.ordered)
    }
}
