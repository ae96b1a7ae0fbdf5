import Yams

/// Reads typed values out of Yams nodes, collecting errors with file, line and field path
/// instead of stopping at the first one, so a user sees every problem of a file at once.
final class YAMLReader {
    let file: String
    private(set) var errors: [PolicyError] = []
    /// Whether decoders record where each field was written (`AuthorizationPolicy.fieldLocations`): for
    /// analysis only, since it costs memory per value (about 3.6 KB a policy) that deciding never reads.
    var recordsFieldLocations = false

    init(file: String) { self.file = file }

    func location(_ node: Node) -> SourceLocation {
        let mark = node.mark
        return SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
    }

    func fail(_ code: PolicyError.Code, _ node: Node, _ field: String, _ message: String) {
        errors.append(PolicyError(code, at: location(node), field: field, message))
    }

    func record(_ error: PolicyError) { errors.append(error) }

    func isNull(_ node: Node) -> Bool {
        if case .scalar(let scalar) = node, scalar.style == .plain, node.null != nil { return true }
        return false
    }

    /// A mapping's entries in order. Unknown keys are errors when `allowed` is given.
    func mapping(_ node: Node, _ field: String, allowed: Set<String>? = nil) -> [(key: String, node: Node)]? {
        guard case .mapping(let mapping) = node else {
            fail(.wrongType, node, field, "expected a mapping, found \(describe(node))")
            return nil
        }
        var entries: [(key: String, node: Node)] = []
        var seen: Set<String> = []
        for (keyNode, valueNode) in mapping {
            guard case .scalar(let key) = keyNode else {
                fail(.wrongType, keyNode, field, "mapping keys must be strings")
                continue
            }
            let path = join(field, key.string)
            if let allowed, !allowed.contains(key.string) {
                fail(.unknownField, keyNode, path, "unknown field \"\(key.string)\"" + suggestion(key.string, allowed))
                continue
            }
            guard seen.insert(key.string).inserted else {
                fail(.invalidValue, keyNode, path, "duplicate key \"\(key.string)\"")
                continue
            }
            entries.append((key.string, valueNode))
        }
        return entries
    }

    func string(_ node: Node, _ field: String) -> String? {
        guard case .scalar(let scalar) = node, !isNull(node) else {
            fail(.wrongType, node, field, "expected a string, found \(describe(node))")
            return nil
        }
        return scalar.string
    }

    /// A list of strings; nil entries and empty strings are errors (istiod rejects them).
    func strings(_ node: Node, _ field: String) -> [(value: String, node: Node)] {
        if isNull(node) { return [] }
        guard case .sequence(let sequence) = node else {
            fail(.wrongType, node, field, "expected a list of strings, found \(describe(node))")
            return []
        }
        var values: [(value: String, node: Node)] = []
        for (index, item) in sequence.enumerated() {
            let path = "\(field)[\(index)]"
            guard let value = string(item, path) else { continue }
            if value.isEmpty {
                fail(.invalidValue, item, path, "empty string is not a valid value")
                continue
            }
            values.append((value, item))
        }
        return values
    }

    func sequence(_ node: Node, _ field: String) -> [Node]? {
        if isNull(node) { return nil }
        guard case .sequence(let sequence) = node else {
            fail(.wrongType, node, field, "expected a list, found \(describe(node))")
            return nil
        }
        return Array(sequence)
    }

    func stringMap(_ node: Node, _ field: String) -> [String: String] {
        guard let entries = mapping(node, field) else { return [:] }
        var result: [String: String] = [:]
        for (key, valueNode) in entries {
            if let value = string(valueNode, join(field, key)) { result[key] = value }
        }
        return result
    }

    func join(_ field: String, _ key: String) -> String { field.isEmpty ? key : field + "." + key }

    private func describe(_ node: Node) -> String {
        switch node {
        case .scalar: return isNull(node) ? "null" : "a scalar"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    private func suggestion(_ key: String, _ allowed: Set<String>) -> String {
        if let close = didYouMean(key, among: allowed) { return " (did you mean \"\(close)\"?)" }
        return "; expected one of: " + allowed.sorted().joined(separator: ", ")
    }
}
