/// The text forms of an `AccessGraph`: Graphviz dot, JSON (what `/v1/graph` and the HTML page read),
/// and Mermaid (renders in GitHub Markdown).
public enum GraphRendering {
    public static func dot(_ graph: AccessGraph) -> String {
        var out = "digraph meshauthz {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n"
        let groups = Dictionary(grouping: graph.nodes.filter { $0.namespace != nil }, by: { $0.namespace! })
        for (index, namespace) in groups.keys.sorted().enumerated() {
            out += "  subgraph cluster_\(index) {\n    label=\(dotQuoted("namespace " + namespace));\n"
            for node in groups[namespace]! { out += "    \(dotQuoted(node.id)) [label=\(dotQuoted(node.label))];\n" }
            out += "  }\n"
        }
        for node in graph.nodes where node.namespace == nil {
            out += "  \(dotQuoted(node.id)) [label=\(dotQuoted(node.label)), shape=ellipse\(node.kind == .anyPlaintext ? ", color=red" : "")];\n"
        }
        for edge in graph.edges {
            out += "  \(dotQuoted(edge.from)) -> \(dotQuoted(edge.to)) [label=\(dotQuoted(edge.label))\(edge.confirmed ? "" : ", style=dashed")];\n"
        }
        return out + "}\n"
    }

    public static func mermaid(_ graph: AccessGraph) -> String {
        var ids: [String: String] = [:]
        for (index, node) in graph.nodes.enumerated() { ids[node.id] = "n\(index)" }
        var out = "flowchart LR\n"
        let groups = Dictionary(grouping: graph.nodes.filter { $0.namespace != nil }, by: { $0.namespace! })
        for namespace in groups.keys.sorted() {
            out += "  subgraph \(mermaidID(namespace))[\(mermaidText("namespace " + namespace))]\n"
            for node in groups[namespace]! { out += "    \(ids[node.id]!)[\(mermaidText(node.label))]\n" }
            out += "  end\n"
        }
        for node in graph.nodes where node.namespace == nil { out += "  \(ids[node.id]!)([\(mermaidText(node.label))])\n" }
        for edge in graph.edges {
            out += "  \(ids[edge.from]!) -->|\(mermaidText(edge.label))| \(ids[edge.to]!)\n"
        }
        return out
    }

    /// `{"nodes": [{"id","kind","label","namespace","principal","labels"}], "edges": [{"from","to","rules",
    /// "methods","paths","ports","label","confirmed","witness","witnessRule"}]}`; `openapi.yaml` has the schema.
    public static func json(_ graph: AccessGraph) -> [UInt8] {
        var writer = JSONWriter(capacity: 256 * (graph.nodes.count + graph.edges.count) + 64)
        writer.beginObject()
        writer.key("nodes")
        writer.beginArray()
        for node in graph.nodes {
            writer.beginObject()
            writer.key("id"); writer.string(node.id)
            writer.key("kind"); writer.string(node.kind.rawValue)
            writer.key("label"); writer.string(node.label)
            writer.key("namespace"); writer.optionalString(node.namespace)
            writer.key("principal"); writer.optionalString(node.principal)
            writer.key("labels")
            if let labels = node.labels {
                writer.beginObject()
                for (key, value) in labels.sorted(by: { $0.key < $1.key }) { writer.key(key); writer.string(value) }
                writer.endObject()
            } else {
                writer.null()
            }
            writer.endObject()
        }
        writer.endArray()
        writer.key("edges")
        writer.beginArray()
        for edge in graph.edges {
            writer.beginObject()
            writer.key("from"); writer.string(edge.from)
            writer.key("to"); writer.string(edge.to)
            writer.key("rules"); strings(edge.rules, &writer)
            writer.key("methods"); strings(edge.methods, &writer)
            writer.key("paths"); strings(edge.paths, &writer)
            writer.key("ports")
            writer.beginArray()
            for port in edge.ports { writer.number(port) }
            writer.endArray()
            writer.key("label"); writer.string(edge.label)
            writer.key("confirmed"); writer.bool(edge.confirmed)
            writer.key("witness")
            if let witness = edge.witness { witness.writeJSON(into: &writer) } else { writer.null() }
            writer.key("witnessRule"); writer.optionalString(edge.witnessRule)
            writer.endObject()
        }
        writer.endArray()
        writer.endObject()
        return writer.bytes
    }

    private static func strings(_ values: [String], _ writer: inout JSONWriter) {
        writer.beginArray()
        for value in values { writer.string(value) }
        writer.endArray()
    }

    static func dotQuoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n") + "\""
    }

    /// Mermaid labels in quotes; a quote becomes `#quot;` (Mermaid's entity syntax).
    static func mermaidText(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\"", with: "#quot;").replacingOccurrences(of: "\n", with: " ") + "\""
    }

    static func mermaidID(_ text: String) -> String {
        "ns_" + String(text.unicodeScalars.map { $0.properties.isAlphabetic || ("0"..."9").contains($0) ? Character($0) : "_" })
    }
}
