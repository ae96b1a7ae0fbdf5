internal import CGnuTLS

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One loaded set of GnuTLS certificate credentials (server chain + key + client CA trust list).
/// Freed when the last connection that uses it closes.
final class TLSCredentials: @unchecked Sendable {
    let raw: gnutls_certificate_credentials_t

    private init(raw: gnutls_certificate_credentials_t) { self.raw = raw }

    deinit { gnutls_certificate_free_credentials(raw) }

    static func load(_ config: TLSConfiguration) -> Result<TLSCredentials, HTTPServerError> {
        var out: gnutls_certificate_credentials_t?
        var step: Int32 = 0
        let rc = mhz_tls_load_credentials(config.certificateFile, config.keyFile, config.clientCAFile, &out, &step)
        if rc == 0, let out { return .success(TLSCredentials(raw: out)) }
        let message = String(cString: gnutls_strerror(rc))
        switch step {
        case Int32(MHZ_TLS_LOAD_KEY_PAIR.rawValue):
            return .failure(.tlsCredentials(
                file: "\(config.certificateFile), \(config.keyFile)", message: message))
        case Int32(MHZ_TLS_LOAD_TRUST.rawValue):
            return .failure(.tlsCredentials(file: config.clientCAFile, message: message))
        default:
            return .failure(.tlsCredentials(file: config.certificateFile, message: message))
        }
    }
}

/// Identity of a file's current content as far as `stat` can tell.
struct FileStamp: Equatable {
    var device: UInt64 = 0
    var inode: UInt64 = 0
    var size: Int64 = -1
    var mtimeSeconds: Int = 0
    var mtimeNanoseconds: Int = 0
    var ctimeSeconds: Int = 0
    var ctimeNanoseconds: Int = 0

    init(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return }
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        size = Int64(st.st_size)
        #if canImport(Darwin)
        mtimeSeconds = st.st_mtimespec.tv_sec
        mtimeNanoseconds = st.st_mtimespec.tv_nsec
        ctimeSeconds = st.st_ctimespec.tv_sec
        ctimeNanoseconds = st.st_ctimespec.tv_nsec
        #else
        mtimeSeconds = st.st_mtim.tv_sec
        mtimeNanoseconds = st.st_mtim.tv_nsec
        ctimeSeconds = st.st_ctim.tv_sec
        ctimeNanoseconds = st.st_ctim.tv_nsec
        #endif
    }
}

/// The credentials new connections get, reloaded when the files change.
final class TLSCredentialStore: Sendable {
    let configuration: TLSConfiguration
    private struct State {
        var current: TLSCredentials
        /// Stamps of the files as last loaded or last attempted (a failed attempt is not retried until the
        /// files change again).
        var stamps: [FileStamp]
        var reloads = 0
    }
    /// Taken by every new TLS connection (any server thread) and by `reloads` readers.
    private let state: Locked<State>
    private let log: (@Sendable (String) -> Void)?

    /// How many times the credentials were reloaded.
    var reloads: Int { state.withLock { $0.reloads } }

    init(configuration: TLSConfiguration, log: (@Sendable (String) -> Void)?) throws(HTTPServerError) {
        self.configuration = configuration
        self.log = log
        let stamps = TLSCredentialStore.stamps(configuration)
        self.state = Locked(State(current: try TLSCredentials.load(configuration).get(), stamps: stamps))
    }

    private static func stamps(_ c: TLSConfiguration) -> [FileStamp] {
        [FileStamp(path: c.certificateFile), FileStamp(path: c.keyFile), FileStamp(path: c.clientCAFile)]
    }

    /// The credentials for a new connection; reloads them first if the files changed.
    func credentialsForNewConnection() -> TLSCredentials {
        let now = TLSCredentialStore.stamps(configuration)
        return state.withLock { state in
            if now != state.stamps {
                state.stamps = now
                switch TLSCredentials.load(configuration) {
                case .success(let fresh):
                    state.current = fresh
                    state.reloads += 1
                    log?("TLS credentials reloaded from \(configuration.certificateFile)")
                case .failure(let error):
                    log?("TLS credentials not reloaded, keeping the previous ones: \(error)")
                }
            }
            return state.current
        }
    }
}
