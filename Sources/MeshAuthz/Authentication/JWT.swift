import Crypto
import CryptoExtras

/// A token parsed as jwt_verify_lib's `Jwt::parseFromString` does, check for check and in the same
/// order, so the first problem found is the one Envoy names.
public struct JWT: Sendable {
    public let alg: String
    public let kid: String?
    public let issuer: String?
    public let subject: String?
    public let notBefore: Int64
    public let expires: Int64
    public let audiences: [String]
    /// The payload as JSON: what RBAC's `request.auth.claims` read.
    public let payload: [String: JSONValue]
    /// The payload segment as sent (`outputPayloadToHeader` forwards it).
    public let payloadBase64URL: String
    let signingInput: [UInt8]
    let signature: [UInt8]

    static let implementedAlgorithms: Set<String> = [
        "ES256", "ES384", "ES512", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA",
    ]

    public static func parse(_ token: some StringProtocol) -> Result<JWT, JWTStatus> {
        let bytes = Array(token.utf8)
        // Exactly two dots, then three non-empty sections (absl::SkipEmpty).
        guard bytes.count(where: { $0 == UInt8(ascii: ".") }) == 2 else { return .failure(.badFormat) }
        let sections = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: true)
        guard sections.count == 3 else { return .failure(.badFormat) }
        guard let headerBytes = Base64URL.decode(sections[0]) else { return .failure(.headerBadBase64) }
        guard case .object(let header)? = try? JSONParser.parse(headerBytes) else { return .failure(.headerBadJSON) }
        guard case .string(let alg)? = header["alg"] else { return .failure(.headerBadAlg) }
        guard implementedAlgorithms.contains(alg) else { return .failure(.headerAlgNotImplemented) }
        var kid: String?
        if let value = header["kid"] {
            guard case .string(let text) = value else { return .failure(.headerBadKid) }
            kid = text
        }
        guard let payloadBytes = Base64URL.decode(sections[1]) else { return .failure(.payloadBadBase64) }
        guard case .object(let payload)? = try? JSONParser.parse(payloadBytes) else { return .failure(.payloadBadJSON) }
        func optionalString(_ name: String) -> Result<String?, JWTStatus> {
            guard let value = payload[name] else { return .success(nil) }
            guard case .string(let text) = value else { return .failure(.payloadNotString(name)) }
            return .success(text)
        }
        func integer(_ name: String) -> Result<Int64, JWTStatus> {
            guard let value = payload[name] else { return .success(0) }
            // protobuf's Struct holds numbers as doubles; a fraction or a value out of range is not an integer.
            guard case .number(let number) = value, number >= 0, number < 9.2e18, number == number.rounded() else {
                return .failure(.payloadNotInteger(name))
            }
            return .success(Int64(number))
        }
        let issuer: String?, subject: String?, nbf: Int64, exp: Int64
        switch optionalString("iss") { case .success(let v): issuer = v; case .failure(let e): return .failure(e) }
        switch optionalString("sub") { case .success(let v): subject = v; case .failure(let e): return .failure(e) }
        if case .failure(let e) = integer("iat") { return .failure(e) }
        switch integer("nbf") { case .success(let v): nbf = v; case .failure(let e): return .failure(e) }
        switch integer("exp") { case .success(let v): exp = v; case .failure(let e): return .failure(e) }
        if case .failure(let e) = optionalString("jti") { return .failure(e) }
        var audiences: [String] = []
        switch payload["aud"] {
        case nil: break
        case .string(let text)?: audiences = [text]
        case .array(let items)?:
            for item in items {
                guard case .string(let text) = item else { return .failure(.payloadAudNotString) }
                audiences.append(text)
            }
        default: return .failure(.payloadAudNotString)
        }
        guard let signature = Base64URL.decode(sections[2]) else { return .failure(.signatureBadBase64) }
        let signingInput = Array(bytes[..<sections[1].endIndex])
        return .success(JWT(alg: alg, kid: kid, issuer: issuer, subject: subject, notBefore: nbf, expires: exp,
                            audiences: audiences, payload: payload,
                            payloadBase64URL: String(decoding: sections[1], as: UTF8.self),
                            signingInput: signingInput, signature: signature))
    }

    /// `Jwt::verifyTimeConstraint`: `nbf` and `exp` with the clock skew (Envoy's default 60 s).
    public func checkTime(now: Int64, skew: Int64 = 60) -> JWTStatus? {
        if now + skew < notBefore { return .notYetValid }
        if expires != 0 && now > expires + skew { return .expired }
        return nil
    }

    /// `verifyJwtWithoutTimeChecking`: a key whose `kid` and `alg` do not contradict the token's is tried;
    /// the first that verifies wins. None tried: no key matches; some tried: the signature is bad.
    public func verifySignature(with jwks: JWKS) -> JWTStatus? {
        var matched = false
        for key in jwks.keys {
            if let kid, !kid.isEmpty, let keyID = key.kid, !keyID.isEmpty, keyID != kid { continue }
            if let keyAlg = key.alg, !keyAlg.isEmpty, keyAlg != alg { continue }
            matched = true
            switch verify(key.material) {
            case .valid: return nil
            case .invalid: continue
            case .stop(let status): return status
            }
        }
        return matched ? .verificationFailed : .kidAlgMismatch
    }

    private enum Verdict { case valid, invalid, stop(JWTStatus) }

    private func verify(_ material: JWKS.Key.Material) -> Verdict {
        switch material {
        case .rsa(let key):
            let pss = alg.hasPrefix("PS")
            guard pss || alg.hasPrefix("RS") else { return .invalid }
            let rsaSignature = _RSA.Signing.RSASignature(rawRepresentation: signature)
            let padding: _RSA.Signing.Padding = pss ? .PSS : .insecurePKCS1v1_5
            let ok: Bool
            switch alg.suffix(3) {
            case "384": ok = key.isValidSignature(rsaSignature, for: SHA384.hash(data: signingInput), padding: padding)
            case "512": ok = key.isValidSignature(rsaSignature, for: SHA512.hash(data: signingInput), padding: padding)
            default: ok = key.isValidSignature(rsaSignature, for: SHA256.hash(data: signingInput), padding: padding)
            }
            return ok ? .valid : .invalid
        case .p256(let key):
            guard let sig = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { return .invalid }
            return ecdsa { key.isValidSignature(sig, for: $0) } ? .valid : .invalid
        case .p384(let key):
            guard let sig = try? P384.Signing.ECDSASignature(rawRepresentation: signature) else { return .invalid }
            return ecdsa { key.isValidSignature(sig, for: $0) } ? .valid : .invalid
        case .p521(let key):
            guard let sig = try? P521.Signing.ECDSASignature(rawRepresentation: signature) else { return .invalid }
            return ecdsa { key.isValidSignature(sig, for: $0) } ? .valid : .invalid
        case .ed25519(let key):
            guard alg == "EdDSA" else { return .invalid }
            guard signature.count == 64 else { return .stop(.ed25519SignatureWrongLength) }
            return key.isValidSignature(signature, for: signingInput) ? .valid : .invalid
        case .hmac(let key):
            guard alg.hasPrefix("HS") else { return .invalid }
            let ok: Bool
            switch alg {
            case "HS384": ok = HMAC<SHA384>.isValidAuthenticationCode(signature, authenticating: signingInput, using: key)
            case "HS512": ok = HMAC<SHA512>.isValidAuthenticationCode(signature, authenticating: signingInput, using: key)
            default: ok = HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: signingInput, using: key)
            }
            return ok ? .valid : .invalid
        case .placeholder:
            return .invalid
        }
    }

    /// ECDSA over the digest the token's `alg` names (Envoy hashes by `alg`, whatever the curve).
    private func ecdsa(_ verify: (any Digest) -> Bool) -> Bool {
        guard alg.hasPrefix("ES") else { return false }
        switch alg {
        case "ES384": return verify(SHA384.hash(data: signingInput))
        case "ES512": return verify(SHA512.hash(data: signingInput))
        default: return verify(SHA256.hash(data: signingInput))
        }
    }
}
