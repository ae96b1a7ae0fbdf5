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

    public static func load(_ files: [PolicyFile], options: MeshOptions = MeshOptions(),
                            limits: LoadLimits = LoadLimits()) -> Result<PolicySet, PolicyLoadFailure> {
        let (set, errors) = loadCollecting(files, options: options, limits: limits)
        return errors.isEmpty ? .success(set) : .failure(PolicyLoadFailure(errors: errors))
    }

    /// Every error, and the resources that had none: for analysis (`lint`, `graph`), which reports the
    /// errors and still looks at the rest. Never for decisions: a set with errors is refused (`load`).
    public static func loadCollecting(_ files: [PolicyFile], options: MeshOptions = MeshOptions(),
                                      limits: LoadLimits = LoadLimits()) -> (set: PolicySet, errors: [PolicyError]) {
        loadCollecting(files, options: options, limits: limits, parse: documents(of:_:))
    }

    /// `parse` gives a file's documents (analysis keeps them to read the manifests of the same files
    /// without parsing them again).
    static func loadCollecting(_ files: [PolicyFile], options: MeshOptions, limits: LoadLimits,
                               parse: (PolicyFile, YAMLReader) -> [Node]) -> (set: PolicySet, errors: [PolicyError]) {
        var context = Context(set: PolicySet(options: options), limits: limits)
        var errors: [PolicyError] = []
        var totalBytes = 0
        for file in files {
            let size = file.text.utf8.count
            totalBytes += size
            if size > limits.maxFileBytes {
                errors.append(.limit(file.name, "the file is \(size) bytes, over the limit of \(limits.maxFileBytes) (--max-policy-file-bytes)"))
                continue
            }
            if totalBytes > limits.maxTotalBytes {
                errors.append(.limit(file.name, "the policy files add up to more than \(limits.maxTotalBytes) bytes (--max-policy-total-bytes)"))
                break
            }
            if let aliases = AliasBudget.check(file.text, file: file.name, maxAliasNodes: limits.maxAliasNodes) {
                errors.append(aliases)
                continue
            }
            let reader = YAMLReader(file: file.name)
            for document in parse(file, reader) where !context.overLimit {
                decodeResource(document, reader, &context)
            }
            errors += reader.errors
            if context.overLimit { break }  // the error is recorded; reading on would be unbounded work
        }
        var set = context.set
        set.authorizationPolicies.sort { $0.id < $1.id }
        set.peerAuthentications.sort { $0.id < $1.id }
        set.requestAuthentications.sort { $0.id < $1.id }
        return (set, errors)
    }

    /// Loads the files of a policy directory, the trust boundary: as `load`, and a set with no
    /// AuthorizationPolicy and no PeerAuthentication is refused unless `allowEmpty` says it is intended,
    /// because it allows everything and is what a missing or empty ConfigMap mount looks like.
    /// `readErrors` (listing and reading problems) refuse the set too.
    public static func loadDirectory(_ directory: String, files: [PolicyFile], readErrors: [PolicyError] = [],
                                     options: MeshOptions = MeshOptions(), limits: LoadLimits = LoadLimits(),
                                     allowEmpty: Bool = false) -> Result<PolicySet, PolicyLoadFailure> {
        if !readErrors.isEmpty { return .failure(PolicyLoadFailure(errors: readErrors)) }
        let result = load(files, options: options, limits: limits)
        // A RequestAuthentication with rules does something (a bad token is refused): not an empty set.
        guard case .success(let set) = result, !allowEmpty,
              set.authorizationPolicies.isEmpty && set.peerAuthentications.isEmpty,
              set.requestAuthentications.allSatisfy({ $0.jwtRules.isEmpty }) else { return result }
        let found = files.isEmpty ? "no *.yaml, *.yml or *.json file"
            : "no AuthorizationPolicy and no PeerAuthentication in \(files.count) file(s)"
        return .failure(PolicyLoadFailure(errors: [PolicyError(
            .emptySet, at: SourceLocation(file: directory, line: 1, column: 1), field: "",
            "empty policy set: \(found); it would allow every request, so it is refused (an empty or missing mount?) unless --allow-empty says it is intended")]))
    }

    /// What decoding accumulates across the files of a set.
    struct Context {
        var set: PolicySet
        let limits: LoadLimits
        var seen: [String: SourceLocation] = [:]
        var resources = 0
        var overLimit = false
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

    static func decodeResource(_ node: Node, _ r: YAMLReader, _ context: inout Context) {
        if r.isNull(node) { return }  // an empty document between `---` separators
        context.resources += 1
        if context.resources > context.limits.maxResources {
            context.overLimit = true
            r.record(.limit(r.file, line: r.location(node).line, column: r.location(node).column,
                            "more than \(context.limits.maxResources) resources in the policy set (--max-resources)"))
            return
        }
        guard let entries = r.mapping(node, "") else { return }
        let fields = Dictionary(entries.map { ($0.key, $0.node) }, uniquingKeysWith: { a, _ in a })
        guard let kindNode = fields["kind"], let kind = r.string(kindNode, "kind") else {
            r.fail(.missingField, node, "kind", "every resource needs a kind")
            return
        }
        if kind == "List" {
            // Bounded: every item counts as a resource, and the limit stops the walk.
            for item in fields["items"].flatMap({ r.sequence($0, "items") }) ?? [] where !context.overLimit {
                decodeResource(item, r, &context)
            }
            return
        }
        guard let versionNode = fields["apiVersion"], let apiVersion = r.string(versionNode, "apiVersion") else {
            r.fail(.missingField, node, "apiVersion", "every resource needs an apiVersion")
            return
        }
        let resourceKind = ResourceKind.classify(kind: kind, apiVersion: apiVersion)
        switch resourceKind {
        case .nearMiss(let code, let field, let message):
            r.fail(code, field == "kind" ? kindNode : versionNode, field, message)
            return
        case .authorizationPolicy, .peerAuthentication, .requestAuthentication:
            if !supportedAPIVersions.contains(apiVersion) {
                r.fail(.invalidValue, versionNode, "apiVersion", "unsupported apiVersion \(apiVersion) for \(kind); use security.istio.io/v1 or v1beta1")
                return
            }
        case .other:
            break
        }
        guard let metadataNode = fields["metadata"], let id = decodeMetadata(metadataNode, r) else {
            if fields["metadata"] == nil { r.fail(.missingField, node, "metadata", "every resource needs metadata.name") }
            return
        }
        let location = r.location(node)
        if resourceKind == .other {
            context.set.otherResources.append(OtherResource(apiVersion: apiVersion, kind: kind, id: id.id, location: location))
            return
        }
        for key in fields.keys where !["apiVersion", "kind", "metadata", "spec", "status"].contains(key) {
            r.fail(.unknownField, fields[key]!, key, "unknown top-level field \"\(key)\"")
        }
        let key = "\(kind)/\(id.id)"
        if let first = context.seen[key] {
            r.fail(.duplicateResource, metadataNode, "metadata.name", "\(kind) \(id.id) is already defined at \(first)")
            return
        }
        context.seen[key] = location
        let spec = fields["spec"]
        switch resourceKind {
        case .authorizationPolicy:
            let decoder = AuthorizationPolicyDecoder(reader: r, policyNamespace: id.id.namespace)
            if let policy = decoder.decode(spec: spec, id: id.id, annotations: id.annotations, location: location) {
                context.set.authorizationPolicies.append(policy)
            }
        case .peerAuthentication:
            if let peer = PeerAuthenticationDecoder(reader: r).decode(spec: spec, id: id.id, location: location) {
                context.set.peerAuthentications.append(peer)
            }
        case .requestAuthentication:
            if let ra = RequestAuthenticationDecoder(reader: r).decode(spec: spec, id: id.id, location: location) {
                context.set.requestAuthentications.append(ra)
            }
        case .other, .nearMiss:
            break  // handled above
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
