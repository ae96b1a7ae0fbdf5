/// `graph --format html` and `GET /v1/graph?format=html`: one self-contained page (no external
/// resource: it works offline and under a strict CSP-less file:// open) that draws the graph as SVG and,
/// when a node is clicked (or named in the URL as `#select=NODE-ID`), lists who may call it and the rule ids.
/// The graph is embedded as JSON; `</` is escaped so no value can close the script element.
public enum GraphPage {
    public static func html(_ graph: AccessGraph, title: String = "meshauthz: who may call whom") -> String {
        let json = String(decoding: GraphRendering.json(graph), as: UTF8.self)
            .replacingOccurrences(of: "</", with: "<\\/").replacingOccurrences(of: "<!--", with: "<\\!--")
        return template.replacingOccurrences(of: "TITLE_TEXT", with: escapeHTML(title))
            .replacingOccurrences(of: "GRAPH_JSON", with: json)
    }

    static func escapeHTML(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static let template = #"""
    <!DOCTYPE html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <title>TITLE_TEXT</title>
    <style>
    body { font: 14px system-ui, sans-serif; margin: 0; display: flex; height: 100vh; }
    #canvas { flex: 1; overflow: auto; }
    #panel { width: 360px; border-left: 1px solid #ccc; padding: 12px; overflow: auto; background: #fafafa; }
    .ns rect { fill: #eef3fb; stroke: #9ab; }
    .ns text { fill: #456; font-weight: bold; }
    .node rect { fill: #fff; stroke: #357; rx: 6; cursor: pointer; }
    .node.caller rect { fill: #fff8e6; stroke: #b80; }
    .node.plaintext rect { fill: #fdecea; stroke: #c33; }
    .node.selected rect { stroke-width: 3; }
    .edge path { fill: none; stroke: #789; stroke-width: 1.4; marker-end: url(#arrow); }
    .edge.unconfirmed path { stroke-dasharray: 4 3; }
    .edge.highlight path { stroke: #d60; stroke-width: 2.4; }
    li { margin-bottom: 6px; } code { font-size: 12px; }
    </style>
    </head>
    <body>
    <div id="canvas"><svg id="graph" xmlns="http://www.w3.org/2000/svg"></svg></div>
    <div id="panel"><h2>TITLE_TEXT</h2><p id="hint">Click a workload to see who may call it.</p><div id="details"></div></div>
    <script id="graph-data" type="application/json">GRAPH_JSON</script>
    <script>
    "use strict";
    {  // a block: its names cannot clash with the window's (top, name, ...)
    const graph = JSON.parse(document.getElementById("graph-data").textContent);
    const svg = document.getElementById("graph");
    const NS = "http://www.w3.org/2000/svg";
    const W = 190, H = 30, GAP = 12, PAD = 28;
    const pos = {};
    function el(name, attrs, parent) {
      const e = document.createElementNS(NS, name);
      for (const k in attrs) e.setAttribute(k, attrs[k]);
      (parent || svg).appendChild(e);
      return e;
    }
    // Layout: callers outside the manifests in a first column; then one box per namespace, in columns.
    const callers = graph.nodes.filter(n => n.namespace === null);
    const groups = {};
    for (const n of graph.nodes) if (n.namespace !== null) (groups[n.namespace] = groups[n.namespace] || []).push(n);
    let x = 20, y = 20, maxY = 0;
    callers.forEach((n, i) => { pos[n.id] = {x: x, y: y + i * (H + GAP)}; });
    maxY = y + callers.length * (H + GAP);
    x += W + 80;
    const names = Object.keys(groups).sort();
    const perColumn = Math.max(1, Math.ceil(Math.sqrt(names.length)));
    let column = 0, top = 20;
    const boxes = [];
    names.forEach((ns, i) => {
      const members = groups[ns];
      const height = PAD + members.length * (H + GAP) + 8;
      boxes.push({ns: ns, x: x - 10, y: top, h: height});
      members.forEach((n, j) => { pos[n.id] = {x: x, y: top + PAD + j * (H + GAP)}; });
      top += height + 20;
      maxY = Math.max(maxY, top);
      if ((i + 1) % perColumn === 0) { column += 1; x += W + 120; top = 20; }
    });
    const width = x + W + 60;
    svg.setAttribute("width", width);
    svg.setAttribute("height", maxY + 20);
    const defs = el("defs", {});
    const marker = el("marker", {id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto"}, defs);
    el("path", {d: "M 0 0 L 10 5 L 0 10 z", fill: "#789"}, marker);
    for (const b of boxes) {
      const g = el("g", {class: "ns", "data-namespace": b.ns});
      el("rect", {x: b.x, y: b.y, width: W + 20, height: b.h, rx: 8}, g);
      el("text", {x: b.x + 8, y: b.y + 18}, g).textContent = "namespace " + b.ns;
    }
    const edgeEls = [];
    for (const e of graph.edges) {
      const a = pos[e.from], b = pos[e.to];
      if (!a || !b) continue;
      const g = el("g", {class: "edge" + (e.confirmed ? "" : " unconfirmed"), "data-from": e.from, "data-to": e.to});
      const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
      const bend = x2 > x1 ? (x2 - x1) / 2 : 80;
      el("path", {d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`}, g);
      el("title", {}, g).textContent = e.label + " (" + e.rules.join(", ") + ")";
      edgeEls.push(g);
    }
    for (const n of graph.nodes) {
      const p = pos[n.id];
      const cls = "node" + (n.namespace === null ? " caller" : "") + (n.kind === "any-plaintext" ? " plaintext" : "");
      const g = el("g", {class: cls, "data-id": n.id, tabindex: "0"});
      el("rect", {x: p.x, y: p.y, width: W, height: H}, g);
      const t = el("text", {x: p.x + 8, y: p.y + 19}, g);
      t.textContent = n.label.length > 28 ? n.label.slice(0, 27) + "…" : n.label;
      el("title", {}, g).textContent = n.label + (n.principal ? "\n" + n.principal : "");
      g.addEventListener("click", () => select(n.id));
    }
    function text(tag, content, parent) { const e = document.createElement(tag); e.textContent = content; parent.appendChild(e); return e; }
    function select(id) {
      const node = graph.nodes.find(n => n.id === id);
      if (!node) return;
      document.querySelectorAll(".node.selected").forEach(e => e.classList.remove("selected"));
      const g = document.querySelector(`.node[data-id="${CSS.escape(id)}"]`);
      if (g) g.classList.add("selected");
      for (const e of edgeEls) e.classList.toggle("highlight", e.dataset.to === id);
      const details = document.getElementById("details");
      details.replaceChildren();
      details.dataset.selected = id;
      text("h3", node.label + (node.namespace ? " (" + node.namespace + ")" : ""), details);
      const incoming = graph.edges.filter(e => e.to === id);
      if (incoming.length === 0) { text("p", "No caller may call it.", details); return; }
      text("p", "May be called by:", details);
      const list = document.createElement("ul");
      details.appendChild(list);
      for (const e of incoming) {
        const from = graph.nodes.find(n => n.id === e.from);
        const li = document.createElement("li");
        li.className = "caller";
        li.dataset.from = e.from;
        text("strong", from ? from.label : e.from, li);
        li.appendChild(document.createTextNode(" — " + e.label + (e.confirmed ? "" : " (not confirmed)")));
        const rules = document.createElement("div");
        for (const r of e.rules) text("code", r, rules).className = "rule";
        li.appendChild(rules);
        list.appendChild(li);
      }
    }
    const wanted = decodeURIComponent((location.hash.match(/select=([^&]*)/) || [])[1] || "");
    if (wanted) select(wanted);
    document.body.dataset.ready = "true";
    }
    </script>
    </body>
    </html>

    """#
}
