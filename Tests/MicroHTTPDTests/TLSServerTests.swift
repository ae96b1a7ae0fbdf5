import Foundation
import MicroHTTPD
import Testing

/// HTTPS with required client certificates (issue 4).
@Suite struct TLSServerTests {
    static let frontend = "spiffe://cluster.local/ns/default/sa/frontend-sa"

    /// CA, server cert (v1 and v2 for rotation), a good client, a client without URI SAN, a rogue client.
    func makePKI() throws -> TestPKI {
        let pki = try TestPKI()
        try pki.makeCA("ca")
        try pki.makeCA("rogue-ca")
        try pki.makeServer("server-v1", ca: "ca", cn: "server-v1")
        try pki.makeServer("server-v2", ca: "ca", cn: "server-v2")
        try pki.makeClient("client", ca: "ca", spiffe: Self.frontend)
        try pki.makeClient("plain-client", ca: "ca", spiffe: nil)
        try pki.makeClient("rogue-client", ca: "rogue-ca", spiffe: "spiffe://cluster.local/ns/default/sa/rogue")
        try pki.replace("server.crt", with: "server-v1.crt")
        try pki.replace("server.key", with: "server-v1.key")
        return pki
    }

    func tlsConfiguration(_ pki: TestPKI) -> HTTPServerConfiguration {
        var config = HTTPServerConfiguration()
        config.tls = TLSConfiguration(certificateFile: pki.path("server.crt"), keyFile: pki.path("server.key"),
                                      clientCAFile: pki.path("ca.crt"))
        return config
    }

    let identityHandler: HTTPServer.Handler = { request in
        .text("tls=\(request.isTLS)\nsans=\(request.peerCertificateURISANs.joined(separator: ","))\n"
              + "target=\(request.rawTarget)\nbody=\(String(decoding: request.body, as: UTF8.self))")
    }

    func client(_ server: HTTPServer, _ pki: TestPKI, _ name: String?) throws -> (RawHTTPClient, TLSStream) {
        let stream = try TLSStream(port: server.boundPort, caFile: pki.path("ca.crt"),
                                   certificateFile: name.map { pki.path("\($0).crt") },
                                   keyFile: name.map { pki.path("\($0).key") })
        return (RawHTTPClient(stream: stream), stream)
    }

    @Test func clientWithCertificateIsAnsweredAndItsURISANIsVisible() throws {
        let pki = try makePKI()
        try withServer(tlsConfiguration(pki), handler: identityHandler) { server in
            let (http, stream) = try client(server, pki, "client")
            #expect(stream.serverSubject == "CN=server-v1")
            let r = try http.request("POST", "/v1/check?x=%2F", body: Array("{}".utf8))
            #expect(r.status == 200)
            let f = fields(r)
            #expect(f["tls"] == "true")
            #expect(f["sans"] == Self.frontend)
            #expect(f["target"] == "/v1/check?x=%2F")
            #expect(f["body"] == "{}")
            // Keep-alive over TLS.
            #expect(fields(try http.request("GET", "/again"))["sans"] == Self.frontend)
        }
    }

    @Test func certificateWithoutURISANIsServedWithNoIdentity() throws {
        let pki = try makePKI()
        try withServer(tlsConfiguration(pki), handler: identityHandler) { server in
            let (http, _) = try client(server, pki, "plain-client")
            let f = fields(try http.request("GET", "/"))
            #expect(f["tls"] == "true")
            #expect(f["sans"] == "")
        }
    }

    @Test func clientWithoutCertificateIsRefused() throws {
        let pki = try makePKI()
        let calls = LockedBox(0)
        try withServer(tlsConfiguration(pki), handler: { _ in
            calls.update { $0 += 1 }
            return .text("should not happen")
        }) { server in
            // With TLS 1.3 the client may finish its side of the handshake before the server's alert
            // arrives: either way, no HTTP answer.
            #expect(throws: (any Error).self) {
                let (http, _) = try client(server, pki, nil)
                _ = try http.request("GET", "/")
            }
            #expect(calls.get() == 0)
        }
    }

    @Test func clientFromAnotherCAIsRefused() throws {
        let pki = try makePKI()
        let calls = LockedBox(0)
        try withServer(tlsConfiguration(pki), handler: { _ in
            calls.update { $0 += 1 }
            return .text("should not happen")
        }) { server in
            #expect(throws: (any Error).self) {
                let (http, _) = try client(server, pki, "rogue-client")
                _ = try http.request("GET", "/")
            }
            #expect(calls.get() == 0)
        }
    }

    @Test func plainHTTPToTheTLSPortGetsNoAnswer() throws {
        let pki = try makePKI()
        _ = try withServer(tlsConfiguration(pki), handler: identityHandler) { server in
            #expect(throws: (any Error).self) {
                let plain = try RawHTTPClient(port: server.boundPort)
                let r = try plain.request("GET", "/")
                if r.status == 200 { Issue.record("plain HTTP answered over the TLS port") }
            }
        }
    }

    @Test func rotatedCertificateIsUsedByNewConnections() throws {
        let pki = try makePKI()
        try withServer(tlsConfiguration(pki), handler: identityHandler) { server in
            let (oldHTTP, oldStream) = try client(server, pki, "client")
            #expect(oldStream.serverSubject == "CN=server-v1")
            #expect(try oldHTTP.request("GET", "/").status == 200)

            // Half-way through a rotation (new cert, old key): unusable pair, the old one stays in use.
            try pki.replace("server.crt", with: "server-v2.crt")
            let (midHTTP, midStream) = try client(server, pki, "client")
            #expect(midStream.serverSubject == "CN=server-v1")
            #expect(try midHTTP.request("GET", "/").status == 200)
            #expect(server.tlsCredentialReloads == 0)

            // Rotation complete: new connections get the new certificate, without a restart.
            try pki.replace("server.key", with: "server-v2.key")
            let (newHTTP, newStream) = try client(server, pki, "client")
            #expect(newStream.serverSubject == "CN=server-v2")
            #expect(fields(try newHTTP.request("GET", "/"))["sans"] == Self.frontend)
            #expect(server.tlsCredentialReloads == 1)

            // The connection opened before the rotation still works.
            #expect(fields(try oldHTTP.request("GET", "/still"))["sans"] == Self.frontend)

            // And back again (in-place rewrite rather than rename).
            try FileManager.default.removeItem(atPath: pki.path("server.crt"))
            try FileManager.default.copyItem(atPath: pki.path("server-v1.crt"), toPath: pki.path("server.crt"))
            try FileManager.default.removeItem(atPath: pki.path("server.key"))
            try FileManager.default.copyItem(atPath: pki.path("server-v1.key"), toPath: pki.path("server.key"))
            let (backHTTP, backStream) = try client(server, pki, "client")
            #expect(backStream.serverSubject == "CN=server-v1")
            #expect(try backHTTP.request("GET", "/").status == 200)
            #expect(server.tlsCredentialReloads == 2)
        }
    }

    @Test func badTLSFilesAreATypedStartError() throws {
        let pki = try makePKI()
        var config = tlsConfiguration(pki)
        config.tls?.keyFile = pki.path("server-v2.key")  // does not match server.crt (v1)
        do throws(HTTPServerError) {
            let server = HTTPServer(configuration: config, handler: identityHandler)
            try server.start()
            server.stop()
            Issue.record("started with a mismatched key")
        } catch {
            guard case .tlsCredentials = error else { Issue.record("unexpected \(error)"); return }
        }
        config = tlsConfiguration(pki)
        config.tls?.clientCAFile = pki.path("missing-ca.crt")
        do throws(HTTPServerError) {
            let server = HTTPServer(configuration: config, handler: identityHandler)
            try server.start()
            server.stop()
            Issue.record("started without a client CA")
        } catch {
            guard case .tlsCredentials(let file, _) = error else { Issue.record("unexpected \(error)"); return }
            #expect(file.hasSuffix("missing-ca.crt"))
        }
    }
}
