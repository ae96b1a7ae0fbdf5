import Yams

/// The input of `generate`: the services of a mesh and who may call each, the way a team writes it
/// down before writing policies. Read from YAML with file, line and field in every error.
///
///     apiVersion: meshauthz.dev/v1alpha1     # optional: with them the file is a resource
///     kind: MeshServices                     # other tools (serve, kubectl) skip, so it can
///     metadata: {name: example-mesh}         # sit in the policy directory
///     services:
///     - name: billing-service                # also the app label and the Service name
///       namespace: billing
///       serviceAccount: billing-sa
///       port: 8080
///       allowedCallers:
///       - api-gateway                        # a service of the list
///       - cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account   # a principal
///       - {service: order-service, methods: [POST], paths: ["/charges/*"]}
public struct ServiceList: Sendable, Hashable {
    public struct Service: Sendable, Hashable {
        public var name: String
        public var namespace: String
        public var serviceAccount: String
        public var port: Int
        /// The ALLOW policy's name (default: the service's name).
        public var policyName: String
        public var allowedCallers: [Caller]
        public var location: SourceLocation
    }

    public struct Caller: Sendable, Hashable {
        public enum Identity: Sendable, Hashable {
            /// A service of the list, by name.
            case service(String)
            /// A principal (`TD/ns/NS/sa/SA`), for callers outside the list.
            case principal(String)
        }
        public var identity: Identity
        public var methods: [String]
        public var paths: [String]
        public var location: SourceLocation
    }

    public var services: [Service]

    static let topFields: Set<String> = ["apiVersion", "kind", "metadata", "services"]
    static let serviceFields: Set<String> = ["name", "namespace", "serviceAccount", "port", "policyName", "allowedCallers"]
    static let callerFields: Set<String> = ["service", "principal", "methods", "paths"]

    public static func read(_ file: PolicyFile) -> Result<ServiceList, PolicyLoadFailure> {
        let r = YAMLReader(file: file.name)
        if let aliases = AliasBudget.check(file.text, file: file.name, maxAliasNodes: LoadLimits.defaultMaxAliasNodes) {
            return .failure(PolicyLoadFailure(errors: [aliases]))
        }
        let documents = PolicyLoader.documents(of: file, r).filter { !r.isNull($0) }
        var list = ServiceList(services: [])
        if r.errors.isEmpty {
            if documents.count != 1 {
                r.record(PolicyError(.invalidValue, at: SourceLocation(file: file.name, line: 1, column: 1), field: "",
                                     "expected one YAML document with a services: list, found \(documents.count)"))
            } else if let fields = r.mapping(documents[0], "", allowed: topFields) {
                if let services = fields.first(where: { $0.key == "services" })?.node {
                    for (index, node) in (r.sequence(services, "services") ?? []).enumerated() {
                        if let service = readService(node, "services[\(index)]", r) { list.services.append(service) }
                    }
                } else {
                    r.fail(.missingField, documents[0], "services", "a services: list is required")
                }
            }
        }
        list.check(r)
        return r.errors.isEmpty ? .success(list) : .failure(PolicyLoadFailure(errors: r.errors))
    }

    static func readService(_ node: Node, _ path: String, _ r: YAMLReader) -> Service? {
        guard let entries = r.mapping(node, path, allowed: serviceFields) else { return nil }
        let fields = Dictionary(entries.map { ($0.key, $0.node) }, uniquingKeysWith: { a, _ in a })
        func text(_ key: String) -> String? {
            guard let value = fields[key] else { return nil }
            guard let text = r.string(value, path + "." + key), !text.isEmpty else { return nil }
            return text
        }
        for key in ["name", "namespace", "serviceAccount", "port"] where fields[key] == nil {
            r.fail(.missingField, node, path + "." + key, "every service needs \(key)")
        }
        var port = 0
        if let portNode = fields["port"], let text = r.string(portNode, path + ".port") {
            if let number = Int(text), (1...65535).contains(number) { port = number } else {
                r.fail(.invalidValue, portNode, path + ".port", "\"\(text)\" is not a port number (1-65535)")
            }
        }
        var callers: [Caller] = []
        for (index, item) in (fields["allowedCallers"].flatMap { r.sequence($0, path + ".allowedCallers") } ?? []).enumerated() {
            if let caller = readCaller(item, "\(path).allowedCallers[\(index)]", r) { callers.append(caller) }
        }
        guard let name = text("name"), let namespace = text("namespace"), let account = text("serviceAccount") else { return nil }
        return Service(name: name, namespace: namespace, serviceAccount: account, port: port,
                       policyName: text("policyName") ?? name, allowedCallers: callers, location: r.location(node))
    }

    static func readCaller(_ node: Node, _ path: String, _ r: YAMLReader) -> Caller? {
        if case .scalar = node, let text = r.string(node, path) {
            // A principal has slashes (`td/ns/NS/sa/SA`); a service name has none.
            let identity: Caller.Identity = text.contains("/") ? .principal(text) : .service(text)
            return Caller(identity: identity, methods: [], paths: [], location: r.location(node))
        }
        guard let entries = r.mapping(node, path, allowed: callerFields) else { return nil }
        var identity: Caller.Identity?
        var methods: [String] = [], paths: [String] = []
        for (key, value) in entries {
            switch key {
            case "service": identity = r.string(value, path + ".service").map { .service($0) }
            case "principal": identity = r.string(value, path + ".principal").map { .principal($0) }
            case "methods": methods = r.strings(value, path + ".methods").map(\.value)
            default: paths = r.strings(value, path + ".paths").map(\.value)
            }
        }
        if entries.contains(where: { $0.key == "service" }) && entries.contains(where: { $0.key == "principal" }) {
            r.fail(.invalidValue, node, path, "a caller is a service or a principal, not both")
            return nil
        }
        guard let identity else {
            r.fail(.missingField, node, path + ".service", "a caller needs service (a name of the list) or principal")
            return nil
        }
        return Caller(identity: identity, methods: methods, paths: paths, location: r.location(node))
    }

    /// Names unique per namespace, callers naming services of the list, principals without `spiffe://`.
    func check(_ r: YAMLReader) {
        var seen: [String: SourceLocation] = [:]
        for service in services {
            let key = "\(service.namespace)/\(service.name)"
            if let first = seen[key] {
                r.record(PolicyError(.duplicateResource, at: service.location, field: "name", "service \(key) is already listed at \(first)"))
            }
            seen[key] = service.location
            for caller in service.allowedCallers {
                switch caller.identity {
                case .service(let name):
                    let matches = services.filter { $0.name == name }
                    if matches.isEmpty {
                        let meant = didYouMean(name, among: services.map(\.name)).map { " (did you mean \($0)?)" } ?? ""
                        r.record(PolicyError(.invalidValue, at: caller.location, field: "allowedCallers",
                                             "caller \(name) is not a service of the list\(meant); write a principal for callers outside it"))
                    } else if matches.count > 1 {
                        r.record(PolicyError(.invalidValue, at: caller.location, field: "allowedCallers",
                                             "caller \(name) names services in several namespaces; write its principal"))
                    }
                case .principal(let principal):
                    if principal.hasPrefix("spiffe://") {
                        r.record(PolicyError(.invalidValue, at: caller.location, field: "allowedCallers",
                                             "write the principal without spiffe:// (istiod adds it)"))
                    }
                }
            }
        }
    }
}
