import MeshAuthz

/// `PolicyLoader.load` on an arbitrary policy file. Beyond not crashing (a crash here takes the server
/// down on a reload): a refusal carries at least one error, each with a 1-based line and column in the
/// file; a set that loads compiles, and the compiled matcher decides a few requests drawn from the input
/// exactly like the reference evaluator.
public enum PolicyLoaderCheck {
    public static func check(_ input: UnsafeBufferPointer<UInt8>) -> [String] {
        let text = String(decoding: input, as: UTF8.self)
        switch PolicyLoader.load([PolicyFile(name: "fuzz.yaml", text: text)]) {
        case .failure(let failure):
            if failure.errors.isEmpty { return ["refused without an error: \(show(input))"] }
            return failure.errors.compactMap { error in
                error.location.file == "fuzz.yaml" && error.location.line >= 1 && error.location.column >= 1
                    ? nil : "error without a place in the file (\(error)) for \(show(input))"
            }
        case .success(let set):
            let matchers = DifferentialCheck.matchers(set)
            var draw = RequestDraw(input, Vocabulary(set))
            var problems: [String] = []
            for _ in 0..<4 {
                problems += DifferentialCheck.compare(draw.request(), matchers)
            }
            return problems.map { "\($0)\npolicy file: \(show(input))" }
        }
    }
}
