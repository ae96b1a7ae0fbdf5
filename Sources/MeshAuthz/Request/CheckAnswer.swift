/// A `/v1/check` (and `meshauthz check`) answer: the decision, plus what the person asking should know
/// about how the request was read.
public struct CheckAnswer: Sendable, Hashable {
    public var decision: Decision
    /// The target the decision was made on, when normalization changed the one sent.
    public var normalizedPath: String?
    /// Signs of a mistake in the question, such as a destination nothing applies to.
    public var warnings: [String]
    /// The reference evaluator's trace, when asked for (`?explain=true`, `meshauthz explain`).
    public var explanation: Explanation?
    /// `iss/sub` of the token verified under a RequestAuthentication, when there is one.
    public var requestPrincipal: String?

    public init(decision: Decision, normalizedPath: String? = nil, warnings: [String] = [],
                explanation: Explanation? = nil, requestPrincipal: String? = nil) {
        self.decision = decision
        self.normalizedPath = normalizedPath
        self.warnings = warnings
        self.explanation = explanation
        self.requestPrincipal = requestPrincipal
    }

    /// The decision's JSON, then `normalizedPath`, `warnings` and `explain` when there are any.
    public func writeJSON(into writer: inout JSONWriter) {
        decision.writeJSON(into: &writer, closing: false)
        if let normalizedPath {
            writer.appendRaw(#","normalizedPath":"#)
            writer.appendQuoted(normalizedPath)
        }
        if let requestPrincipal {
            writer.appendRaw(#","requestPrincipal":"#)
            writer.appendQuoted(requestPrincipal)
        }
        if !warnings.isEmpty {
            writer.appendRaw(#","warnings":["#)
            for (position, warning) in warnings.enumerated() {
                if position > 0 { writer.appendRaw(",") }
                writer.appendQuoted(warning)
            }
            writer.appendRaw("]")
        }
        if let explanation {
            writer.appendRaw(#","explain":"#)
            explanation.writeJSON(into: &writer)
        }
        writer.endObject()
    }

    public var jsonBytes: [UInt8] {
        var writer = JSONWriter(capacity: 320)
        writeJSON(into: &writer)
        return writer.bytes
    }

    public static func jsonBytes(_ answers: [CheckAnswer]) -> [UInt8] {
        var writer = JSONWriter(capacity: 2 + 320 * answers.count)
        writer.beginArray()
        for answer in answers { answer.writeJSON(into: &writer) }
        writer.endArray()
        return writer.bytes
    }
}

extension CheckRequest {
    /// The request with its path normalized as the destination's proxy does under `mode` (the same
    /// normalization `/ext_authz` applies), and the normalized target when it differs from the one sent.
    /// A target Envoy would refuse is an error naming `request.path` (under `element` in a batch).
    public func normalizingPath(_ mode: PathNormalizationMode, element: Int? = nil)
        throws(RequestError) -> (request: CheckRequest, normalizedPath: String?) {
        guard let path = request.path else { return (self, nil) }
        guard let normalized = PathNormalization.normalize(path, mode) else {
            throw RequestError.invalidRequest(
                "\"\(path)\" is not a path Envoy would accept (origin form starting with /, no control or non-ASCII bytes, no %00)",
                field: FieldLocation(element: element).field("request", "path"))
        }
        if normalized == path { return (self, nil) }
        var copy = self
        copy.request.path = normalized
        return (copy, normalized)
    }
}

extension PolicySet {
    /// Warnings for a destination that no AuthorizationPolicy (of its namespace or the root namespace)
    /// and no PeerAuthentication applies to: decisions there are "allow, nothing applies", and the
    /// usual cause is a typo in the namespace or a label.
    public func destinationWarnings(_ destination: CheckRequest.Workload) -> [String] {
        let evaluator = ReferenceEvaluator(self)
        if authorizationPolicies.contains(where: { evaluator.applies($0, to: destination) }) { return [] }
        if PeerAuthenticationResolver(self).mode(for: destination).decidedBy != nil { return [] }
        let labels = destination.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        return ["no AuthorizationPolicy or PeerAuthentication applies to destination namespace "
                + "\"\(destination.namespace ?? "")\" with labels {\(labels)}: check the namespace and labels for a typo"]
    }
}
