/// The inventory's queries (`Inventory+Queries.swift`) answered from dictionaries built once: the
/// analyses ask them per policy value and per DestinationRule, which on a 1,000-service repo is
/// millions of linear scans otherwise. Same answers (`InventoryIndexTests`).
struct InventoryIndex: Sendable {
    let inventory: Inventory
    let clusterDomain: String
    private let accounts: Set<String>
    private let namespaces: Set<String>
    private let workloadsByNamespace: [String: [Inventory.Workload]]
    /// `name.ns.svc.<domain>`, `name.ns.svc`, `name.ns` (lower-cased) → Services.
    private let servicesByHost: [String: [Inventory.Service]]
    /// `ns/name` (lower-cased) → Services, for short names read in the client's namespace.
    private let servicesByShortName: [String: [Inventory.Service]]

    init(_ inventory: Inventory, clusterDomain: String = "cluster.local") {
        self.inventory = inventory
        self.clusterDomain = clusterDomain
        accounts = Set(inventory.serviceAccounts.map { "\($0.id.namespace)/\($0.id.name)" }
                       + inventory.workloads.map { "\($0.id.namespace)/\($0.serviceAccount)" })
        namespaces = Set(inventory.namespaces.map(\.name) + inventory.workloads.map(\.id.namespace)
                         + inventory.services.map(\.id.namespace) + inventory.serviceAccounts.map(\.id.namespace))
        workloadsByNamespace = Dictionary(grouping: inventory.workloads, by: \.id.namespace)
        var byHost: [String: [Inventory.Service]] = [:]
        var byShort: [String: [Inventory.Service]] = [:]
        for service in inventory.services {
            let name = service.id.name.lowercased(), ns = service.id.namespace.lowercased()
            for host in Set(["\(name).\(ns).svc.\(clusterDomain.lowercased())", "\(name).\(ns).svc", "\(name).\(ns)"]) {
                byHost[host, default: []].append(service)
            }
            byShort["\(ns)/\(name)", default: []].append(service)
        }
        servicesByHost = byHost
        servicesByShortName = byShort
    }

    func declaresServiceAccount(namespace: String, name: String) -> Bool {
        (name == "default" && declaresNamespace(namespace)) || accounts.contains("\(namespace)/\(name)")
    }

    func declaresNamespace(_ namespace: String) -> Bool { namespaces.contains(namespace) }

    func workloads(in namespace: String, selectedBy selector: [String: String]?) -> [Inventory.Workload] {
        (workloadsByNamespace[namespace] ?? []).filter { Inventory.matches(selector ?? [:], $0.labels) }
    }

    func workloads(of service: Inventory.Service) -> [Inventory.Workload] {
        guard let selector = service.selector, !selector.isEmpty else { return [] }
        return workloads(in: service.id.namespace, selectedBy: selector)
    }

    func services(forHost host: String, from namespace: String) -> [Inventory.Service] {
        let host = host.lowercased()
        if host.hasPrefix("*") { return inventory.services(forHost: host, from: namespace, clusterDomain: clusterDomain) }
        let found = (servicesByHost[host] ?? []) + (servicesByShortName["\(namespace.lowercased())/\(host)"] ?? [])
        var seen: Set<ResourceID> = []
        return found.filter { seen.insert($0.id).inserted }
    }
}
