import Yams

/// An Istio `VirtualService` as far as the destination of a request goes: the hosts it is routed on, and
/// every Service its HTTP routes send to (`http[].route[].destination.host`, as written: short names are
/// relative to the VirtualService's namespace). `serve --workloads` maps a gateway Host through it.
public struct VirtualService: Sendable, Hashable {
    public var id: ResourceID
    public var hosts: [String]
    public var destinations: [String]
    public var location: SourceLocation

    public init(id: ResourceID, hosts: [String], destinations: [String], location: SourceLocation) {
        self.id = id
        self.hosts = hosts
        self.destinations = destinations
        self.location = location
    }
}

/// Reads a VirtualService's `spec` (lenient like the rest of the inventory: a field of the wrong type is an
/// error for that field, other kinds of routes — tcp, tls — are not read).
struct VirtualServiceReader {
    let reader: YAMLReader

    func read(spec: [String: Node], id: ResourceID, location: SourceLocation) -> VirtualService {
        let r = reader
        let hosts = (spec["hosts"].flatMap { r.sequence($0, "spec.hosts") } ?? []).compactMap { InventoryReader.scalar($0) }
        var destinations: [String] = []
        for (index, http) in (spec["http"].flatMap { r.sequence($0, "spec.http") } ?? []).enumerated() {
            guard let fields = InventoryReader.mapping(http, "spec.http[\(index)]", r) else { continue }
            for (routeIndex, route) in (fields["route"].flatMap { r.sequence($0, "spec.http[\(index)].route") } ?? []).enumerated() {
                let path = "spec.http[\(index)].route[\(routeIndex)]"
                guard let routeFields = InventoryReader.mapping(route, path, r),
                      let destination = routeFields["destination"].flatMap({ InventoryReader.mapping($0, path + ".destination", r) }),
                      let host = destination["host"].flatMap({ InventoryReader.scalar($0) }) else { continue }
                if !destinations.contains(host) { destinations.append(host) }
            }
        }
        return VirtualService(id: id, hosts: hosts, destinations: destinations, location: location)
    }
}
