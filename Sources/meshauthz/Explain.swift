import ArgumentParser
import MeshAuthz
import MeshAuthzServer

struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Explain the decision for one request: every policy that applies, rule by rule, field by field.",
        discussion: """
            Reads one request object (the shape of POST /v1/check) from a file or standard input. The text form \
            (default) has one line per policy and rule, ✔/✘ per field, the policies that do not apply and why, \
            and last the closest miss of a denial. A token in the request is validated first (inline keys \
            only), as by check; a rejected one is the answer. --output json prints the /v1/check?explain=true \
            answer. The decision is the engine's (--engine); the trace is the reference evaluator's. \
            Exit status: 0 allowed, 1 denied, 2 bad input or bad policies.
            """)

    enum Output: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    @OptionGroup var policyOptions: PolicyOptions

    @OptionGroup var normalization: NormalizationOptions

    @OptionGroup var loadOptions: LoadOptions

    @Option(name: .long, help: ArgumentHelp("Request JSON file (default: standard input; - too).", valueName: "file"))
    var request: String?

    @Option(name: .long, help: ArgumentHelp("text or json.", valueName: "format"))
    var output: Output = .text

    @Option(name: .long, help: ArgumentHelp("Decision engine: reference or compiled.", valueName: "engine"))
    var engine: EngineKind = .compiled

    func run() throws {
        let set = try policyOptions.loadSet(loadOptions, command: "explain")
        let input = try readRequestBody(request, command: "explain")
        let prepared: (request: CheckRequest, normalizedPath: String?)
        do {
            guard case .single(let one) = try CheckRequest.decodeBody(input) else {
                printError("meshauthz explain: explains one request: give an object, not an array (meshauthz check decides arrays)")
                throw ExitCode(2)
            }
            prepared = try one.normalizingPath(normalization.pathNormalization)
        } catch let error as RequestError {
            printError("meshauthz explain: bad request: \(error.description)")
            throw ExitCode(2)
        }
        // A token in the request is validated first, as `check` and the server do (inline keys only); the trace
        // is then of the request as decided, its verified identity included.
        let evaluator = engine.makeEngine(set)
        var decided = prepared.request
        let decision: Decision
        let result: AuthenticationResult?
        do {
            (decision, result) = try AuthenticatedCheck(set).decide(prepared.request, now: Int64(WallTime.now().seconds)) { request in
                decided = request
                return evaluator.evaluate(request)
            }
        } catch {
            printError("meshauthz explain: bad request: \(error.description)")
            throw ExitCode(2)
        }
        guard decision.stage != .requestAuthentication else {
            // A refused token: no policy was consulted, there is no authorization to explain.
            switch output {
            case .json:
                var bytes = CheckAnswer(decision: decision, normalizedPath: prepared.normalizedPath).jsonBytes
                bytes.append(0x0A)
                writeStandardOutput(bytes)
            case .text:
                writeStandardOutput(Array("✘ DENY before any policy: \(decision.reason)\n".utf8))
            }
            throw ExitCode(1)
        }
        let explanation = ReferenceEvaluator(set).explain(decided)
        if explanation.decision != decision {
            // Never expected (a test holds them equal on every fixture): say so rather than explain another answer.
            printError("meshauthz explain: warning: the \(engine.rawValue) engine decided \(decision.allowed ? "ALLOW" : "DENY") (\(decision.reason)); the trace below is the reference evaluator's: please report this")
        }
        let warnings = decision.stage == .noAllowPolicy ? set.destinationWarnings(prepared.request.destination) : []
        switch output {
        case .json:
            var bytes = CheckAnswer(decision: decision, normalizedPath: prepared.normalizedPath, warnings: warnings,
                                    explanation: explanation, requestPrincipal: result?.identity?.requestPrincipal).jsonBytes
            bytes.append(0x0A)
            writeStandardOutput(bytes)
        case .text:
            var text = ""
            if let normalized = prepared.normalizedPath { text += "path normalized to \(normalized)\n" }
            if let principal = result?.identity?.requestPrincipal { text += "verified token: request principal \(principal)\n" }
            for warning in warnings { text += "warning: \(warning)\n" }
            text += explanation.text()
            writeStandardOutput(Array(text.utf8))
        }
        if !decision.allowed { throw ExitCode(1) }
    }
}
