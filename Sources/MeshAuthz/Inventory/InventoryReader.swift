import Yams

/// Reads an `Inventory` out of the same files as the policy loader (multi-document YAML, JSON, `List`s),
/// with the loader's bounds (file sizes, resource count, alias expansion).
///
/// Why lenient: a GitOps repo holds many kinds this reader does not use (ConfigMaps, CRDs, Helm
/// leftovers); they are counted in `skipped`, never an error. Only a kind it reads and cannot make sense
/// of (labels that are not a mapping, a port that is not a number) is reported, with file, line and field,
/// and that one resource is left out. A YAML syntax error is reported for the file (the policy loader
/// reports the same one).
public enum InventoryReader {
    /// The API groups each kind is read under; the same kind in another group (a Knative `Service`) is skipped.
    static let kinds: [String: (group: Set<String>, kind: ManifestKind)] = [
        "Deployment": (["apps", "extensions"], .controller),
        "StatefulSet": (["apps"], .controller),
        "DaemonSet": (["apps", "extensions"], .controller),
        "ReplicaSet": (["apps", "extensions"], .controller),
        "Job": (["batch"], .controller),
        "CronJob": (["batch"], .cronJob),
        "Pod": ([""], .pod),
        "Service": ([""], .service),
        "ServiceAccount": ([""], .serviceAccount),
        "Namespace": ([""], .namespace),
        "DestinationRule": (["networking.istio.io"], .destinationRule),
        "VirtualService": (["networking.istio.io"], .virtualService),
    ]

    /// Whether a kind is one the reader reads (by name; the API group is checked when reading).
    public static func readsKind(_ kind: String) -> Bool { kinds[kind] != nil }

    enum ManifestKind {
        /// A pod template at `spec.template`.
        case controller
        /// A pod template at `spec.jobTemplate.spec.template`.
        case cronJob
        case pod
        case service
        case serviceAccount
        case namespace
        case destinationRule
        case virtualService
    }

    public static func read(_ files: [PolicyFile], limits: LoadLimits = LoadLimits()) -> (inventory: Inventory, errors: [PolicyError]) {
        read(files, limits: limits, parsed: nil)
    }

    /// `parsed`: the documents of files the policy loader has already parsed (and checked for aliases).
    static func read(_ files: [PolicyFile], limits: LoadLimits, parsed: [String: [Node]]?) -> (inventory: Inventory, errors: [PolicyError]) {
        var inventory = Inventory()
        var errors: [PolicyError] = []
        var resources = 0
        var totalBytes = 0
        files: for file in files {
            // A file the loader did not parse (over a limit) was reported by it.
            if let parsed, parsed[file.name] == nil { continue }
            let size = file.text.utf8.count
            totalBytes += size
            if size > limits.maxFileBytes || totalBytes > limits.maxTotalBytes {
                errors.append(.limit(file.name, "the file is over the size limits (--max-policy-file-bytes, --max-policy-total-bytes)"))
                if totalBytes > limits.maxTotalBytes { break }
                continue
            }
            let reader = YAMLReader(file: file.name)
            var pending: [Node]
            if let known = parsed?[file.name] {
                pending = known
            } else {
                if let aliases = AliasBudget.check(file.text, file: file.name, maxAliasNodes: limits.maxAliasNodes) {
                    errors.append(aliases)
                    continue
                }
                pending = PolicyLoader.documents(of: file, reader)
            }
            pending.reverse()
            // A stack instead of recursion: `List` items are pushed; every node popped counts as a resource,
            // so the walk is bounded by the limit.
            while let node = pending.popLast() {
                if reader.isNull(node) { continue }
                resources += 1
                if resources > limits.maxResources {
                    reader.record(.limit(file.name, "more than \(limits.maxResources) resources (--max-resources)"))
                    errors += reader.errors
                    break files
                }
                if let items = readResource(node, reader, into: &inventory) { pending += items.reversed() }
            }
            errors += reader.errors
        }
        return (inventory, errors)
    }

    /// Adds one resource; returns the items of a `List`.
    static func readResource(_ node: Node, _ r: YAMLReader, into inventory: inout Inventory) -> [Node]? {
        guard case .mapping = node, let entries = r.mapping(node, "") else { return nil }
        let fields = Dictionary(entries.map { ($0.key, $0.node) }, uniquingKeysWith: { a, _ in a })
        guard let kind = fields["kind"].flatMap({ scalar($0) }) else {
            inventory.skipped["(no kind)", default: 0] += 1
            return nil
        }
        let apiVersion = fields["apiVersion"].flatMap { scalar($0) } ?? ""
        if kind == "List" { return fields["items"].flatMap { r.sequence($0, "items") } ?? [] }
        let group = apiVersion.firstIndex(of: "/").map { String(apiVersion[..<$0]) } ?? (apiVersion.contains(".") ? apiVersion : "")
        guard let known = kinds[kind], known.group.contains(group) else {
            inventory.skipped[kind, default: 0] += 1
            return nil
        }
        let metadata = fields["metadata"].flatMap { mapping($0, "metadata", r) } ?? [:]
        guard let name = metadata["name"].flatMap({ scalar($0) }), !name.isEmpty else {
            r.fail(.missingField, fields["metadata"] ?? node, "metadata.name", "\(kind) without metadata.name")
            return nil
        }
        let namespace = metadata["namespace"].flatMap { scalar($0) } ?? "default"
        let id = ResourceID(namespace: namespace, name: name)
        let location = r.location(node)
        let spec = fields["spec"].flatMap { mapping($0, "spec", r) } ?? [:]
        switch known.kind {
        case .controller, .cronJob:
            var template = spec
            var path = "spec"
            if known.kind == .cronJob {
                template = spec["jobTemplate"].flatMap { mapping($0, "spec.jobTemplate", r) }
                    .flatMap { $0["spec"] }.flatMap { mapping($0, "spec.jobTemplate.spec", r) } ?? [:]
                path = "spec.jobTemplate.spec"
            }
            let pod = template["template"].flatMap { mapping($0, path + ".template", r) } ?? [:]
            let podMetadata = pod["metadata"].flatMap { mapping($0, path + ".template.metadata", r) } ?? [:]
            let labels = podMetadata["labels"].map { r.stringMap($0, path + ".template.metadata.labels") } ?? [:]
            let podSpec = pod["spec"].flatMap { mapping($0, path + ".template.spec", r) } ?? [:]
            inventory.workloads.append(workload(kind, id, labels, podSpec, path + ".template.spec", location, r))
        case .pod:
            let labels = metadata["labels"].map { r.stringMap($0, "metadata.labels") } ?? [:]
            inventory.workloads.append(workload(kind, id, labels, spec, "spec", location, r))
        case .service:
            let selector = spec["selector"].map { r.stringMap($0, "spec.selector") }
            var ports: [Inventory.ServicePort] = []
            for (index, item) in (spec["ports"].flatMap { r.sequence($0, "spec.ports") } ?? []).enumerated() {
                let path = "spec.ports[\(index)]"
                guard let port = mapping(item, path, r), let number = port["port"].flatMap({ portNumber($0, path + ".port", r) }) else { continue }
                var target: Inventory.ServicePort.Target?
                if let targetNode = port["targetPort"], let text = scalar(targetNode) {
                    target = Int(text).map { .number($0) } ?? .name(text)
                }
                ports.append(Inventory.ServicePort(name: port["name"].flatMap { scalar($0) }, port: number, targetPort: target))
            }
            inventory.services.append(Inventory.Service(id: id, selector: selector, ports: ports, location: location))
        case .serviceAccount:
            inventory.serviceAccounts.append(Inventory.ServiceAccount(id: id, location: location))
        case .namespace:
            inventory.namespaces.append(Inventory.Namespace(name: name, location: location))
        case .destinationRule:
            if let rule = DestinationRuleReader(reader: r).read(spec: spec, specNode: fields["spec"] ?? node, id: id, location: location) {
                inventory.destinationRules.append(rule)
            }
        case .virtualService:
            inventory.virtualServices.append(VirtualServiceReader(reader: r).read(spec: spec, id: id, location: location))
        }
        return nil
    }

    static func workload(_ kind: String, _ id: ResourceID, _ labels: [String: String], _ podSpec: [String: Node],
                         _ path: String, _ location: SourceLocation, _ r: YAMLReader) -> Inventory.Workload {
        let account = (podSpec["serviceAccountName"] ?? podSpec["serviceAccount"]).flatMap { scalar($0) }
        var ports: [Inventory.ContainerPort] = []
        for list in ["containers", "initContainers"] {
            for (index, container) in (podSpec[list].flatMap { r.sequence($0, path + "." + list) } ?? []).enumerated() {
                let containerPath = "\(path).\(list)[\(index)]"
                guard let fields = mapping(container, containerPath, r) else { continue }
                for (portIndex, item) in (fields["ports"].flatMap { r.sequence($0, containerPath + ".ports") } ?? []).enumerated() {
                    let portPath = "\(containerPath).ports[\(portIndex)]"
                    guard let port = mapping(item, portPath, r),
                          let number = port["containerPort"].flatMap({ portNumber($0, portPath + ".containerPort", r) }) else { continue }
                    ports.append(Inventory.ContainerPort(name: port["name"].flatMap { scalar($0) }, port: number))
                }
            }
        }
        return Inventory.Workload(kind: kind, id: id, labels: labels, serviceAccount: account.flatMap { $0.isEmpty ? nil : $0 } ?? "default",
                                  ports: ports, location: location)
    }

    // MARK: Lenient accessors: an absent or null field is nil; a present field of the wrong type is an error.

    static func scalar(_ node: Node) -> String? {
        if case .scalar(let value) = node, node.null == nil || value.style != .plain { return value.string }
        return nil
    }

    static func mapping(_ node: Node, _ field: String, _ r: YAMLReader) -> [String: Node]? {
        if r.isNull(node) { return nil }
        guard let entries = r.mapping(node, field) else { return nil }
        return Dictionary(entries.map { ($0.key, $0.node) }, uniquingKeysWith: { a, _ in a })
    }

    static func portNumber(_ node: Node, _ field: String, _ r: YAMLReader) -> Int? {
        guard let text = scalar(node), let port = Int(text), (1...65535).contains(port) else {
            r.fail(.invalidValue, node, field, "expected a port number (1-65535)")
            return nil
        }
        return port
    }
}
