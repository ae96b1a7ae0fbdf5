import Foundation
import MicroHTTPD
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 7, item 14: which client certificates the mTLS listener takes, beyond chaining to the client CA,
/// and that a refusal tells the client with a TLS alert instead of a bare close.
@Suite struct TLSClientCertificatePolicyTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        /// The certificate/key pair the client presents (files `name.crt` / `name.key` of the test PKI);
        /// nil: none.
        let presented: String?
        /// Empty: accepted; otherwise the names of the fatal alerts of which the server must send one.
        let alerts: [String]
        var testDescription: String { name }
    }

    static let badCertificate = "Certificate is bad"

    static let required = ["Certificate is required", "Handshake failed"]  // TLS 1.3, TLS 1.2

    static let cases: [Case] = [
        Case(name: "clientAuth EKU", presented: "client", alerts: []),
        Case(name: "clientAuth among other purposes", presented: "client-and-server", alerts: []),
        Case(name: "no EKU extension (allowed, as OpenSSL does)", presented: "no-eku-client", alerts: []),
        Case(name: "EKU without clientAuth (serverAuth only)", presented: "server-only", alerts: [badCertificate]),
        Case(name: "a trusted CA certificate itself", presented: "signing-ca", alerts: [badCertificate]),
        // The GnuTLS client offers neither a certificate from a CA the server did not name, nor one that
        // may not sign (a CA without digitalSignature, which also makes it fall back to TLS 1.2): the
        // server sees no certificate.
        Case(name: "a certificate from an untrusted CA", presented: "rogue", alerts: required),
        Case(name: "a CA certificate that may not sign", presented: "ca", alerts: required),
        Case(name: "no certificate", presented: nil, alerts: required),
    ]

    static func makePKI() throws -> TestPKI {
        let pki = try TestPKI()
        try pki.makeCA("ca")
        try pki.makeCA("signing-ca", keyUsage: "keyCertSign,cRLSign,digitalSignature")
        try pki.makeCA("rogue-ca")
        try pki.bundle("trusted.crt", of: ["ca.crt", "signing-ca.crt"])
        try pki.makeClient("rogue", ca: "rogue-ca", spiffe: "spiffe://cluster.local/ns/default/sa/rogue")
        try pki.makeServer("server", ca: "ca", cn: "server")
        try pki.makeClient("client", ca: "ca", spiffe: "spiffe://cluster.local/ns/default/sa/client")
        try pki.makeClient("client-and-server", ca: "ca", spiffe: "spiffe://cluster.local/ns/default/sa/both",
                           usage: "clientAuth,serverAuth")
        try pki.makeClient("no-eku-client", ca: "ca", spiffe: "spiffe://cluster.local/ns/default/sa/no-eku", usage: nil)
        try pki.makeClient("server-only", ca: "ca", spiffe: "spiffe://cluster.local/ns/default/sa/server-only",
                           usage: "serverAuth")
        return pki
    }

    @Test(arguments: cases)
    func clientCertificatePolicy(_ c: Case) throws {
        let pki = try Self.makePKI()
        var config = HTTPServerConfiguration()
        config.tls = TLSConfiguration(certificateFile: pki.path("server.crt"), keyFile: pki.path("server.key"),
                                      clientCAFile: pki.path("trusted.crt"))
        let calls = LockedBox(0)
        try withServer(config, handler: { request in
            calls.update { $0 += 1 }
            return .text(request.peerCertificateURISANs.joined(separator: ","))
        }) { server in
            var outcome: Result<RawResponse, any Error>
            do {
                let stream = try TLSStream(port: server.boundPort, caFile: pki.path("ca.crt"),
                                           certificateFile: c.presented.map { pki.path("\($0).crt") },
                                           keyFile: c.presented.map { pki.path("\($0).key") })
                outcome = .success(try RawHTTPClient(stream: stream).request("GET", "/"))
            } catch {
                outcome = .failure(error)
            }
            switch outcome {
            case .success(let response):
                #expect(c.alerts.isEmpty, "served \(c.name): \(response.status)")
                #expect(response.status == 200)
                #expect(calls.get() == 1)
            case .failure(let error):
                #expect(!c.alerts.isEmpty, "refused \(c.name): \(error)")
                // TLS 1.3 ends the client's handshake before the server judges its certificate: the alert
                // then arrives on the first read rather than in the handshake. Either way it must be there.
                #expect(c.alerts.contains { "\(error)".contains("alert: \($0)") }, "\(error)")
                #expect(calls.get() == 0)
            }
        }
    }
}
