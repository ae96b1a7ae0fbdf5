/// MA0001-MA0005: every error the policy loader reports (what `validate` prints and `serve` refuses a
/// set for), each under the code of its kind. `code` is the code this analyzer is listed under; the
/// findings carry the one that fits each error.
struct LoadErrorAnalyzer: Analyzer {
    var code: FindingCode { .syntax }

    func analyze(_ input: AnalysisInput) -> [Finding] {
        input.loadErrors.map { error in
            Finding(Self.code(for: error.code), at: error.location, resource: "",
                    error.field.isEmpty ? error.message : "\(error.field): \(error.message)",
                    fix: Self.fix(error))
        }
    }

    static func code(for code: PolicyError.Code) -> FindingCode {
        switch code {
        case .syntax, .unreadable, .limitExceeded, .changedWhileReading, .emptySet: return .syntax
        case .unknownField: return .unknownField
        case .missingField, .wrongType, .invalidValue, .unknownConditionKey: return .invalidField
        case .misspelledKind, .wrongAPIGroup: return .misspelledKind
        case .duplicateResource: return .duplicateResource
        }
    }

    /// The loader's messages already say "did you mean"; the fix repeats what to write.
    static func fix(_ error: PolicyError) -> String? {
        guard let start = error.message.range(of: "did you mean ")?.upperBound,
              let end = error.message[start...].firstIndex(of: "?") else { return nil }
        return "write " + error.message[start..<end]
    }
}

/// MA0006: a manifest (workload, Service, DestinationRule) the inventory reader could not make sense
/// of; it is left out of the analyses.
struct ManifestErrorAnalyzer: Analyzer {
    var code: FindingCode { .manifestError }

    func analyze(_ input: AnalysisInput) -> [Finding] {
        input.manifestErrors.map { error in
            Finding(error.code == .syntax ? .syntax : .manifestError, at: error.location, resource: "",
                    error.field.isEmpty ? error.message : "\(error.field): \(error.message)",
                    fix: LoadErrorAnalyzer.fix(error))
        }
    }
}
