/// A verified token's signature and payload, kept so a user's next request skips the signature check.
/// Time and audiences are checked again on every use.
public protocol VerifiedTokenCache: Sendable {
    /// A token verified earlier (by its issuer's keys of the same policy set and key sets), if still kept.
    func lookup(token: String) -> JWT?
    func insert(token: String, _ jwt: JWT)
}

/// The identity a verified token gives the authorization step, as Envoy's jwt_authn publishes it.
public struct VerifiedIdentity: Sendable, Hashable {
    public var issuer: String
    public var subject: String?
    /// The payload, with `scope`, `permission` and the rule's `spaceDelimitedClaims` split on spaces.
    public var claims: [String: JSONValue]

    /// `iss/sub`, what `requestPrincipals` match (absent without a subject).
    public var requestPrincipal: String? { subject.map { issuer + "/" + $0 } }
}

/// What authentication made of a request.
public struct AuthenticationResult: Sendable {
    public enum Verdict: Sendable, Hashable {
        /// No RequestAuthentication applies to the workload (or a CORS preflight): nothing was read.
        case notApplicable
        /// No token, or every token checked was valid: authorization decides.
        case passed
        /// Envoy would answer 401 (403 for an audience) before authorization runs.
        case failed(JWTStatus)
    }

    public var verdict: Verdict
    /// The first provider's (by issuer) verified payload; nil when no token was verified.
    public var identity: VerifiedIdentity?
    /// Whether a token was found in a place an applicable rule reads.
    public var tokenFound: Bool
    /// Every signature check, by issuer: `valid`, or the failure's `metricLabel`; `cached` for a cache hit.
    public var validations: [(issuer: String, result: String)]
    /// `outputClaimToHeaders` and `outputPayloadToHeader` of the verified tokens, for the upstream request.
    public var upstreamHeaders: [(name: String, value: String)]
    /// Headers the sidecar removes before the request goes on: verified tokens not forwarded, and the
    /// output headers a client might have sent itself.
    public var removedHeaders: [String]
    /// `jwksUri`s whose keys lacked the one a token named (or never loaded): worth fetching again.
    public var staleKeySets: [String]
    /// The time window (Unix seconds, skew included) in which the same request gets the same result: from the
    /// latest `nbf` to the earliest `exp` of the tokens accepted (`Int64.max` for no `exp`).
    public var validFrom: Int64 = .min
    public var validUntil: Int64 = .max

    static let notApplicable = AuthenticationResult(verdict: .notApplicable, identity: nil, tokenFound: false,
                                                    validations: [], upstreamHeaders: [], removedHeaders: [],
                                                    staleKeySets: [])
}

/// The sidecar's jwt_authn filter for one policy set: which RequestAuthentications apply to a workload
/// (istiod's policy attachment), the requirement istiod builds from their rules, and Envoy's evaluation of
/// it, step for step (extractor, authenticator, any/all verifiers). Pure: keys fetched from a `jwksUri` come
/// in through `remoteKeys`, the time through `now`.
public struct RequestAuthenticator: Sendable {
    public let requestAuthentications: [RequestAuthentication]
    public let rootNamespace: String

    public init(_ set: PolicySet) {
        requestAuthentications = set.requestAuthentications
        rootNamespace = set.options.rootNamespace
    }

    public var isEmpty: Bool { requestAuthentications.isEmpty }

    /// The rules of every RequestAuthentication that applies to `workload`, sorted by issuer (istiod's order).
    public func rules(for workload: CheckRequest.Workload) -> [JWTRule] {
        var rules: [JWTRule] = []
        for ra in requestAuthentications where applies(ra, to: workload) { rules += ra.jwtRules }
        return rules.enumerated().sorted {
            $0.element.issuer == $1.element.issuer ? $0.offset < $1.offset
                : $0.element.issuer.utf8.lexicographicallyPrecedes($1.element.issuer.utf8)
        }.map(\.element)
    }

    /// Namespace or root namespace, selector a subset of the labels; a `targetRef` one only for the Gateway
    /// it names (as AuthorizationPolicy attachment), never for a sidecar.
    public func applies(_ ra: RequestAuthentication, to workload: CheckRequest.Workload) -> Bool {
        let inNamespace = workload.namespace.map { $0 == ra.id.namespace } ?? false
        guard inNamespace || ra.id.namespace == rootNamespace else { return false }
        if !ra.targetRefs.isEmpty {
            guard inNamespace, let gateway = workload.labels[gatewayNameLabel] else { return false }
            return ra.targetRefs.contains { $0.group == "gateway.networking.k8s.io" && $0.kind == "Gateway" && $0.name == gateway }
        }
        guard let selector = ra.selector else { return true }
        return selector.allSatisfy { workload.labels[$0.key] == $0.value }
    }

    /// Header names a request must carry for `authenticate` to see its tokens (the rest need not be copied).
    public func headerNames(for rules: [JWTRule]) -> Set<String> {
        TokenExtractor(rules).headerNames.union(["origin", "access-control-request-method"])
    }

    public func authenticate(_ input: AuthenticationInput, rules: [JWTRule], now: Int64,
                             remoteKeys: @escaping (String) -> JWKS? = { _ in nil },
                             cache: (any VerifiedTokenCache)? = nil) -> AuthenticationResult {
        guard !rules.isEmpty, !input.isCORSPreflight else { return .notApplicable }
        var run = AuthenticationRun(rules: rules, input: input, now: now, remoteKeys: remoteKeys, cache: cache)
        let status = run.evaluate(Self.requirement(ruleCount: rules.count))
        var result = AuthenticationResult.notApplicable
        result.verdict = status.map(AuthenticationResult.Verdict.failed) ?? .passed
        result.tokenFound = run.tokenFound
        result.validations = run.validations
        result.staleKeySets = run.staleKeySets
        result.validFrom = run.validFrom
        result.validUntil = run.validUntil
        var removed = run.removedHeaders
        for rule in rules {
            if let header = rule.outputPayloadToHeader { removed.append(header.lowercased()) }
            removed += rule.outputClaimToHeaders.map { $0.header.lowercased() }
        }
        var unique: [String] = []
        for name in removed where !unique.contains(name) { unique.append(name) }
        result.removedHeaders = unique.count > 1 ? unique.sorted() : unique
        if status == nil, let first = run.payloads.keys.min() {
            let (jwt, rule) = run.payloads[first]!
            result.identity = VerifiedIdentity(issuer: rule.issuer, subject: jwt.subject,
                                               claims: Self.splitting(jwt.payload, rule.spaceDelimitedClaims))
            result.upstreamHeaders = run.upstreamHeaders
        }
        return result
    }

    /// istiod's requirement: "any rule's provider, or allow missing" (`requires_any` of every provider and
    /// `allow_missing`). Envoy's allow-missing verifier reads every rule's locations and checks each token
    /// found with the provider of its issuer: no token holds, tokens that verify hold, a bad one does not.
    indirect enum Requirement {
        case provider(Int)
        case allowMissing([Int])
        case any([Requirement])
        case all([Requirement])
    }

    static func requirement(ruleCount: Int) -> Requirement {
        .any((0..<ruleCount).map(Requirement.provider) + [.allowMissing(Array(0..<ruleCount))])
    }

    /// Envoy's `normalize_payload_in_metadata.space_delimited_claims` (top-level claims only).
    static let alwaysSplit = ["scope", "permission"]

    static func splitting(_ payload: [String: JSONValue], _ extra: [String]) -> [String: JSONValue] {
        var claims = payload
        for name in Self.alwaysSplit + extra {
            // A string without a space matches as the one-element list Envoy makes of it: left as is. A string
            // of spaces only stays a string in Envoy (no element was added): left as is too.
            guard case .string(let text)? = claims[name], text.utf8.contains(UInt8(ascii: " ")) else { continue }
            let words = text.split(separator: " ", omittingEmptySubsequences: true)
            if !words.isEmpty { claims[name] = .array(words.map { .string(String($0)) }) }
        }
        return claims
    }
}

/// A token as a dictionary key: hashed 8 bytes at a time (a token is hundreds of bytes, and SipHash over all
/// of them was a tenth of a cache hit), compared in full.
public struct TokenKey: Hashable, Sendable {
    public let text: String
    let digest: UInt64

    public init(_ text: String) {
        self.text = text
        var copy = text
        digest = copy.withUTF8 { bytes -> UInt64 in
            var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(bytes.count)
            var i = 0
            let raw = UnsafeRawBufferPointer(bytes)
            while i + 8 <= bytes.count {
                h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xBF58_476D_1CE4_E5B9
                h ^= h >> 29
                i += 8
            }
            while i < bytes.count {
                h = (h ^ UInt64(bytes[i])) &* 0x94D0_49BB_1331_11EB
                i += 1
            }
            return h ^ (h >> 31)
        }
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(digest) }

    public static func == (a: TokenKey, b: TokenKey) -> Bool { a.digest == b.digest && a.text == b.text }
}
