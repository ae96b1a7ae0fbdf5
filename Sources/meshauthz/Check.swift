import ArgumentParser
import MeshAuthz
import MeshAuthzServer

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decide one request (or a JSON array of requests) read from a file or standard input.",
        discussion: """
            Prints the decision JSON (an array for an array), the same as POST /v1/check answers. \
            Exit status: 0 allowed (every request of an array), 1 denied, 2 bad input or bad policies \
            (errors on standard error, as FILE:LINE:COL: FIELD: message for policy files).
            """)

    @OptionGroup var policyOptions: PolicyOptions

    @OptionGroup var normalization: NormalizationOptions

    @OptionGroup var loadOptions: LoadOptions

    @Option(name: .long, help: ArgumentHelp("Request JSON file (default: standard input; - too).", valueName: "file"))
    var request: String?

    @Option(name: .long, help: ArgumentHelp("Decision engine: reference or compiled.", valueName: "engine"))
    var engine: EngineKind = .compiled

    func run() throws {
        let set = try policyOptions.loadSet(loadOptions, command: "check")
        let input = try readRequestBody(request, command: "check")
        let body: CheckRequestBody
        do {
            body = try CheckRequest.decodeBody(input)
        } catch {
            printError("meshauthz check: bad request: \(error.description)")
            throw ExitCode(2)
        }

        let requests: [CheckRequest]
        switch body {
        case .single(let one): requests = [one]
        case .batch(let many): requests = many
        }
        var answers: [CheckAnswer] = []
        let evaluator = engine.makeEngine(set)
        // Tokens in the request are validated as the server does (inline keys only: `check` fetches nothing,
        // so a jwksUri issuer's tokens fail here).
        let authentication = AuthenticatedCheck(set)
        let now = Int64(WallTime.now().seconds)
        for (position, one) in requests.enumerated() {
            let prepared: (request: CheckRequest, normalizedPath: String?)
            let decision: Decision
            let result: AuthenticationResult?
            do {
                let element: Int? = if case .batch = body { position } else { nil }
                prepared = try one.normalizingPath(normalization.pathNormalization, element: element)
                (decision, result) = try authentication.decide(prepared.request, now: now, element: element,
                                                               evaluate: evaluator.evaluate)
            } catch {
                printError("meshauthz check: bad request: \(error.description)")
                throw ExitCode(2)
            }
            let warnings = decision.stage == .noAllowPolicy ? set.destinationWarnings(prepared.request.destination) : []
            for warning in warnings { printError("meshauthz check: warning: \(warning)") }
            answers.append(CheckAnswer(decision: decision, normalizedPath: prepared.normalizedPath, warnings: warnings,
                                       requestPrincipal: result?.identity?.requestPrincipal))
        }
        let allowed = answers.allSatisfy(\.decision.allowed)
        var output: [UInt8]
        switch body {
        case .single: output = answers[0].jsonBytes
        case .batch: output = CheckAnswer.jsonBytes(answers)
        }
        output.append(0x0A)
        writeStandardOutput(output)
        if !allowed { throw ExitCode(1) }
    }
}
