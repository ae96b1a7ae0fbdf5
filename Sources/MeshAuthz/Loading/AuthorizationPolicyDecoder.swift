import Yams

/// Decodes and validates one AuthorizationPolicy spec the way istiod's webhook would
/// (`ValidateAuthorizationPolicy`), reporting every problem with its field path.
struct AuthorizationPolicyDecoder {
    let reader: YAMLReader
    /// A bare `serviceAccounts` name means `<policy namespace>/name`.
    let policyNamespace: String
    /// The field paths decoded so far and where they were written (`AuthorizationPolicy.fieldLocations`).
    private let positions = FieldPositions()

    init(reader: YAMLReader, policyNamespace: String) {
        self.reader = reader
        self.policyNamespace = policyNamespace
    }

    final class FieldPositions {
        var table: [String: SourceLocation] = [:]
    }

    private func note(_ node: Node, _ path: @autoclosure () -> String) {
        guard reader.recordsFieldLocations else { return }
        positions.table[path()] = reader.location(node)
    }

    private func note(_ values: [(value: String, node: Node)], _ path: String) {
        guard reader.recordsFieldLocations else { return }
        for (index, item) in values.enumerated() { note(item.node, "\(path)[\(index)]") }
    }

    static let specFields: Set<String> = ["selector", "targetRef", "targetRefs", "action", "provider", "rules"]
    static let ruleFields: Set<String> = ["from", "to", "when"]
    static let sourceFields: Set<String> = [
        "principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals", "namespaces", "notNamespaces",
        "ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks", "serviceAccounts", "notServiceAccounts",
        "trustDomains", "notTrustDomains",
    ]
    static let operationFields: Set<String> = ["hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths"]

    func decode(spec: Node?, id: ResourceID, annotations: [String: String], location: SourceLocation) -> AuthorizationPolicy? {
        var policy = AuthorizationPolicy(id: id, location: location)
        let before = reader.errors.count
        if let raw = annotations["istio.io/dry-run"] { policy.dryRun = parseGoBool(raw) ?? false }
        guard let spec, !reader.isNull(spec) else { return policy }  // `spec` absent: allow-nothing
        guard let fields = reader.mapping(spec, "spec", allowed: Self.specFields) else { return nil }
        var rulesNode: Node?
        var providerNode: Node?
        var hasSelector = false, hasTargetRef = false, hasTargetRefs = false
        for (key, node) in fields {
            let path = "spec." + key
            switch key {
            case "selector":
                hasSelector = true
                policy.selector = decodeSelector(node, path)
            case "targetRef":
                hasTargetRef = true
                if let ref = decodeTargetRef(node, path) { policy.targetRefs = [ref] }
            case "targetRefs":
                hasTargetRefs = true
                let refs = (reader.sequence(node, path) ?? []).enumerated().compactMap { decodeTargetRef($1, "\(path)[\($0)]") }
                if refs.count > 16 { reader.fail(.invalidValue, node, path, "at most 16 targetRefs") }
                if !refs.isEmpty { policy.targetRefs = refs }
            case "action":
                guard let text = reader.string(node, path) else { continue }
                guard let action = Action(rawValue: text) else {
                    reader.fail(.invalidValue, node, path, "unknown action \"\(text)\"" + (didYouMean(text, among: Action.allCases.map(\.rawValue))
                        .map { " (did you mean \($0)?)" } ?? "; expected ALLOW, DENY, AUDIT or CUSTOM"))
                    continue
                }
                policy.action = action
            case "provider":
                providerNode = node
                guard let entries = reader.mapping(node, path, allowed: ["name"]) else { continue }
                policy.provider = entries.first { $0.key == "name" }.flatMap { reader.string($0.node, path + ".name") }
            case "rules":
                rulesNode = node
            default:
                break
            }
        }
        if [hasSelector, hasTargetRef, hasTargetRefs].filter({ $0 }).count > 1 {
            reader.fail(.invalidValue, spec, "spec", "only one of selector, targetRef and targetRefs may be set")
        }
        if let rulesNode, let items = reader.sequence(rulesNode, "spec.rules") {
            if items.count > 512 { reader.fail(.invalidValue, rulesNode, "spec.rules", "at most 512 rules") }
            for (index, item) in items.enumerated() {
                if let rule = decodeRule(item, "spec.rules[\(index)]", action: policy.action) { policy.rules.append(rule) }
            }
        }
        validateAction(policy, spec: spec, providerNode: providerNode)
        policy.fieldLocations = positions.table
        return reader.errors.count == before ? policy : nil
    }

    private func validateAction(_ policy: AuthorizationPolicy, spec: Node, providerNode: Node?) {
        switch policy.action {
        case .custom:
            if (policy.provider ?? "").isEmpty {
                reader.fail(.missingField, providerNode ?? spec, "spec.provider.name", "CUSTOM requires provider.name")
            }
            if policy.rules.isEmpty {
                reader.fail(.missingField, spec, "spec.rules", "CUSTOM requires at least one rule")
            }
        case .deny:
            if policy.rules.isEmpty {
                reader.fail(.missingField, spec, "spec.rules", "a DENY policy without rules is meaningless (it would never match)")
            }
            fallthrough
        default:
            if let providerNode {
                reader.fail(.invalidValue, providerNode, "spec.provider", "provider is only valid with action CUSTOM")
            }
        }
    }

    func decodeSelector(_ node: Node, _ path: String) -> [String: String]? {
        guard let entries = reader.mapping(node, path, allowed: ["matchLabels"]) else { return nil }
        guard let labelsNode = entries.first(where: { $0.key == "matchLabels" })?.node else { return [:] }
        let labels = reader.stringMap(labelsNode, path + ".matchLabels")
        for (key, value) in labels {
            if key.isEmpty || key.contains("*") || value.contains("*") {
                reader.fail(.invalidValue, labelsNode, path + ".matchLabels." + key, "label keys must be non-empty and neither keys nor values may contain \"*\"")
            }
        }
        return labels
    }

    func decodeTargetRef(_ node: Node, _ path: String) -> TargetRef? {
        guard let entries = reader.mapping(node, path, allowed: ["group", "kind", "name", "namespace"]) else { return nil }
        var ref = TargetRef(group: "", kind: "", name: "")
        for (key, value) in entries {
            guard let text = reader.string(value, path + "." + key) else { continue }
            switch key {
            case "group": ref.group = text
            case "kind": ref.kind = text
            case "name": ref.name = text
            default: reader.fail(.invalidValue, value, path + ".namespace", "cross-namespace targetRefs are not allowed")
            }
        }
        if !["Service", "ServiceEntry", "Gateway", "GatewayClass"].contains(ref.kind) {
            reader.fail(.invalidValue, node, path + ".kind", "targetRef kind must be Service, ServiceEntry, Gateway or GatewayClass")
        }
        if ref.name.isEmpty { reader.fail(.missingField, node, path + ".name", "targetRef needs a name") }
        return ref
    }

    private func decodeRule(_ node: Node, _ path: String, action: Action) -> Rule? {
        if reader.isNull(node) {
            reader.fail(.invalidValue, node, path, "a rule may not be null (use {} for a rule that matches everything)")
            return nil
        }
        guard let fields = reader.mapping(node, path, allowed: Self.ruleFields) else { return nil }
        note(node, path)
        var rule = Rule()
        for (key, value) in fields {
            let fieldPath = path + "." + key
            let items = reader.sequence(value, fieldPath)
            if let items, items.isEmpty {
                reader.fail(.invalidValue, value, fieldPath, "\(key) must not be an empty list (omit it instead)")
            }
            for (index, item) in (items ?? []).enumerated() {
                let itemPath = "\(fieldPath)[\(index)]"
                note(item, itemPath)
                switch key {
                case "from":
                    if let source = decodeWrapped(item, itemPath, "source", decodeSource) {
                        validateCustom(source, action: action, item, itemPath)
                        rule.from.append(source)
                    }
                case "to":
                    if let operation = decodeWrapped(item, itemPath, "operation", decodeOperation) { rule.to.append(operation) }
                default:
                    if let condition = decodeCondition(item, itemPath, action: action) { rule.when.append(condition) }
                }
            }
        }
        return rule
    }

    /// `from[i]` is `{source: {...}}` and `to[i]` is `{operation: {...}}`; neither may be empty.
    private func decodeWrapped<T>(_ node: Node, _ path: String, _ key: String, _ decode: (Node, String) -> T?) -> T? {
        guard let entries = reader.mapping(node, path, allowed: [key]) else { return nil }
        guard let inner = entries.first?.node, !reader.isNull(inner) else {
            reader.fail(.missingField, node, path + "." + key, "\(key) is required and must not be empty")
            return nil
        }
        if case .mapping(let mapping) = inner, mapping.isEmpty {
            reader.fail(.invalidValue, inner, path + "." + key, "\(key) must not be empty")
            return nil
        }
        return decode(inner, path + "." + key)
    }

    private func decodeSource(_ node: Node, _ path: String) -> Source? {
        guard let fields = reader.mapping(node, path, allowed: Self.sourceFields) else { return nil }
        var source = Source()
        for (key, value) in fields {
            let fieldPath = path + "." + key
            let values = reader.strings(value, fieldPath)
            note(values, fieldPath)
            let texts = values.map(\.value)
            switch key {
            case "principals": source.principals = texts
            case "notPrincipals": source.notPrincipals = texts
            case "requestPrincipals": source.requestPrincipals = texts
            case "notRequestPrincipals": source.notRequestPrincipals = texts
            case "namespaces": source.namespaces = texts
            case "notNamespaces": source.notNamespaces = texts
            case "serviceAccounts", "notServiceAccounts":
                if values.count > 16 { reader.fail(.invalidValue, value, fieldPath, "at most 16 service accounts") }
                validate(values, fieldPath, as: .sourceServiceAccount)
                if key == "serviceAccounts" { source.serviceAccounts = texts } else { source.notServiceAccounts = texts }
            case "trustDomains", "notTrustDomains":
                validate(values, fieldPath, as: .sourceTrustDomain)
                if key == "trustDomains" { source.trustDomains = texts } else { source.notTrustDomains = texts }
            case "ipBlocks": source.ipBlocks = cidrs(values, fieldPath)
            case "notIpBlocks": source.notIpBlocks = cidrs(values, fieldPath)
            case "remoteIpBlocks": source.remoteIpBlocks = cidrs(values, fieldPath)
            default: source.notRemoteIpBlocks = cidrs(values, fieldPath)
            }
        }
        let usesServiceAccounts = !source.serviceAccounts.isEmpty || !source.notServiceAccounts.isEmpty
        let usesIdentity = !source.principals.isEmpty || !source.notPrincipals.isEmpty
            || !source.namespaces.isEmpty || !source.notNamespaces.isEmpty
        if usesServiceAccounts && usesIdentity {
            reader.fail(.invalidValue, node, path + ".serviceAccounts",
                        "serviceAccounts cannot be combined with principals or namespaces in one source")
        }
        return source
    }

    /// Source fields share their value rules with the condition key of the same meaning.
    private func validate(_ values: [(value: String, node: Node)], _ path: String, as key: ConditionKey) {
        for (index, item) in values.enumerated() {
            if let problem = key.validationError(item.value) {
                reader.fail(.invalidValue, item.node, "\(path)[\(index)]", problem)
            }
        }
    }

    private func cidrs(_ values: [(value: String, node: Node)], _ path: String) -> [CIDR] {
        values.enumerated().compactMap { index, item in
            guard let cidr = CIDR(item.value) else {
                reader.fail(.invalidValue, item.node, "\(path)[\(index)]", "\"\(item.value)\" is not an IP address or CIDR block")
                return nil
            }
            return cidr
        }
    }

    private func ports(_ values: [(value: String, node: Node)], _ path: String) -> [Int] {
        values.enumerated().compactMap { index, item in
            guard let port = Int(item.value), port >= 0, port <= 65535, item.value.allSatisfy(\.isASCII) else {
                reader.fail(.invalidValue, item.node, "\(path)[\(index)]", "\"\(item.value)\" is not a port number (0-65535)")
                return nil
            }
            return port
        }
    }

    private func decodeOperation(_ node: Node, _ path: String) -> Operation? {
        guard let fields = reader.mapping(node, path, allowed: Self.operationFields) else { return nil }
        var operation = Operation()
        for (key, value) in fields {
            let fieldPath = path + "." + key
            let values = reader.strings(value, fieldPath)
            note(values, fieldPath)
            let texts = values.map(\.value)
            switch key {
            case "hosts": operation.hosts = texts
            case "notHosts": operation.notHosts = texts
            case "ports": operation.ports = ports(values, fieldPath)
            case "notPorts": operation.notPorts = ports(values, fieldPath)
            case "methods": operation.methods = texts
            case "notMethods": operation.notMethods = texts
            case "paths", "notPaths":
                for (index, item) in values.enumerated() {
                    if let problem = PathTemplate.validationError(item.value) {
                        reader.fail(.invalidValue, item.node, "\(fieldPath)[\(index)]", problem)
                    }
                }
                if key == "paths" { operation.paths = texts } else { operation.notPaths = texts }
            default: break
            }
        }
        return operation
    }

    private func decodeCondition(_ node: Node, _ path: String, action: Action) -> Condition? {
        guard let fields = reader.mapping(node, path, allowed: ["key", "values", "notValues"]) else { return nil }
        var keyText: String?
        var keyNode = node
        var values: [(value: String, node: Node)] = []
        var notValues: [(value: String, node: Node)] = []
        for (key, value) in fields {
            switch key {
            case "key":
                keyText = reader.string(value, path + ".key")
                keyNode = value
            case "values": values = reader.strings(value, path + ".values")
            default: notValues = reader.strings(value, path + ".notValues")
            }
        }
        guard let keyText, !keyText.isEmpty else {
            reader.fail(.missingField, node, path + ".key", "a condition needs a key")
            return nil
        }
        if values.isEmpty && notValues.isEmpty {
            reader.fail(.missingField, node, path + ".values", "a condition needs values or notValues")
        }
        let key: ConditionKey
        switch ConditionKey.parse(keyText) {
        case .success(let parsed): key = parsed
        case .failure(let problem):
            reader.fail(.unknownConditionKey, keyNode, path + ".key", problem.message)
            return nil
        }
        if action == .custom && key.readsIdentity {
            reader.fail(.invalidValue, keyNode, path + ".key", "CUSTOM policies cannot use \(key), which needs identity the external provider decides on")
        }
        validate(values, path + ".values", as: key)
        validate(notValues, path + ".notValues", as: key)
        return Condition(key: key, values: values.map(\.value), notValues: notValues.map(\.value))
    }

    private func validateCustom(_ source: Source, action: Action, _ node: Node, _ path: String) {
        guard action == .custom else { return }
        let identityFields: [(String, Bool)] = [
            ("principals", !source.principals.isEmpty || !source.notPrincipals.isEmpty),
            ("namespaces", !source.namespaces.isEmpty || !source.notNamespaces.isEmpty),
            ("serviceAccounts", !source.serviceAccounts.isEmpty || !source.notServiceAccounts.isEmpty),
            ("trustDomains", !source.trustDomains.isEmpty || !source.notTrustDomains.isEmpty),
            ("requestPrincipals", !source.requestPrincipals.isEmpty || !source.notRequestPrincipals.isEmpty),
        ]
        for (name, used) in identityFields where used {
            reader.fail(.invalidValue, node, path + ".source." + name, "CUSTOM policies cannot use \(name) (or its not form)")
        }
    }
}
