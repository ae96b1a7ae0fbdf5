import Crypto
import CryptoExtras

/// A JSON Web Key Set as Envoy's jwt_verify_lib reads it, each key turned into a swift-crypto public key
/// once, when the set loads (or is fetched). Verification is swift-crypto's (BoringSSL), never ours.
public struct JWKS: Sendable {
    public struct Key: Sendable {
        public enum Material: Sendable {
            case rsa(_RSA.Signing.PublicKey)
            case p256(P256.Signing.PublicKey)
            case p384(P384.Signing.PublicKey)
            case p521(P521.Signing.PublicKey)
            case ed25519(Curve25519.Signing.PublicKey)
            case hmac(SymmetricKey)
            /// istiod's stand-in for a `jwksUri` it could not fetch: a key that verifies nothing.
            case placeholder
        }

        public var kid: String?
        public var alg: String?
        public var material: Material
    }

    public var keys: [Key]

    public init(keys: [Key]) { self.keys = keys }

    /// What a set that never loaded stands for (istiod's fake key has kid `abc`): every token fails.
    public static let placeholder = JWKS(keys: [Key(kid: "abc", alg: nil, material: .placeholder)])

    public struct Problem: Error, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// Parses a JWKS document. Stricter than Envoy, which skips a key it cannot read: here any such key
    /// refuses the set, so a typo is a load error at its line and not a key silently missing.
    public static func parse(_ text: String) -> Result<JWKS, Problem> {
        let value: JSONValue
        do { value = try JSONParser.parse(text) } catch { return .failure(Problem(message: "jwks is not valid JSON: \(error)")) }
        guard case .object(let members) = value else { return .failure(Problem(message: "jwks must be a JSON object")) }
        guard let keysValue = members["keys"] else { return .failure(Problem(message: "jwks has no \"keys\" field")) }
        guard case .array(let items) = keysValue else { return .failure(Problem(message: "jwks \"keys\" is not an array")) }
        guard !items.isEmpty else { return .failure(Problem(message: "jwks has no key")) }
        var keys: [Key] = []
        for (index, item) in items.enumerated() {
            switch parseKey(item) {
            case .success(let key): keys.append(key)
            case .failure(let problem): return .failure(Problem(message: "keys[\(index)]: \(problem.message)"))
            }
        }
        return .success(JWKS(keys: keys))
    }

    static func parseKey(_ item: JSONValue) -> Result<Key, Problem> {
        func fail(_ message: String) -> Result<Key, Problem> { .failure(Problem(message: message)) }
        guard case .object(let key) = item else { return fail("a key must be a JSON object") }
        func text(_ name: String) -> String?? {
            guard let value = key[name] else { return .some(nil) }
            guard case .string(let s) = value else { return nil }
            return .some(s)
        }
        func bytes(_ name: String) -> [UInt8]? { (key[name]?.stringValue).flatMap { Base64URL.decode($0.utf8) } }
        guard let kidField = text("kid") else { return fail("[kid] is not a string") }
        guard let algField = text("alg") else { return fail("[alg] is not a string") }
        guard let ktyField = text("kty"), let kty = ktyField else { return fail("[kty] is missing or not a string") }
        let alg = algField
        switch kty {
        case "RSA":
            if let alg, !(alg.hasPrefix("RS") || alg.hasPrefix("PS")) { return fail("[alg] \(alg) is not RS* or PS* for an RSA key") }
            guard let n = bytes("n"), let e = bytes("e"), !n.isEmpty, !e.isEmpty else {
                return fail("RSA [n] or [e] is missing or not base64url")
            }
            guard let publicKey = try? _RSA.Signing.PublicKey(n: n, e: e) else {
                return fail("RSA key refused (keys under 2048 bits are not accepted)")
            }
            return .success(Key(kid: kidField, alg: alg, material: .rsa(publicKey)))
        case "EC":
            guard let crvField = text("crv"), let crv = crvField else { return fail("EC [crv] is missing or not a string") }
            let expected = ["P-256": "ES256", "P-384": "ES384", "P-521": "ES512"]
            guard let curveAlg = expected[crv] else { return fail("EC [crv] \(crv) is not supported (P-256, P-384, P-521)") }
            if let alg, alg != curveAlg { return fail("[alg] \(alg) does not go with [crv] \(crv)") }
            guard let x = bytes("x"), let y = bytes("y") else { return fail("EC [x] or [y] is missing or not base64url") }
            let raw = x + y
            let material: Key.Material?
            switch crv {
            case "P-256": material = (try? P256.Signing.PublicKey(rawRepresentation: raw)).map(Key.Material.p256)
            case "P-384": material = (try? P384.Signing.PublicKey(rawRepresentation: raw)).map(Key.Material.p384)
            default: material = (try? P521.Signing.PublicKey(rawRepresentation: raw)).map(Key.Material.p521)
            }
            guard let material else { return fail("EC [x] and [y] are not a point of \(crv)") }
            return .success(Key(kid: kidField, alg: alg, material: material))
        case "OKP":
            guard text("crv") == .some("Ed25519") else { return fail("OKP [crv] must be Ed25519") }
            if let alg, alg != "EdDSA" { return fail("[alg] \(alg) is not EdDSA for an Ed25519 key") }
            guard let x = bytes("x"), let publicKey = try? Curve25519.Signing.PublicKey(rawRepresentation: x) else {
                return fail("OKP [x] is missing or not a 32-byte Ed25519 key")
            }
            return .success(Key(kid: kidField, alg: alg, material: .ed25519(publicKey)))
        case "oct":
            if let alg, !alg.hasPrefix("HS") { return fail("[alg] \(alg) is not HS* for an HMAC key") }
            guard let k = bytes("k"), !k.isEmpty else { return fail("oct [k] is missing or not base64url") }
            return .success(Key(kid: kidField, alg: alg, material: .hmac(SymmetricKey(data: k))))
        default:
            return fail("[kty] \(kty) is not supported (RSA, EC, OKP, oct)")
        }
    }
}
