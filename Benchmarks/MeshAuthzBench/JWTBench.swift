import Crypto
import CryptoExtras
import MeshAuthz
#if canImport(Glibc)
import Glibc
#endif

/// `MeshAuthzBench --jwt [--jwt-write DIR]`: what validating a token costs in process, per algorithm, when it
/// is new (a cache miss: parse, signature, claims) and when it was verified before (a hit), through
/// `RequestAuthenticator.authenticate` as the server calls it; and, with `--jwt-write`, a policy directory plus
/// wrk scripts for the HTTP figure (`Benchmarks/jwt.sh`).
enum JWTBench {
    static func b64url(_ bytes: some Sequence<UInt8>) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var out: [UInt8] = [], buffer: UInt32 = 0, bits = 0
        for b in bytes {
            buffer = (buffer << 8) | UInt32(b); bits += 8
            while bits >= 6 { bits -= 6; out.append(alphabet[Int((buffer >> UInt32(bits)) & 0x3F)]) }
        }
        if bits > 0 { out.append(alphabet[Int((buffer << UInt32(6 - bits)) & 0x3F)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// A signer: its JWK (public) and a function signing the signing input.
    struct Signer {
        let alg: String
        let jwk: String
        let sign: ([UInt8]) -> [UInt8]
    }

    static func signer(_ alg: String) -> Signer {
        switch alg {
        case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
            let key = try! _RSA.Signing.PrivateKey(keySize: .bits2048)
            let der = key.publicKey.pkcs1DERRepresentation
            // PKCS#1 RSAPublicKey: SEQUENCE { INTEGER n, INTEGER e }
            let (n, e) = rsaNumbers(Array(der))
            let jwk = #"{"kty":"RSA","alg":"\#(alg)","kid":"k","n":"\#(b64url(n))","e":"\#(b64url(e))"}"#
            let padding: _RSA.Signing.Padding = alg.hasPrefix("PS") ? .PSS : .insecurePKCS1v1_5
            return Signer(alg: alg, jwk: jwk) { input in
                let sig: _RSA.Signing.RSASignature
                switch alg.suffix(3) {
                case "384": sig = try! key.signature(for: SHA384.hash(data: input), padding: padding)
                case "512": sig = try! key.signature(for: SHA512.hash(data: input), padding: padding)
                default: sig = try! key.signature(for: SHA256.hash(data: input), padding: padding)
                }
                return Array(sig.rawRepresentation)
            }
        case "ES256":
            let key = P256.Signing.PrivateKey()
            let raw = Array(key.publicKey.rawRepresentation)
            let jwk = #"{"kty":"EC","crv":"P-256","alg":"ES256","kid":"k","x":"\#(b64url(raw[..<32]))","y":"\#(b64url(raw[32...]))"}"#
            return Signer(alg: alg, jwk: jwk) { Array(try! key.signature(for: $0).rawRepresentation) }
        case "ES384":
            let key = P384.Signing.PrivateKey()
            let raw = Array(key.publicKey.rawRepresentation)
            let jwk = #"{"kty":"EC","crv":"P-384","alg":"ES384","kid":"k","x":"\#(b64url(raw[..<48]))","y":"\#(b64url(raw[48...]))"}"#
            return Signer(alg: alg, jwk: jwk) { Array(try! key.signature(for: SHA384.hash(data: $0)).rawRepresentation) }
        default:
            let key = Curve25519.Signing.PrivateKey()
            let jwk = #"{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"k","x":"\#(b64url(key.publicKey.rawRepresentation))"}"#
            return Signer(alg: "EdDSA", jwk: jwk) { Array(try! key.signature(for: $0)) }
        }
    }

    static func rsaNumbers(_ der: [UInt8]) -> ([UInt8], [UInt8]) {
        var i = 0
        func length() -> Int {
            let first = Int(der[i]); i += 1
            if first < 0x80 { return first }
            var value = 0
            for _ in 0..<(first & 0x7F) { value = value << 8 | Int(der[i]); i += 1 }
            return value
        }
        i += 1; _ = length()  // SEQUENCE
        i += 1; let nLength = length(); var n = Array(der[i..<(i + nLength)]); i += nLength
        i += 1; let eLength = length(); let e = Array(der[i..<(i + eLength)])
        while n.first == 0 { n.removeFirst() }
        return (n, e)
    }

    static func token(_ signer: Signer, sub: String) -> String {
        let header = b64url(Array(#"{"alg":"\#(signer.alg)","typ":"JWT","kid":"k"}"#.utf8))
        let payload = b64url(Array(#"{"iss":"https://bench.test","sub":"\#(sub)","tenant":"acme","groups":["a","b"],"exp":4102444800}"#.utf8))
        let input = header + "." + payload
        return input + "." + b64url(signer.sign(Array(input.utf8)))
    }

    static func policies(_ signer: Signer) -> String {
        """
        apiVersion: security.istio.io/v1
        kind: RequestAuthentication
        metadata: {name: jwt, namespace: bench}
        spec:
          selector: {matchLabels: {app: api}}
          jwtRules:
          - issuer: https://bench.test
            jwks: '{"keys":[\(signer.jwk)]}'
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: open, namespace: bench}
        spec:
          selector: {matchLabels: {app: api}}
          action: ALLOW
          rules: [{}]
        """
    }

    /// Kept verified tokens, as the server's `TokenCache` (without its bound and lock: the hit path here).
    final class Cache: VerifiedTokenCache, @unchecked Sendable {
        var entries: [TokenKey: JWT] = [:]
        func lookup(token: String) -> JWT? { entries[TokenKey(token)] }
        func insert(token: String, _ jwt: JWT) { entries[TokenKey(token)] = jwt }
    }

    static func run(write directory: String?) {
        print("| algorithm | cache miss median | miss mean | cache hit median | tokens |")
        print("|---|---:|---:|---:|---:|")
        for alg in ["RS256", "RS384", "RS512", "PS256", "PS512", "ES256", "ES384", "EdDSA"] {
            let signer = signer(alg)
            let set = try! PolicyLoader.load([PolicyFile(name: "jwt.yaml", text: policies(signer))]).get()
            let authenticator = RequestAuthenticator(set)
            let rules = authenticator.rules(for: .init(namespace: "bench", labels: ["app": "api"]))
            let count = 2000
            let tokens = (0..<count).map { token(signer, sub: "user-\($0)") }
            let inputs = tokens.map {
                AuthenticationInput(method: "GET", target: "/api", host: "api", headers: [("authorization", "Bearer " + $0)])
            }
            let cache = Cache()
            var miss: [Double] = [], hit: [Double] = []
            for input in inputs {
                let t0 = nanos()
                let result = authenticator.authenticate(input, rules: rules, now: 2_000_000_000, cache: cache)
                miss.append(Double(nanos() - t0) / 1000)
                precondition(result.identity != nil, "\(alg): token not verified")
            }
            for input in inputs {
                let t0 = nanos()
                let result = authenticator.authenticate(input, rules: rules, now: 2_000_000_000, cache: cache)
                hit.append(Double(nanos() - t0) / 1000)
                precondition(result.validations.allSatisfy { $0.result == "cached" })
            }
            miss.sort(); hit.sort()
            let mean = miss.reduce(0, +) / Double(miss.count)
            print("| \(alg) | \(fmt(miss[count / 2])) µs | \(fmt(mean)) µs | \(fmt(hit[count / 2])) µs | \(count) |")
            if alg == "RS256", let directory {
                mkdir(directory, 0o755)
                let text = policies(signer)
                _ = text.withCString { fputs($0, fopen(directory + "/policies.yaml", "w")!) }
                let tok = tokens[0]
                let common = #"wrk.headers["x-authz-namespace"] = "bench"; wrk.headers["x-authz-workload"] = "app=api"; wrk.path = "/ext_authz/api/orders""#
                write(directory + "/with-token.lua", common + "\nwrk.headers[\"Authorization\"] = \"Bearer \(tok)\"\n")
                write(directory + "/without-token.lua", common + "\n")
                // The same requests for Benchmarks/keepalive_client.py (callgrind): method, target, header pairs.
                let tsv = "GET\t/ext_authz/api/orders\tx-authz-namespace\tbench\tx-authz-workload\tapp=api"
                write(directory + "/with-token.tsv", tsv + "\tAuthorization\tBearer \(tok)\n")
                write(directory + "/without-token.tsv", tsv + "\n")
            }
        }
    }

    /// `--jwt-profile N`: N cache hits of one RS256 token, nothing else (for perf).
    static func profile(_ count: Int) {
        let signer = signer("RS256")
        let set = try! PolicyLoader.load([PolicyFile(name: "jwt.yaml", text: policies(signer))]).get()
        let authenticator = RequestAuthenticator(set)
        let rules = authenticator.rules(for: .init(namespace: "bench", labels: ["app": "api"]))
        let input = AuthenticationInput(method: "GET", target: "/api", host: "api",
                                        headers: [("authorization", "Bearer " + token(signer, sub: "u"))])
        let cache = Cache()
        var identified = 0
        let t0 = nanos()
        for _ in 0..<count {
            if authenticator.authenticate(input, rules: rules, now: 2_000_000_000, cache: cache).identity != nil { identified += 1 }
        }
        print("\(Double(nanos() - t0) / Double(count) / 1000) µs per hit, \(identified) identified")
    }

    static func write(_ path: String, _ text: String) {
        guard let f = fopen(path, "w") else { return }
        fputs(text, f)
        fclose(f)
    }

    static func fmt(_ value: Double) -> String {
        value >= 100 ? String(Int(value.rounded())) : String(Double(Int(value * 10)) / 10)
    }

    static func nanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
