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

    /// OpenSSL's client offers whatever certificate it is given (GnuTLS's does not offer one from a CA the
    /// server did not name): the chain check itself must refuse with the alert too, in both TLS versions.
    @Test(arguments: [("rogue", "-tls1_2"), ("rogue", "-tls1_3"), ("server-only", "-tls1_3"), ("signing-ca", "-tls1_2")])
    func openSSLClientsAreRefusedWithABadCertificateAlert(_ presented: String, _ version: String) throws {
        let pki = try Self.makePKI()
        var config = HTTPServerConfiguration()
        config.tls = TLSConfiguration(certificateFile: pki.path("server.crt"), keyFile: pki.path("server.key"),
                                      clientCAFile: pki.path("trusted.crt"))
        try withServer(config, handler: { _ in .text("should not happen") }) { server in
            let output = try Self.sClient(port: server.boundPort, version: version, pki: pki, presented: presented)
            #expect(output.contains("alert bad certificate"), "\(output)")
            #expect(!output.contains("should not happen"))
        }
    }

    /// Runs `openssl s_client`, sends one request, keeps its input open 1 s for the answer (or the alert),
    /// and returns what it printed. Bounded: the process is terminated after 5 s.
    static func sClient(port: UInt16, version: String, pki: TestPKI, presented: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["openssl", "s_client", version, "-connect", "127.0.0.1:\(port)", "-CAfile", pki.path("ca.crt"),
                       "-cert", pki.path("\(presented).crt"), "-key", pki.path("\(presented).key")]
        let input = Pipe()
        let output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        p.standardError = output
        try p.run()
        input.fileHandleForWriting.write(Data("GET / HTTP/1.1\r\nHost: a\r\n\r\n".utf8))
        for _ in 0..<50 where p.isRunning { Thread.sleep(forTimeInterval: 0.02) }  // at most 1 s
        try? input.fileHandleForWriting.close()
        for _ in 0..<200 where p.isRunning { Thread.sleep(forTimeInterval: 0.02) }  // at most 4 s more
        if p.isRunning { p.terminate() }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}
