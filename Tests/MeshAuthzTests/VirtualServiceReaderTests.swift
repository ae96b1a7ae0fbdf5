import Testing
@testable import MeshAuthz

/// VirtualServices in the inventory: the hosts and every HTTP route's destination, with position; a
/// malformed route is an error for that field, not for the file.
@Suite struct VirtualServiceReaderTests {
    @Test func hostsAndEveryHTTPDestination() {
        let text = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: shop, namespace: core}
        spec:
          hosts: [shop.example.com, "*.shop.example.com"]
          http:
          - match: [{uri: {prefix: /users}}]
            route: [{destination: {host: user-service}}, {destination: {host: user-service}, weight: 10}]
          - route: [{destination: {host: order-service.core.svc.cluster.local}}]
          tcp:
          - route: [{destination: {host: raw-service}}]
        ---
        apiVersion: networking.istio.io/v1alpha3
        kind: VirtualService
        metadata: {name: broken}
        spec:
          hosts: [broken.example.com]
          http:
          - route: [{destination: 7}]
        """
        let (inventory, errors) = InventoryReader.read([PolicyFile(name: "vs.yaml", text: text)])
        #expect(inventory.virtualServices.count == 2)
        let shop = inventory.virtualServices[0]
        #expect(shop.id == ResourceID(namespace: "core", name: "shop"))
        #expect(shop.hosts == ["shop.example.com", "*.shop.example.com"])
        #expect(shop.destinations == ["user-service", "order-service.core.svc.cluster.local"])
        #expect(shop.location.line == 1)
        #expect(inventory.virtualServices[1].destinations.isEmpty)
        #expect(errors.count == 1)
        #expect(errors.first?.field == "spec.http[0].route[0].destination")
        #expect(inventory.skipped["VirtualService"] == nil)
    }
}
