import CGnuTLS
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A throw-away PKI made with the `openssl` CLI in a temporary directory.
final class TestPKI {
    let dir: URL

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("microhttpd-pki-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    @discardableResult
    func openssl(_ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["openssl"] + args
        p.currentDirectoryURL = dir
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard p.terminationStatus == 0 else { throw ClientError("openssl \(args.joined(separator: " ")): \(text)") }
        return text
    }

    /// Self-signed CA `name.crt` / `name.key`.
    func makeCA(_ name: String, keyUsage: String = "keyCertSign,cRLSign") throws {
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-keyout", "\(name).key", "-out", "\(name).crt", "-days", "2", "-subj", "/CN=\(name)",
                     "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,\(keyUsage)"])
    }

    /// `name` holding the concatenation of `files` (a CA bundle).
    func bundle(_ name: String, of files: [String]) throws {
        let text = try files.map { try String(contentsOfFile: path($0), encoding: .utf8) }.joined()
        try text.write(toFile: path(name), atomically: true, encoding: .utf8)
    }

    /// Leaf `name.crt` / `name.key` signed by `ca`, with the given subjectAltName list and extended key
    /// usage (`nil`: no extendedKeyUsage extension at all).
    func makeLeaf(_ name: String, ca: String, cn: String, san: String?, usage: String?) throws {
        var ext = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        if let usage { ext += "extendedKeyUsage=\(usage)\n" }
        if let san { ext += "subjectAltName=\(san)\n" }
        try ext.write(toFile: path("\(name).ext"), atomically: true, encoding: .utf8)
        try openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-keyout", "\(name).key", "-out", "\(name).csr", "-subj", "/CN=\(cn)"])
        try openssl(["x509", "-req", "-in", "\(name).csr", "-CA", "\(ca).crt", "-CAkey", "\(ca).key",
                     "-CAcreateserial", "-out", "\(name).crt", "-days", "2", "-extfile", "\(name).ext"])
    }

    func makeServer(_ name: String, ca: String, cn: String) throws {
        try makeLeaf(name, ca: ca, cn: cn, san: "DNS:localhost,IP:127.0.0.1", usage: "serverAuth")
    }

    func makeClient(_ name: String, ca: String, spiffe: String?, usage: String? = "clientAuth") throws {
        try makeLeaf(name, ca: ca, cn: name, san: spiffe.map { "URI:\($0)" }, usage: usage)
    }

    /// Replaces `dst` with a copy of `src` atomically (write elsewhere, then rename), like a secret rotation.
    func replace(_ dst: String, with src: String) throws {
        let tmp = path(".\(UUID().uuidString).tmp")
        try FileManager.default.copyItem(atPath: path(src), toPath: tmp)
        guard rename(tmp, path(dst)) == 0 else { throw ClientError("rename: \(errno)") }
    }
}

/// A GnuTLS client connection over a `TCPStream`.
final class TLSStream: ByteStream {
    private let tcp: TCPStream
    private var session: gnutls_session_t?
    private var credentials: gnutls_certificate_credentials_t?
    private let hostname = strdup("localhost")!

    /// Connects and handshakes; throws if the handshake fails. The server must present a certificate for
    /// `localhost` chaining to `caFile`.
    init(port: UInt16, caFile: String, certificateFile: String? = nil, keyFile: String? = nil) throws {
        tcp = try TCPStream(port: port)
        func check(_ rc: Int32, _ what: String) throws {
            if rc < 0 { throw ClientError("\(what): \(String(cString: gnutls_strerror(rc)))") }
        }
        do {
            try check(gnutls_certificate_allocate_credentials(&credentials), "allocate")
            try check(gnutls_certificate_set_x509_trust_file(credentials, caFile, GNUTLS_X509_FMT_PEM), "trust")
            if let certificateFile, let keyFile {
                try check(gnutls_certificate_set_x509_key_file(credentials, certificateFile, keyFile,
                                                              GNUTLS_X509_FMT_PEM), "key pair")
            }
            try check(gnutls_init(&session, UInt32(GNUTLS_CLIENT)), "init")
            try check(gnutls_set_default_priority(session), "priority")
            try check(gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, UnsafeMutableRawPointer(credentials)),
                      "credentials")
            // GnuTLS keeps the pointer: it must outlive the session.
            gnutls_session_set_verify_cert(session, hostname, 0)
            gnutls_transport_set_int2(session, tcp.fd, tcp.fd)
            gnutls_handshake_set_timeout(session, 5000)
            var rc: Int32
            repeat { rc = gnutls_handshake(session) } while rc < 0 && gnutls_error_is_fatal(rc) == 0
            if rc < 0 {
                var out = gnutls_datum_t()
                gnutls_certificate_verification_status_print(gnutls_session_get_verify_cert_status(session),
                                                             GNUTLS_CRT_X509, &out, 0)
                let status = out.data.map { String(cString: $0) } ?? ""
                mhz_tls_free(out.data)  // the text is GnuTLS's to free (LeakSanitizer)
                throw ClientError("handshake: \(String(cString: gnutls_strerror(rc)))\(alertText(rc)) \(status) peer=\(serverSubject ?? "?")")
            }
        } catch {
            close()
            throw error
        }
    }

    func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { gnutls_record_send(session, $0.baseAddress, $0.count) }
            if n == Int(GNUTLS_E_AGAIN) || n == Int(GNUTLS_E_INTERRUPTED) { continue }
            guard n > 0 else {
                // Under TLS 1.3 the server judges the certificate after the client's handshake ended; when it
                // refuses fast, its alert and close can beat this send. The alert is then waiting to be read.
                throw ClientError("tls send: \(String(cString: gnutls_strerror(Int32(n))))\(pendingAlert())")
            }
            offset += n
        }
    }

    func read(max: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max)
        while true {
            let n = buffer.withUnsafeMutableBytes { gnutls_record_recv(session, $0.baseAddress, max) }
            if n == Int(GNUTLS_E_AGAIN) || n == Int(GNUTLS_E_INTERRUPTED) { continue }
            if n == Int(GNUTLS_E_PREMATURE_TERMINATION) { return [] }
            if n < 0 { throw ClientError("tls recv: \(String(cString: gnutls_strerror(Int32(n))))\(alertText(Int32(n)))") }
            return Array(buffer[0..<n])
        }
    }

    /// ` alert: NAME` if the server's next record is an alert (one read attempt), else empty.
    private func pendingAlert() -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        for _ in 0..<8 {
            let n = buffer.withUnsafeMutableBytes { gnutls_record_recv(session, $0.baseAddress, $0.count) }
            if n == Int(GNUTLS_E_AGAIN) || n == Int(GNUTLS_E_INTERRUPTED) { continue }
            return n < 0 ? alertText(Int32(n)) : ""
        }
        return ""
    }

    /// ` alert: NAME` (e.g. `Certificate is bad`) when `rc` says the server sent a fatal alert, else empty.
    private func alertText(_ rc: Int32) -> String {
        guard rc == GNUTLS_E_FATAL_ALERT_RECEIVED || rc == GNUTLS_E_WARNING_ALERT_RECEIVED, let session else { return "" }
        return " alert: " + (gnutls_alert_get_name(gnutls_alert_get(session)).map { String(cString: $0) } ?? "?")
    }

    /// The server certificate's subject DN, e.g. `CN=server-v1`.
    var serverSubject: String? {
        guard let session else { return nil }
        var count: UInt32 = 0
        guard let peers = gnutls_certificate_get_peers(session, &count), count > 0 else { return nil }
        var crt: gnutls_x509_crt_t?
        guard gnutls_x509_crt_init(&crt) == 0 else { return nil }
        defer { gnutls_x509_crt_deinit(crt) }
        guard gnutls_x509_crt_import(crt, peers, GNUTLS_X509_FMT_DER) == 0 else { return nil }
        var buffer = [CChar](repeating: 0, count: 1024)
        var size = buffer.count
        guard gnutls_x509_crt_get_dn(crt, &buffer, &size) == 0 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func close() {
        if let session {
            gnutls_deinit(session)
            self.session = nil
        }
        if let credentials {
            gnutls_certificate_free_credentials(credentials)
            self.credentials = nil
        }
        tcp.close()
    }

    deinit { free(hostname) }
}
