import Yams

/// Reads the TLS settings of a DestinationRule spec (host, `trafficPolicy.tls`, `portLevelSettings`,
/// subsets). Other DestinationRule fields (load balancing, outlier detection, ...) are not about who may
/// call whom and are not read.
struct DestinationRuleReader {
    let reader: YAMLReader

    func read(spec: [String: Node], specNode: Node, id: ResourceID, location: SourceLocation) -> DestinationRule? {
        guard let hostNode = spec["host"], let host = InventoryReader.scalar(hostNode), !host.isEmpty else {
            reader.fail(.missingField, specNode, "spec.host", "a DestinationRule needs spec.host")
            return nil
        }
        var rule = DestinationRule(id: id, host: host, hostLocation: reader.location(hostNode), location: location)
        if let policy = spec["trafficPolicy"] { trafficPolicy(policy, "spec.trafficPolicy", subset: nil, into: &rule) }
        for (index, subset) in (spec["subsets"].flatMap { reader.sequence($0, "spec.subsets") } ?? []).enumerated() {
            let path = "spec.subsets[\(index)]"
            guard let fields = InventoryReader.mapping(subset, path, reader) else { continue }
            let name = fields["name"].flatMap { InventoryReader.scalar($0) } ?? "\(index)"
            if let policy = fields["trafficPolicy"] { trafficPolicy(policy, path + ".trafficPolicy", subset: name, into: &rule) }
        }
        return rule
    }

    private func trafficPolicy(_ node: Node, _ path: String, subset: String?, into rule: inout DestinationRule) {
        guard let fields = InventoryReader.mapping(node, path, reader) else { return }
        if let tls = fields["tls"] { setting(tls, path + ".tls", port: nil, subset: subset, into: &rule) }
        for (index, item) in (fields["portLevelSettings"].flatMap { reader.sequence($0, path + ".portLevelSettings") } ?? []).enumerated() {
            let itemPath = "\(path).portLevelSettings[\(index)]"
            guard let entry = InventoryReader.mapping(item, itemPath, reader), let tls = entry["tls"] else { continue }
            let port = entry["port"].flatMap { InventoryReader.mapping($0, itemPath + ".port", reader) }?["number"]
                .flatMap { InventoryReader.portNumber($0, itemPath + ".port.number", reader) }
            if port == nil {
                reader.fail(.missingField, item, itemPath + ".port.number", "a port-level setting needs port.number")
                continue
            }
            setting(tls, itemPath + ".tls", port: port, subset: subset, into: &rule)
        }
    }

    private func setting(_ node: Node, _ path: String, port: Int?, subset: String?, into rule: inout DestinationRule) {
        guard let fields = InventoryReader.mapping(node, path, reader), let modeNode = fields["mode"],
              let text = InventoryReader.scalar(modeNode) else { return }
        guard let mode = DestinationRule.TLSMode(rawValue: text) else {
            let known = DestinationRule.TLSMode.allCases.map(\.rawValue)
            let meant = known.first { ResourceKind.isNear(text, $0) || $0 == text.uppercased() }
            reader.fail(.invalidValue, modeNode, path + ".mode", "unknown TLS mode \"\(text)\"" +
                        (meant.map { " (did you mean \($0)?)" } ?? "; expected one of: " + known.joined(separator: ", ")))
            return
        }
        rule.tls.append(DestinationRule.TLSSetting(mode: mode, port: port, subset: subset,
                                                   location: reader.location(modeNode), field: path + ".mode"))
    }
}
