import Yams

struct PeerAuthenticationDecoder {
    let reader: YAMLReader

    func decode(spec: Node?, id: ResourceID, location: SourceLocation) -> PeerAuthentication? {
        var peer = PeerAuthentication(id: id, location: location)
        let before = reader.errors.count
        guard let spec, !reader.isNull(spec) else { return peer }
        guard let fields = reader.mapping(spec, "spec", allowed: ["selector", "mtls", "portLevelMtls"]) else { return nil }
        var portLevelNode: Node?
        for (key, node) in fields {
            switch key {
            case "selector":
                peer.selector = AuthorizationPolicyDecoder(reader: reader, policyNamespace: id.namespace).decodeSelector(node, "spec.selector")
            case "mtls":
                peer.mode = decodeMTLS(node, "spec.mtls") ?? .unset
            default:
                portLevelNode = node
                guard let entries = reader.mapping(node, "spec.portLevelMtls") else { continue }
                for (portText, value) in entries {
                    let path = "spec.portLevelMtls." + portText
                    guard let port = Int(portText), (1...65535).contains(port) else {
                        reader.fail(.invalidValue, node, path, "\"\(portText)\" is not a port number (1-65535)")
                        continue
                    }
                    peer.portLevel[port] = decodeMTLS(value, path) ?? .unset
                }
            }
        }
        if let portLevelNode, !peer.portLevel.isEmpty, peer.selector?.isEmpty ?? true {
            reader.fail(.invalidValue, portLevelNode, "spec.portLevelMtls", "portLevelMtls requires a non-empty selector")
        }
        return reader.errors.count == before ? peer : nil
    }

    private func decodeMTLS(_ node: Node, _ path: String) -> MTLSMode? {
        if reader.isNull(node) { return .unset }
        guard let entries = reader.mapping(node, path, allowed: ["mode"]) else { return nil }
        guard let modeNode = entries.first?.node, let text = reader.string(modeNode, path + ".mode") else { return .unset }
        guard let mode = MTLSMode(rawValue: text) else {
            reader.fail(.invalidValue, modeNode, path + ".mode", "unknown mTLS mode \"\(text)\"" + (didYouMean(text, among: MTLSMode.allCases.map(\.rawValue))
                        .map { " (did you mean \($0)?)" } ?? "; expected UNSET, DISABLE, PERMISSIVE or STRICT"))
            return nil
        }
        return mode
    }
}
