import ArgumentParser
import MeshAuthz
import MeshAuthzServer

struct Graph: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Who may call whom, from the policies and manifests; with --from/--to, whether a caller can reach a destination.",
        discussion: """
            Reads every PATH as lint does. Prints the graph as dot (default), json, mermaid or html (one \
            self-contained page). With --from NS[/SERVICE-ACCOUNT] --to NS[/WORKLOAD]: prints witness requests \
            (the /v1/check body that is allowed, and the rule that allows it), each confirmed by both decision \
            engines, and exits 1; or says that no request can be allowed and exits 0; when a rule could match \
            the caller but no request built from it was allowed, it says so and exits 1 (not proven isolated). \
            Exit 2 for usage errors, unreadable paths or policy files with errors.
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case dot, json, html, mermaid
    }

    @Argument(help: ArgumentHelp("Files or directories to read.", valueName: "path"))
    var paths: [String] = []

    @Option(name: .long, help: ArgumentHelp("dot, json, html or mermaid.", valueName: "format"))
    var format: Format = .dot

    @Option(name: .long, help: ArgumentHelp("Reachability: the caller, a namespace or namespace/service-account.", valueName: "ns[/sa]"))
    var from: String?

    @Option(name: .long, help: ArgumentHelp("Reachability: the destination, a namespace or namespace/workload (name or app label).", valueName: "ns[/workload]"))
    var to: String?

    @OptionGroup var analysis: AnalysisOptions

    func validate() throws {
        if paths.isEmpty { throw ValidationError("name at least one file or directory") }
        if (from == nil) != (to == nil) { throw ValidationError("--from and --to go together") }
        if let from, Reachability.Query.split(from) == nil { throw ValidationError("--from must be NAMESPACE or NAMESPACE/SERVICE-ACCOUNT") }
        if let to, Reachability.Query.split(to) == nil { throw ValidationError("--to must be NAMESPACE or NAMESPACE/WORKLOAD") }
    }

    func run() throws {
        let input = try analysis.read(paths, command: "graph")
        if !input.loadErrors.isEmpty {
            for error in input.loadErrors { printError(error.description) }
            printError("meshauthz graph: the policy set has \(input.loadErrors.count) error(s); serve would refuse it (meshauthz lint explains them)")
            throw ExitCode(2)
        }
        let decide = Self.confirmingEngine(input.set)
        guard let from, let to, let source = Reachability.Query.split(from), let target = Reachability.Query.split(to) else {
            let graph = AccessGraphBuilder(input, decide: decide).build()
            switch format {
            case .dot: writeStandardOutput(Array(GraphRendering.dot(graph).utf8))
            case .mermaid: writeStandardOutput(Array(GraphRendering.mermaid(graph).utf8))
            case .json: writeStandardOutput(GraphRendering.json(graph) + [0x0A])
            case .html: writeStandardOutput(Array(GraphPage.html(graph).utf8))
            }
            return
        }
        let query = Reachability.Query(fromNamespace: source.namespace, fromServiceAccount: source.name,
                                       toNamespace: target.namespace, toWorkload: target.name)
        let answer: Reachability.Answer
        do {
            answer = try Reachability(input, decide: decide).answer(query)
        } catch {
            printError("meshauthz graph: --to \(to): \(error)")
            throw ExitCode(2)
        }
        switch answer {
        case .reachable(let witnesses):
            var out = "REACHABLE: \(from) can reach \(to): \(witnesses.count) witness request(s), each allowed by the decision engines\n"
            for witness in witnesses {
                var writer = JSONWriter()
                witness.request.writeJSON(into: &writer)
                out += "\n\(witness.destination): allowed by \(witness.ruleID ?? "no ALLOW policy applies")\n"
                out += String(decoding: writer.bytes, as: UTF8.self) + "\n"
            }
            writeStandardOutput(Array(out.utf8))
            throw ExitCode(1)
        case .unreachable(let destinations, let callers):
            writeStandardOutput(Array("""
                ISOLATED: no request from \(from) can be allowed to \(to): no ALLOW rule applying to \
                \(destinations.joined(separator: ", ")) accepts \(callers.count == 1 ? callers[0] : "any of \(callers.count) identities of \(from)")

                """.utf8))
        case .undetermined(let reasons):
            writeStandardOutput(Array(("UNDETERMINED: \(from) -> \(to) is not proven isolated:\n"
                                       + reasons.map { "  " + $0 + "\n" }.joined()).utf8))
            throw ExitCode(1)
        }
    }

    /// A request is allowed only when both engines allow it: the compiled matcher that serves and the
    /// reference evaluator it is tested against.
    static func confirmingEngine(_ set: PolicySet) -> @Sendable (CheckRequest) -> Decision {
        let compiled = CompiledPolicySet(set)
        let reference = ReferenceEvaluator(set)
        return { request in
            let decision = compiled.evaluate(request)
            guard decision.allowed else { return decision }
            let oracle = reference.evaluate(request)
            return oracle.allowed ? decision : oracle
        }
    }
}
