import Yams

/// One policy file's name (as shown in errors) and contents.
public struct PolicyFile: Sendable, Hashable {
    public let name: String
    public let text: String

    public init(name: String, text: String) {
        self.name = name
        self.text = text
    }
}

/// Turns policy files into a validated `PolicySet`. Unlike istiod, which skips an invalid rule (and so
/// fails open for DENY), any error refuses the whole set: half a policy set is never served.
public enum PolicyLoader {
    static let supportedAPIVersions: Set<String> = ["security.istio.io/v1", "security.istio.io/v1beta1"]

    public static func load(_ files: [PolicyFile], options: MeshOptions = MeshOptions()) -> Result<PolicySet, PolicyLoadFailure> {
        var set = PolicySet(options: options)
        var errors: [PolicyError] = []
        var seen: [String: SourceLocation] = [:]
        for file in files {
            let reader = YAMLReader(file: file.name)
            for document in documents(of: file, reader) {
                decodeResource(document, reader, into: &set, seen: &seen)
            }
            errors += reader.errors
        }
        if !errors.isEmpty { return .failure(PolicyLoadFailure(errors: errors)) }
        set.authorizationPolicies.sort { $0.id < $1.id }
        set.peerAuthentications.sort { $0.id < $1.id }
        return .success(set)
    }

    /// Every document of a multi-document stream. A syntax error anywhere is an error for the file:
    /// the documents before it are not taken as the whole file.
    static func documents(of file: PolicyFile, _ reader: YAMLReader) -> [Node] {
        var nodes: [Node] = []
        do {
            let parser = try Parser(yaml: file.text)
            while let node = try parser.nextRoot() { nodes.append(node) }
        } catch let error as YamlError {
            reader.record(syntaxError(error, file: file.name))
        } catch {
            reader.record(PolicyError(.syntax, at: SourceLocation(file: file.name, line: 1, column: 1), field: "", "\(error)"))
        }
        return nodes
    }

    static func syntaxError(_ error: YamlError, file: String) -> PolicyError {
        func at(_ mark: Mark) -> SourceLocation { SourceLocation(file: file, line: mark.line, column: mark.column) }
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _), let .composer(context, problem, mark, _):
            let what = [context.map { $0.text }, problem].compactMap { $0 }.joined(separator: " ")
            return PolicyError(.syntax, at: at(mark), field: "", "YAML syntax error: \(what)")
        case let .duplicatedKeysInMapping(duplicates, context):
            return PolicyError(.syntax, at: at(context.mark), field: "", "duplicate keys \(duplicates.joined(separator: ", "))")
        default:
            return PolicyError(.syntax, at: SourceLocation(file: file, line: 1, column: 1), field: "", "YAML error: \(error)")
        }
    }

    static func decodeResource(_ node: Node, _ r: YAMLReader, into set: inout PolicySet, seen: inout [String: SourceLocation]) {
        if r.isNull(node) { return }  // an empty document between `---` separators
        guard let entries = r.mapping(node, "") else { return }
        let fields = Dictionary(entries.map { ($0.key, $0.node) }, uniquingKeysWith: { a, _ in a })
        guard let kindNode = fields["kind"], let kind = r.string(kindNode, "kind") else {
            r.fail(.missingField, node, "kind", "every resource needs a kind")
            return
        }
        if kind == "List" {
            for (index, item) in (fields["items"].flatMap { r.sequence($0, "items") } ?? []).enumerated() {
                _ = index
                decodeResource(item, r, into: &set, seen: &seen)
            }
            return
        }
        guard let versionNode = fields["apiVersion"], let apiVersion = r.string(versionNode, "apiVersion") else {
            r.fail(.missingField, node, "apiVersion", "every resource needs an apiVersion")
            return
        }
        let isSecurityKind = kind == "AuthorizationPolicy" || kind == "PeerAuthentication"
        let isIstioSecurity = apiVersion.hasPrefix("security.istio.io/")
        if isSecurityKind && isIstioSecurity && !supportedAPIVersions.contains(apiVersion) {
            r.fail(.invalidValue, versionNode, "apiVersion", "unsupported apiVersion \(apiVersion) for \(kind); use security.istio.io/v1 or v1beta1")
            return
        }
        guard let metadataNode = fields["metadata"], let id = decodeMetadata(metadataNode, r) else {
            if fields["metadata"] == nil { r.fail(.missingField, node, "metadata", "every resource needs metadata.name") }
            return
        }
        let location = r.location(node)
        guard isSecurityKind && isIstioSecurity else {
            set.otherResources.append(OtherResource(apiVersion: apiVersion, kind: kind, id: id.id, location: location))
            return
        }
        for key in fields.keys where !["apiVersion", "kind", "metadata", "spec", "status"].contains(key) {
            r.fail(.unknownField, fields[key]!, key, "unknown top-level field \"\(key)\"")
        }
        let key = "\(kind)/\(id.id)"
        if let first = seen[key] {
            r.fail(.duplicateResource, metadataNode, "metadata.name", "\(kind) \(id.id) is already defined at \(first)")
            return
        }
        seen[key] = location
        let spec = fields["spec"]
        if kind == "AuthorizationPolicy" {
            let decoder = AuthorizationPolicyDecoder(reader: r, policyNamespace: id.id.namespace)
            if let policy = decoder.decode(spec: spec, id: id.id, annotations: id.annotations, location: location) {
                set.authorizationPolicies.append(policy)
            }
        } else if let peer = PeerAuthenticationDecoder(reader: r).decode(spec: spec, id: id.id, location: location) {
            set.peerAuthentications.append(peer)
        }
    }

    static func decodeMetadata(_ node: Node, _ r: YAMLReader) -> (id: ResourceID, annotations: [String: String])? {
        // Kubernetes metadata has many fields; only these matter here, the rest are not errors.
        guard let entries = r.mapping(node, "metadata") else { return nil }
        var name: String?
        var namespace = "default"  // as `kubectl apply` without -n would place it
        var annotations: [String: String] = [:]
        for (key, value) in entries {
            switch key {
            case "name": name = r.string(value, "metadata.name")
            case "namespace": namespace = r.string(value, "metadata.namespace") ?? namespace
            case "annotations": annotations = r.stringMap(value, "metadata.annotations")
            default: continue
            }
        }
        guard let name, !name.isEmpty else {
            r.fail(.missingField, node, "metadata.name", "metadata.name is required")
            return nil
        }
        return (ResourceID(namespace: namespace, name: name), annotations)
    }
}

/// Go's strconv.ParseBool, which istiod uses for `istio.io/dry-run`.
func parseGoBool(_ text: String) -> Bool? {
    switch text {
    case "1", "t", "T", "TRUE", "true", "True": return true
    case "0", "f", "F", "FALSE", "false", "False": return false
    default: return nil
    }
}
