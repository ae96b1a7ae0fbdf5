/// Questions an analysis asks the inventory. Selectors match as Kubernetes and Istio do: every label of
/// the selector present with the same value; an empty selector selects every workload of the namespace.
extension Inventory {
    /// The workloads of `namespace` a `matchLabels` selector selects (nil or empty: all of them).
    public func workloads(in namespace: String, selectedBy selector: [String: String]?) -> [Workload] {
        workloads.filter { $0.id.namespace == namespace && Self.matches(selector ?? [:], $0.labels) }
    }

    /// The workloads a Service sends traffic to: its namespace's pods matching its selector. A Service
    /// without a selector (or an empty one) selects none: Kubernetes makes no endpoints for it.
    public func workloads(of service: Service) -> [Workload] {
        guard let selector = service.selector, !selector.isEmpty else { return [] }
        return workloads(in: service.id.namespace, selectedBy: selector)
    }

    /// The Services a host names, read as a client in `namespace` would: `name` (that namespace),
    /// `name.ns`, `name.ns.svc`, `name.ns.svc.<cluster domain>`, or a `*.`-wildcard suffix of the FQDN
    /// (`*.ns.svc.cluster.local`, `*`). Case-insensitive; a trailing `:port` is not part of a host here.
    public func services(forHost host: String, from namespace: String, clusterDomain: String = "cluster.local") -> [Service] {
        let host = host.lowercased()
        return services.filter { service in
            let name = service.id.name.lowercased(), ns = service.id.namespace.lowercased()
            let fqdn = "\(name).\(ns).svc.\(clusterDomain.lowercased())"
            if host.hasPrefix("*") { return host == "*" || fqdn.hasSuffix(host.dropFirst()) }
            return host == fqdn || host == "\(name).\(ns).svc" || host == "\(name).\(ns)"
                || (host == name && ns == namespace.lowercased())
        }
    }

    /// Whether a ServiceAccount manifest, or a workload running as it, declares `namespace/name`. The
    /// `default` account exists in every namespace Kubernetes creates.
    public func declaresServiceAccount(namespace: String, name: String) -> Bool {
        if name == "default" && declaresNamespace(namespace) { return true }
        return serviceAccounts.contains { $0.id.namespace == namespace && $0.id.name == name }
            || workloads.contains { $0.id.namespace == namespace && $0.serviceAccount == name }
    }

    /// Whether a Namespace manifest declares it, or any manifest puts a resource in it.
    public func declaresNamespace(_ namespace: String) -> Bool {
        namespaces.contains { $0.name == namespace } || workloads.contains { $0.id.namespace == namespace }
            || services.contains { $0.id.namespace == namespace } || serviceAccounts.contains { $0.id.namespace == namespace }
    }

    static func matches(_ selector: [String: String], _ labels: [String: String]) -> Bool {
        selector.allSatisfy { labels[$0.key] == $0.value }
    }
}
