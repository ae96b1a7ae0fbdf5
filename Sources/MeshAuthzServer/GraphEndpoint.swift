import MeshAuthz
import MicroHTTPD

/// `GET /v1/graph`: who may call whom under the set in force (its manifests too, when the policy
/// directory holds any), as the self-contained HTML page (default) or `?format=dot|json|mermaid|html`.
/// Edges are confirmed by the engine that serves decisions. Built per request (a graph of the example
/// mesh takes well under a millisecond; BENCHMARKS.md has the 1,000-policy figure).
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
        let engine = loaded.engine
        let input = AnalysisInput(set: loaded.policySet, inventory: loaded.inventory)
        let graph = AccessGraphBuilder(input, decide: { engine.evaluate($0) }).build()
        switch format {
        case .html:
            return HTTPResponse(status: 200, headers: [("Content-Type", "text/html; charset=utf-8")], body: GraphPage.html(graph))
        case .json:
            return Self.json(GraphRendering.json(graph))
        case .dot:
            return HTTPResponse(status: 200, headers: [("Content-Type", "text/vnd.graphviz; charset=utf-8")], body: GraphRendering.dot(graph))
        case .mermaid:
            return HTTPResponse(status: 200, headers: [("Content-Type", "text/plain; charset=utf-8")], body: GraphRendering.mermaid(graph))
        }
    }
}
