import Yams

/// Decodes and validates one RequestAuthentication spec as istiod's webhook would
/// (`ValidateRequestAuthentication`), plus what Envoy would refuse later: an inline `jwks` that does not
/// parse, a key type it cannot use. Every problem is reported with its field path.
struct RequestAuthenticationDecoder {
    let reader: YAMLReader

    static let specFields: Set<String> = ["selector", "targetRef", "targetRefs", "jwtRules"]
    static let ruleFields: Set<String> = [
        "issuer", "audiences", "jwksUri", "jwks", "fromHeaders", "fromParams", "fromCookies", "outputPayloadToHeader",
        "outputClaimToHeaders", "forwardOriginalToken", "spaceDelimitedClaims", "timeout",
    ]

    func decode(spec: Node?, id: ResourceID, location: SourceLocation) -> RequestAuthentication? {
        var ra = RequestAuthentication(id: id, location: location)
        let before = reader.errors.count
        guard let spec, !reader.isNull(spec) else { return ra }
        guard let fields = reader.mapping(spec, "spec", allowed: Self.specFields) else { return nil }
        let policyDecoder = AuthorizationPolicyDecoder(reader: reader, policyNamespace: id.namespace)
        var attachments = 0
        for (key, node) in fields {
            let path = "spec." + key
            switch key {
            case "selector":
                attachments += 1
                ra.selector = policyDecoder.decodeSelector(node, path)
            case "targetRef":
                attachments += 1
                if let ref = policyDecoder.decodeTargetRef(node, path) { ra.targetRefs = [ref] }
            case "targetRefs":
                attachments += 1
                ra.targetRefs = (reader.sequence(node, path) ?? []).enumerated().compactMap {
                    policyDecoder.decodeTargetRef($1, "\(path)[\($0)]")
                }
            default:
                var issuers: [String: Int] = [:]
                for (index, item) in (reader.sequence(node, path) ?? []).enumerated() {
                    let rulePath = "\(path)[\(index)]"
                    guard let rule = decodeRule(item, rulePath) else { continue }
                    if let first = issuers[rule.issuer] {
                        reader.fail(.invalidValue, item, rulePath + ".issuer",
                                    "duplicate issuer \"\(rule.issuer)\" (already in spec.jwtRules[\(first)])")
                        continue
                    }
                    issuers[rule.issuer] = index
                    ra.jwtRules.append(rule)
                }
            }
        }
        if attachments > 1 {
            reader.fail(.invalidValue, spec, "spec", "only one of selector, targetRef and targetRefs may be set")
        }
        return reader.errors.count == before ? ra : nil
    }

    private func decodeRule(_ node: Node, _ path: String) -> JWTRule? {
        guard let fields = reader.mapping(node, path, allowed: Self.ruleFields) else { return nil }
        let before = reader.errors.count
        var issuer: String?
        var inline: (text: String, node: Node)?
        var uri: String?
        var rule = JWTRule(issuer: "", keys: .remote(uri: ""), location: reader.location(node))
        for (key, value) in fields {
            let field = path + "." + key
            switch key {
            case "issuer": issuer = reader.string(value, field)
            case "audiences": rule.audiences = reader.strings(value, field).map(\.value)
            case "jwksUri":
                guard let text = reader.string(value, field) else { continue }
                if !(text.hasPrefix("https://") || text.hasPrefix("http://")) || text.count < 9 {
                    reader.fail(.invalidValue, value, field, "jwksUri must be an http:// or https:// URL")
                }
                uri = text
            case "jwks":
                if let text = reader.string(value, field) { inline = (text, value) }
            case "fromHeaders":
                for (i, item) in (reader.sequence(value, field) ?? []).enumerated() {
                    let itemPath = "\(field)[\(i)]"
                    guard let entries = reader.mapping(item, itemPath, allowed: ["name", "prefix"]) else { continue }
                    var location = JWTRule.HeaderLocation(name: "", prefix: "")
                    for (k, v) in entries {
                        guard let text = reader.string(v, itemPath + "." + k) else { continue }
                        if k == "name" { location.name = text.lowercased() } else { location.prefix = text }
                    }
                    if location.name.isEmpty || !isHeaderName(location.name) {
                        reader.fail(.invalidValue, item, itemPath + ".name", "a header name (a non-empty HTTP token) is required")
                    }
                    rule.fromHeaders.append(location)
                }
            case "fromParams": rule.fromParams = reader.strings(value, field).map(\.value)
            case "fromCookies": rule.fromCookies = reader.strings(value, field).map(\.value)
            case "outputPayloadToHeader":
                guard let text = reader.string(value, field) else { continue }
                if !isHeaderName(text) { reader.fail(.invalidValue, value, field, "\"\(text)\" is not a header name") }
                rule.outputPayloadToHeader = text.lowercased()
            case "outputClaimToHeaders":
                for (i, item) in (reader.sequence(value, field) ?? []).enumerated() {
                    let itemPath = "\(field)[\(i)]"
                    guard let entries = reader.mapping(item, itemPath, allowed: ["header", "claim"]) else { continue }
                    var output = JWTRule.ClaimToHeader(header: "", claim: "")
                    for (k, v) in entries {
                        guard let text = reader.string(v, itemPath + "." + k) else { continue }
                        if k == "header" { output.header = text.lowercased() } else { output.claim = text }
                    }
                    if !isHeaderName(output.header) {
                        reader.fail(.invalidValue, item, itemPath + ".header", "a header name (a non-empty HTTP token) is required")
                    }
                    if output.claim.isEmpty { reader.fail(.missingField, item, itemPath + ".claim", "a claim is required") }
                    rule.outputClaimToHeaders.append(output)
                }
            case "forwardOriginalToken":
                guard let text = reader.string(value, field), let flag = Bool(text) else {
                    reader.fail(.wrongType, value, field, "expected true or false")
                    continue
                }
                rule.forwardOriginalToken = flag
            case "spaceDelimitedClaims": rule.spaceDelimitedClaims = reader.strings(value, field).map(\.value)
            default:
                guard let text = reader.string(value, field), let seconds = Self.duration(text), seconds > 0 else {
                    reader.fail(.invalidValue, value, field, "expected a positive duration such as 5s or 500ms")
                    continue
                }
                rule.timeoutSeconds = seconds
            }
        }
        guard let issuer, !issuer.isEmpty else {
            reader.fail(.missingField, node, path + ".issuer", "issuer is required")
            return nil
        }
        rule.issuer = issuer
        if let inline {
            // istiod uses the inline keys when both are given.
            switch JWKS.parse(inline.text) {
            case .success(let set): rule.keys = .inline(set)
            case .failure(let problem): reader.fail(.invalidValue, inline.node, path + ".jwks", problem.message)
            }
        } else if let uri {
            rule.keys = .remote(uri: uri)
        } else {
            // istiod's OpenID discovery: the issuer's configuration names the key set.
            rule.keys = .discovered(configurationURI: JWTRule.Keys.configurationURI(issuer: issuer))
        }
        return reader.errors.count == before ? rule : nil
    }

    private func isHeaderName(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || "!#$%&'*+-.^_`|~".utf8.contains(b)
        }
    }

    /// A Go/protobuf duration: `5s`, `1.5s`, `500ms`, `1m`.
    static func duration(_ text: String) -> Double? {
        for (suffix, scale) in [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)] where text.hasSuffix(suffix) {
            return Double(text.dropLast(suffix.count)).map { $0 * scale }
        }
        return nil
    }
}
