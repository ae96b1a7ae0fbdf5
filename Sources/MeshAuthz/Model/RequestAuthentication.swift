/// A `RequestAuthentication` (security.istio.io): which end-user tokens a workload's sidecar validates,
/// where it finds them and with which keys. It never denies a request without a token by itself; only
/// an AuthorizationPolicy on `requestPrincipals` or `request.auth.*` does.
public struct RequestAuthentication: Sendable {
    public var id: ResourceID
    /// nil: every workload of the namespace (or of the mesh, in the root namespace).
    public var selector: [String: String]?
    /// Gateway attachment. Sidecars ignore such a RequestAuthentication (istiod's policy attachment).
    public var targetRefs: [TargetRef]
    public var jwtRules: [JWTRule]
    public var location: SourceLocation

    public init(id: ResourceID, selector: [String: String]? = nil, targetRefs: [TargetRef] = [],
                jwtRules: [JWTRule] = [], location: SourceLocation) {
        self.id = id
        self.selector = selector
        self.targetRefs = targetRefs
        self.jwtRules = jwtRules
        self.location = location
    }
}

/// One `jwtRules` entry: an issuer, its keys and the token locations (Envoy's `JwtProvider`).
public struct JWTRule: Sendable {
    /// A header the token is read from; the token starts after `prefix` (found anywhere in the value).
    public struct HeaderLocation: Sendable, Hashable {
        public var name: String
        public var prefix: String
        public init(name: String, prefix: String) {
            self.name = name
            self.prefix = prefix
        }
    }

    /// `outputClaimToHeaders`: a claim copied into a header of the allowed request.
    public struct ClaimToHeader: Sendable, Hashable {
        public var header: String
        public var claim: String
        public init(header: String, claim: String) {
            self.header = header
            self.claim = claim
        }
    }

    /// Where the rule's keys come from.
    public enum Keys: Sendable {
        /// `jwks`: parsed and validated when the policy set loads.
        case inline(JWKS)
        /// `jwksUri` (or a `jwks` left empty with a uri): fetched by the server, not by the core.
        case remote(uri: String)
        /// Neither: as istiod, the server reads `jwks_uri` from the issuer's OpenID configuration (this
        /// URI: the issuer without a trailing `/`, then `/.well-known/openid-configuration`) and fetches that.
        case discovered(configurationURI: String)

        /// Where an issuer's OpenID configuration is (OpenID Connect Discovery 1.0, section 4).
        public static func configurationURI(issuer: String) -> String {
            var base = issuer
            if base.hasSuffix("/") { base.removeLast() }
            return base + "/.well-known/openid-configuration"
        }
    }

    public var issuer: String
    public var audiences: [String]
    public var keys: Keys
    public var fromHeaders: [HeaderLocation]
    public var fromParams: [String]
    public var fromCookies: [String]
    public var outputPayloadToHeader: String?
    public var outputClaimToHeaders: [ClaimToHeader]
    public var forwardOriginalToken: Bool
    /// Claims split on spaces in the verified payload (`scope` and `permission` always are).
    public var spaceDelimitedClaims: [String]
    /// `timeout` of the JWKS fetch, seconds (Istio's default is 5 s).
    public var timeoutSeconds: Double
    public var location: SourceLocation

    public init(issuer: String, audiences: [String] = [], keys: Keys, fromHeaders: [HeaderLocation] = [],
                fromParams: [String] = [], fromCookies: [String] = [], outputPayloadToHeader: String? = nil,
                outputClaimToHeaders: [ClaimToHeader] = [], forwardOriginalToken: Bool = false,
                spaceDelimitedClaims: [String] = [], timeoutSeconds: Double = 5, location: SourceLocation) {
        self.issuer = issuer
        self.audiences = audiences
        self.keys = keys
        self.fromHeaders = fromHeaders
        self.fromParams = fromParams
        self.fromCookies = fromCookies
        self.outputPayloadToHeader = outputPayloadToHeader
        self.outputClaimToHeaders = outputClaimToHeaders
        self.forwardOriginalToken = forwardOriginalToken
        self.spaceDelimitedClaims = spaceDelimitedClaims
        self.timeoutSeconds = timeoutSeconds
        self.location = location
    }

    /// Envoy's default locations when a rule names none: `Authorization: Bearer <token>` and `?access_token=`.
    public var usesDefaultLocations: Bool { fromHeaders.isEmpty && fromParams.isEmpty && fromCookies.isEmpty }

    public var headerLocations: [HeaderLocation] {
        usesDefaultLocations ? [HeaderLocation(name: "authorization", prefix: "Bearer ")] : fromHeaders
    }

    public var paramLocations: [String] { usesDefaultLocations ? ["access_token"] : fromParams }

    /// What the server fetches for this rule's keys (and names them by): the `jwksUri`, or the OpenID
    /// configuration that leads to it; nil for inline keys.
    public var remoteURI: String? {
        switch keys {
        case .inline: return nil
        case .remote(let uri): return uri
        case .discovered(let configuration): return configuration
        }
    }

    /// Whether `remoteURI` is an OpenID configuration (its `jwks_uri` is the key set), not a key set.
    public var discoversKeys: Bool {
        switch keys {
        case .inline, .remote: return false
        case .discovered: return true
        }
    }
}
