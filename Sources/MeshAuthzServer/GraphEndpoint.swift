import MeshAuthz
import MicroHTTPD

/// `GET /v1/graph`: who may call whom under the set in force (its manifests too, when the policy
/// directory holds any), as the self-contained HTML page (default) or `?format=dot|json|mermaid|html`.
/// Edges are confirmed by the engine that serves decisions. Built once per loaded set and format, then
/// served from `GraphAnswers`: on a large set a graph takes a second of CPU (BENCHMARKS.md), and anyone who
/// can connect could otherwise make every request cost that, on the threads that serve decisions.
extension API {
    enum GraphFormat: String, CaseIterable {
        case html, json, dot, mermaid
    }

    func graph(_ request: HTTPRequest) -> HTTPResponse {
        let query = request.rawTarget.split(separator: "?", maxSplits: 1).dropFirst().first ?? ""
        var format = GraphFormat.html
        for item in query.split(separator: "&") {
            let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard pair.first == "format" else { continue }
            guard pair.count == 2, let chosen = GraphFormat(rawValue: String(pair[1])) else {
                return Self.error(400, code: "invalid_request",
                                  "format must be one of \(GraphFormat.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            format = chosen
        }
        guard let loaded = store.current.loaded else {
            return Self.error(503, code: "not_ready", "no valid policy set is loaded")
        }
        if let cached = loaded.graphAnswers.answer(format.rawValue) { return cached }
        let engine = loaded.engine
        let input = AnalysisInput(set: loaded.policySet, inventory: loaded.inventory)
        let graph = AccessGraphBuilder(input, decide: { engine.evaluate($0) }).build()
        let response: HTTPResponse
        switch format {
        case .html:
            response = HTTPResponse(status: 200, headers: [("Content-Type", "text/html; charset=utf-8")], body: GraphPage.html(graph))
        case .json:
            response = Self.json(GraphRendering.json(graph))
        case .dot:
            response = HTTPResponse(status: 200, headers: [("Content-Type", "text/vnd.graphviz; charset=utf-8")], body: GraphRendering.dot(graph))
        case .mermaid:
            response = HTTPResponse(status: 200, headers: [("Content-Type", "text/plain; charset=utf-8")], body: GraphRendering.mermaid(graph))
        }
        loaded.graphAnswers.store(format.rawValue, response)
        return response
    }
}

/// The `/v1/graph` answers of one loaded set, by format. Two first requests may both build one (the
/// second store wins, with the same bytes); after that every request is a lookup.
final class GraphAnswers: Sendable {
    final class Entries: Sendable {
        let responses: [String: HTTPResponse]
        init(_ responses: [String: HTTPResponse]) { self.responses = responses }
    }

    private let cell = RCUReference(Entries([:]))

    func answer(_ format: String) -> HTTPResponse? { cell.read { $0.responses[format] } }

    func store(_ format: String, _ response: HTTPResponse) {
        cell.update { current in
            var responses = current.responses
            responses[format] = response
            return Entries(responses)
        }
    }
}
