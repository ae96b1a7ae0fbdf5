/// One evaluation of a requirement over one request: Envoy's verifiers and `AuthenticatorImpl`, with every
/// token checked at most once per provider (Envoy repeats the work; the answers are the same).
struct AuthenticationRun {
    let rules: [JWTRule]
    let input: AuthenticationInput
    let now: Int64
    let remoteKeys: (String) -> JWKS?
    let cache: (any VerifiedTokenCache)?

    var tokenFound = false
    var validations: [(issuer: String, result: String)] = []
    /// Verified payloads by issuer (Envoy's `payload_in_metadata` is the issuer).
    var payloads: [String: (JWT, JWTRule)] = [:]
    var upstreamHeaders: [(name: String, value: String)] = []
    var removedHeaders: [String] = []
    var staleKeySets: [String] = []
    var validFrom: Int64 = .min
    var validUntil: Int64 = .max
    // Small memos, searched linearly (a request has a token or two): hashing a token costs more than comparing it.
    private var verified: [(index: Int, token: String, status: JWTStatus?)] = []
    private var parsed: [(token: String, result: Result<JWT, JWTStatus>)] = []
    private var extracted: [(indices: [Int], tokens: [FoundToken])] = []

    init(rules: [JWTRule], input: AuthenticationInput, now: Int64, remoteKeys: @escaping (String) -> JWKS?,
         cache: (any VerifiedTokenCache)?) {
        self.rules = rules
        self.input = input
        self.now = now
        self.remoteKeys = remoteKeys
        self.cache = cache
    }

    /// nil: the requirement holds.
    mutating func evaluate(_ requirement: RequestAuthenticator.Requirement) -> JWTStatus? {
        switch requirement {
        case .provider(let index):
            return authenticate(extract([index]), provider: index, allowMissing: false)
        case .allowMissing(let indices):
            return authenticate(extract(indices), provider: nil, allowMissing: true)
        case .any(let children):
            // The first child that holds settles it; otherwise the most telling failure (Envoy's
            // AnyVerifier prefers a real error over "issuer not configured", and that over "missing").
            var statuses: [JWTStatus] = []
            for child in children {
                guard let status = evaluate(child) else { return nil }
                statuses.append(status)
            }
            return statuses.first { $0 != .missing && $0 != .unknownIssuer }
                ?? (statuses.contains(.unknownIssuer) ? .unknownIssuer : .missing)
        case .all(let children):
            for child in children {
                if let status = evaluate(child) { return status }
            }
            return nil
        }
    }

    /// The tokens in the places the rules `indices` read (one rule's verifier and "allow missing" over the
    /// same rule read the same places: extracted once).
    private mutating func extract(_ indices: [Int]) -> [FoundToken] {
        if let done = extracted.first(where: { $0.indices == indices }) { return done.tokens }
        let tokens = TokenExtractor(indices.map { rules[$0] }).extract(input)
        extracted.append((indices, tokens))
        return tokens
    }

    /// `AuthenticatorImpl::verify`: tokens from the last found to the first. Without `allowMissing`, the first
    /// failure settles it; with it, every token is checked and the last one checked answers (no token: holds).
    private mutating func authenticate(_ tokens: [FoundToken], provider: Int?, allowMissing: Bool) -> JWTStatus? {
        if !tokens.isEmpty { tokenFound = true }
        guard !tokens.isEmpty else { return allowMissing ? nil : .missing }
        var status: JWTStatus?
        for token in tokens.reversed() {
            status = check(token, provider: provider)
            if status != nil && !allowMissing { return status }
        }
        return status
    }

    private mutating func check(_ token: FoundToken, provider: Int?) -> JWTStatus? {
        // A cached token was parsed and its signature verified by its issuer's keys in this policy set.
        let cached = cache?.lookup(token: token.token)
        let jwt: JWT
        if let cached {
            jwt = cached
        } else {
            switch parse(token.token) {
            case .failure(let status): return status
            case .success(let value): jwt = value
            }
        }
        let issuer = jwt.issuer ?? ""
        guard token.issuers.contains(issuer) else { return .unknownIssuer }
        // A given provider, or the first with the token's issuer.
        guard let index = provider ?? rules.firstIndex(where: { $0.issuer == issuer }) else { return .unknownIssuer }
        let rule = rules[index]
        // The same token for the same provider (its own verifier, then "allow missing") is checked and counted once.
        if let done = verified.first(where: { $0.index == index && $0.token == token.token }) {
            if done.status == nil { accept(jwt, rule, token) }
            return done.status
        }
        let status = verify(jwt, rule, token, cached: cached != nil)
        verified.append((index, token.token, status))
        if status == nil { accept(jwt, rule, token) }
        return status
    }

    private mutating func verify(_ jwt: JWT, _ rule: JWTRule, _ token: FoundToken, cached: Bool) -> JWTStatus? {
        if let status = jwt.checkTime(now: now) { return record(rule, status) }
        if !Self.audiencesAllowed(jwt.audiences, rule.audiences) { return record(rule, .audienceNotAllowed) }
        var status: JWTStatus?
        if cached {
            validations.append((rule.issuer, "cached"))
        } else {
            let keys: JWKS
            switch rule.keys {
            case .inline(let set): keys = set
            case .remote(let uri), .discovered(let uri):
                let fetched = remoteKeys(uri)
                keys = fetched ?? .placeholder
                if fetched == nil { staleKeySets.append(uri) }
            }
            status = jwt.verifySignature(with: keys)
            if status == .kidAlgMismatch, let uri = rule.remoteURI, !staleKeySets.contains(uri) { staleKeySets.append(uri) }
            validations.append((rule.issuer, status?.metricLabel ?? "valid"))
            if status == nil { cache?.insert(token: token.token, jwt) }
        }
        return status
    }

    private mutating func parse(_ token: String) -> Result<JWT, JWTStatus> {
        if let done = parsed.first(where: { $0.token == token }) { return done.result }
        let result = JWT.parse(token)
        parsed.append((token, result))
        return result
    }

    private mutating func record(_ rule: JWTRule, _ status: JWTStatus) -> JWTStatus {
        validations.append((rule.issuer, status.metricLabel))
        return status
    }

    /// `handleGoodJwt`: the payload for authorization, the output headers, the token removed unless forwarded.
    private mutating func accept(_ jwt: JWT, _ rule: JWTRule, _ token: FoundToken) {
        if payloads[rule.issuer] == nil { payloads[rule.issuer] = (jwt, rule) }
        validFrom = max(validFrom, jwt.notBefore - 60)
        if jwt.expires != 0 { validUntil = min(validUntil, jwt.expires + 60) }
        // Once per token and header, however many verifiers accepted the token.
        func add(_ name: String, _ value: String) {
            if !upstreamHeaders.contains(where: { $0.name == name && $0.value == value }) { upstreamHeaders.append((name, value)) }
        }
        if let header = rule.outputPayloadToHeader { add(header.lowercased(), jwt.payloadBase64URL) }
        for output in rule.outputClaimToHeaders {
            if let value = Self.claimText(jwt.payload, output.claim) { add(output.header.lowercased(), value) }
        }
        if !rule.forwardOriginalToken, case .header(let name) = token.place { removedHeaders.append(name) }
    }

    /// `addJWTClaimToHeader`: a string, number or boolean claim (nested with dots) as text, an object or a
    /// list as its JSON in base64; nothing for null or an empty string.
    static func claimText(_ payload: [String: JSONValue], _ path: String) -> String? {
        var value: JSONValue = .object(payload)
        for part in path.split(separator: ".", omittingEmptySubsequences: false) {
            guard let next = value[String(part)] else { return nil }
            value = next
        }
        switch value {
        case .string(let text): return text.isEmpty ? nil : text
        case .bool(let flag): return flag ? "true" : "false"
        case .number(let number):
            if number >= 0, number < 1.8e19, number == number.rounded() { return String(UInt64(number)) }
            return String(number)
        case .array, .object:
            var writer = JSONWriter(capacity: 128)
            writer.value(value)
            return standardBase64(writer.bytes)
        case .null: return nil
        }
    }

    /// jwt_verify_lib's `CheckAudience`: none configured allows any; otherwise one of the token's audiences
    /// must be configured, compared without an `http://`/`https://` scheme and a trailing `/`.
    static func audiencesAllowed(_ tokenAudiences: [String], _ configured: [String]) -> Bool {
        guard !configured.isEmpty else { return true }
        let allowed = Set(configured.map(sanitized))
        return tokenAudiences.contains { allowed.contains(sanitized($0)) }
    }

    static func sanitized(_ audience: String) -> String {
        var text = Substring(audience)
        if text.hasPrefix("http://") { text = text.dropFirst(7) } else if text.hasPrefix("https://") { text = text.dropFirst(8) }
        if text.hasSuffix("/") { text = text.dropLast() }
        return String(text)
    }
}

/// RFC 4648 base64 with padding (Envoy's `Base64::encode`, used for object and list claims in headers).
func standardBase64(_ bytes: [UInt8]) -> String {
    var text = Base64URL.encode(bytes).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    while text.utf8.count % 4 != 0 { text += "=" }
    return text
}
