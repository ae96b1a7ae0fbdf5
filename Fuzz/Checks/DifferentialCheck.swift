import MeshAuthz

/// The compiled matcher against the reference evaluator (the oracle), on requests drawn from the input
/// (`RequestDraw`) against a fixed policy set (`DifferentialPolicySet`): every `Decision` must be
/// identical, with the default index threshold and with tries in every bucket.
public enum DifferentialCheck {
    public static func check(_ input: UnsafeBufferPointer<UInt8>) -> [String] {
        var draw = RequestDraw(input, fixed.vocabulary)
        var problems: [String] = []
        // A few requests per input: the first bytes pick the first request, so short inputs stay useful.
        for _ in 0..<3 where problems.isEmpty {
            problems += compare(draw.request(), fixed.matchers)
        }
        return problems
    }

    /// The reference evaluator, then the compiled matcher at both index thresholds.
    struct Matchers: Sendable {
        let reference: ReferenceEvaluator
        let compiled: [CompiledPolicySet]
    }

    static func matchers(_ set: PolicySet) -> Matchers {
        Matchers(reference: ReferenceEvaluator(set),
                 compiled: [CompiledPolicySet(set), CompiledPolicySet(set, options: CompileOptions(indexThreshold: 0))])
    }

    static func compare(_ request: CheckRequest, _ matchers: Matchers) -> [String] {
        let expected = matchers.reference.evaluate(request)
        return matchers.compiled.compactMap { matcher in
            let actual = matcher.evaluate(request)
            return actual == expected ? nil : """
                compiled (threshold \(matcher.options.indexThreshold)) disagrees with the reference
                request:   \(request)
                reference: \(expected)
                compiled:  \(actual)
                """
        }
    }

    struct Fixed: Sendable {
        let matchers: Matchers
        let vocabulary: Vocabulary
    }

    /// Loaded once per process; a set that does not load is a bug in this file, not a finding.
    static let fixed: Fixed = {
        switch PolicyLoader.load([PolicyFile(name: "differential.yaml", text: DifferentialPolicySet.yaml)]) {
        case .success(let set): return Fixed(matchers: matchers(set), vocabulary: Vocabulary(set))
        case .failure(let failure): fatalError("the differential policy set does not load: \(failure)")
        }
    }()
}
