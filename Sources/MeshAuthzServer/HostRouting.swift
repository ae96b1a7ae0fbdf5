import MeshAuthz

/// `serve --workloads PATH`: the destination of a gateway request named by its Host, so one ext_authz
/// provider serves a whole mesh. The manifests' Services give hosts (`name.ns`, `name.ns.svc`,
/// `name.ns.svc.<cluster domain>`, any case, with or without `:port`), and VirtualServices give their hosts
/// (an ingress gateway's external names) the Service their HTTP routes send to; a Service's selector gives
/// the workloads behind it, whose labels and namespace are the destination the policies select on.
///
/// Trust: the Host is the client's, so this is sound only where the gateway routes by the same Host to
/// the same Service (an Istio ingress gateway with VirtualServices on these hosts, Envoy routes on these
/// domains): then the Host names the workload the request will reach. SECURITY.md says so.
///
/// Built from the manifests, immutable; a change of the manifests builds a new one (`WorkloadRoutes`).
public struct HostRouting: Sendable {
    /// One workload a Service selects, as the gateway path reads a destination.
    struct Candidate: Sendable {
        let workload: ResourceID
        let namespace: ConstantBytes
        /// `k=v,k=v`, sorted by key.
        let labels: ConstantBytes
        /// Service port → the container port it targets in this workload.
        let ports: [Int: Int]
    }

    enum Entry: Sendable {
        case service(ResourceID, [Candidate])
        /// Why the host names no workload: a Service that selects none, a VirtualService routing it to
        /// several Services or to none of the manifests.
        case refused(String)
    }

    private let entries: [String: Entry]
    public let serviceCount: Int

    public init(_ inventory: Inventory, clusterDomain: String = "cluster.local") {
        var entries: [String: Entry] = [:]
        for service in inventory.services {
            let workloads = inventory.workloads(of: service)
            let entry: Entry
            if workloads.isEmpty {
                entry = .refused("names the Service \(service.id), which selects no workload of serve --workloads")
            } else {
                entry = .service(service.id, workloads.map { workload in
                    var ports: [Int: Int] = [:]
                    for port in service.ports {
                        switch port.targetPort {
                        case .number(let number): ports[port.port] = number
                        case .name(let name):
                            if let container = workload.ports.first(where: { $0.name == name }) { ports[port.port] = container.port }
                        }
                    }
                    let labels = workload.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
                    return Candidate(workload: workload.id, namespace: ConstantBytes(workload.id.namespace),
                                     labels: ConstantBytes(labels), ports: ports)
                })
            }
            let name = service.id.name.lowercased(), namespace = service.id.namespace.lowercased()
            for host in ["\(name).\(namespace)", "\(name).\(namespace).svc", "\(name).\(namespace).svc.\(clusterDomain.lowercased())"] {
                entries[host] = entry
            }
        }
        // A VirtualService's hosts (an ingress gateway's external names) reach the Service its routes send
        // to; only when they all send to one Service can the Host alone say which workloads are reached.
        var routed: [String: Entry] = [:]
        for virtualService in inventory.virtualServices {
            var targets: [ResourceID: Entry] = [:]
            var unknown: [String] = []
            for destination in virtualService.destinations {
                var host = destination.lowercased()
                if !host.contains(".") { host += ".\(virtualService.id.namespace.lowercased())" }
                guard let entry = entries[host] else { unknown.append(destination); continue }
                if case .service(let id, _) = entry { targets[id] = entry } else { targets[ResourceID(namespace: "", name: host)] = entry }
            }
            let entry: Entry
            if !unknown.isEmpty {
                entry = .refused("is routed by the VirtualService \(virtualService.id) to \(unknown.joined(separator: ", ")), no Service of serve --workloads")
            } else if targets.count == 1 {
                entry = targets.first!.value
            } else if targets.isEmpty {
                entry = .refused("is routed by the VirtualService \(virtualService.id) to no Service (no HTTP route)")
            } else {
                let names = targets.keys.map(\.description).sorted().joined(separator: ", ")
                entry = .refused("is routed by the VirtualService \(virtualService.id) to several Services (\(names)): the Host alone does not say which; name the workload (x-authz-workload)")
            }
            for host in virtualService.hosts.map({ $0.lowercased() }) where !host.contains("*") {
                // Two VirtualServices on one host (or one on a Service's own name) would be a guess.
                if routed[host] != nil || entries[host] != nil {
                    routed[host] = .refused("is claimed by more than one VirtualService or Service of serve --workloads")
                } else {
                    routed[host] = entry
                }
            }
        }
        entries.merge(routed) { _, new in new }
        self.entries = entries
        serviceCount = inventory.services.count
    }

    /// What a Host names: the Service's workloads (at least one), or why there are none. `port`: the
    /// Host's port, if it has one.
    enum Lookup {
        case workloads(ResourceID, [Candidate], port: Int?)
        case refused(String)
    }

    func lookup(_ host: Bytes?) -> Lookup {
        guard let host, host.count > 0 else {
            return .refused("no Host to name the destination by (serve --workloads maps a Service's host to its workloads)")
        }
        var text = String(decoding: host, as: UTF8.self).lowercased()
        var port: Int? = nil
        // `name:port`; an IP literal in brackets never names a Service.
        if !text.hasPrefix("["), let colon = text.lastIndex(of: ":") {
            guard let number = Int(text[text.index(after: colon)...]), (0...65535).contains(number) else {
                return .refused("the Host's port is not a port number")
            }
            port = number
            text = String(text[..<colon])
        }
        if text.hasSuffix(".") { text.removeLast() }
        switch entries[text] {
        case nil:
            return .refused("the Host \(text) names no Service of serve --workloads (name.namespace[.svc[.cluster.local]], or a VirtualService host)")
        case .refused(let why)?:
            return .refused("the Host \(text) \(why)")
        case .service(let service, let candidates)?:
            return .workloads(service, candidates, port: port)
        }
    }
}

extension HostRouting.Candidate {
    /// The workload port a request on the Host's `port` reaches: the Service port's target, or the only
    /// target when the Service has one port (a gateway's Host carries the gateway's port, not the Service's).
    func destinationPort(_ hostPort: Int?) -> Int? {
        if let hostPort, let target = ports[hostPort] { return target }
        return ports.count == 1 ? ports.first!.value : nil
    }
}
