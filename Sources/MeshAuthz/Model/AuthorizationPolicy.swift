/// `security.istio.io` AuthorizationPolicy, as validated: every value is known to be well-formed.
public struct AuthorizationPolicy: Sendable, Hashable {
    public var id: ResourceID
    /// nil when the spec has no selector; an empty dictionary selects every workload too.
    public var selector: [String: String]?
    /// `targetRefs`, or `[targetRef]` when only the hidden singular field is set.
    public var targetRefs: [TargetRef]
    public var action: Action
    /// `provider.name`, CUSTOM only.
    public var provider: String?
    /// Empty (absent or `[]`) means the policy never matches: an ALLOW policy then denies everything.
    public var rules: [Rule]
    /// `istio.io/dry-run` parsed as Go's strconv.ParseBool would; unparsable means enforced.
    public var dryRun: Bool
    public var location: SourceLocation
    /// Where each rule (`spec.rules[i]`), condition (`...when[j]`) and value (`...source.principals[k]`) was
    /// written, by field path: what `lint` points at (istioctl's field map). Recorded for analysis only
    /// (`AnalysisInput.read`); empty otherwise, where `location(of:)` gives the policy's location.
    public var fieldLocations: [String: SourceLocation] = [:]

    public init(id: ResourceID, selector: [String: String]? = nil, targetRefs: [TargetRef] = [],
                action: Action = .allow, provider: String? = nil, rules: [Rule] = [], dryRun: Bool = false,
                location: SourceLocation = SourceLocation(file: "<memory>", line: 1, column: 1)) {
        self.id = id
        self.selector = selector
        self.targetRefs = targetRefs
        self.action = action
        self.provider = provider
        self.rules = rules
        self.dryRun = dryRun
        self.location = location
    }

    public func ruleID(_ index: Int) -> RuleID { RuleID(policy: id, index: index) }

    /// Where the field at `path` was written: that field, else the nearest enclosing one recorded (its rule,
    /// say), else the policy.
    public func location(of path: String) -> SourceLocation {
        var path = Substring(path)
        while true {
            if let known = fieldLocations[String(path)] { return known }
            guard let cut = path.lastIndex(where: { $0 == "." || $0 == "[" }) else { return location }
            path = path[..<cut]
        }
    }
}

public enum Action: String, Sendable, Hashable, CaseIterable {
    case allow = "ALLOW"
    case deny = "DENY"
    case audit = "AUDIT"
    case custom = "CUSTOM"
}

public struct TargetRef: Sendable, Hashable {
    public var group: String
    public var kind: String
    public var name: String

    public init(group: String, kind: String, name: String) {
        self.group = group
        self.kind = kind
        self.name = name
    }
}

/// One rule: `from` AND `to` AND `when`. Empty `from`/`to` mean the field was absent (any).
public struct Rule: Sendable, Hashable {
    /// Alternatives: at least one must match (when non-empty).
    public var from: [Source]
    /// Alternatives: at least one must match (when non-empty).
    public var to: [Operation]
    /// All must hold.
    public var when: [Condition]

    public init(from: [Source] = [], to: [Operation] = [], when: [Condition] = []) {
        self.from = from
        self.to = to
        self.when = when
    }
}

/// `rules[].from[].source`: every non-empty field must hold.
public struct Source: Sendable, Hashable {
    public var principals: [String] = []
    public var notPrincipals: [String] = []
    public var requestPrincipals: [String] = []
    public var notRequestPrincipals: [String] = []
    public var namespaces: [String] = []
    public var notNamespaces: [String] = []
    public var serviceAccounts: [String] = []
    public var notServiceAccounts: [String] = []
    public var trustDomains: [String] = []
    public var notTrustDomains: [String] = []
    public var ipBlocks: [CIDR] = []
    public var notIpBlocks: [CIDR] = []
    public var remoteIpBlocks: [CIDR] = []
    public var notRemoteIpBlocks: [CIDR] = []

    public init() {}
}

/// `rules[].to[].operation`: every non-empty field must hold.
public struct Operation: Sendable, Hashable {
    public var hosts: [String] = []
    public var notHosts: [String] = []
    public var ports: [Int] = []
    public var notPorts: [Int] = []
    public var methods: [String] = []
    public var notMethods: [String] = []
    public var paths: [String] = []
    public var notPaths: [String] = []

    public init() {}
}

/// `rules[].when[]`: the attribute must match one of `values` (if any) and none of `notValues`.
public struct Condition: Sendable, Hashable {
    public var key: ConditionKey
    public var values: [String]
    public var notValues: [String]

    public init(key: ConditionKey, values: [String] = [], notValues: [String] = []) {
        self.key = key
        self.values = values
        self.notValues = notValues
    }
}

/// The condition keys Istio accepts (`ValidateAttribute`), parsed.
public enum ConditionKey: Sendable, Hashable, CustomStringConvertible {
    /// Header name lower-cased (header names compare case-insensitively).
    case requestHeader(String)
    case sourceIP
    case remoteIP
    case sourceNamespace
    case sourcePrincipal
    case sourceServiceAccount
    case sourceTrustDomain
    case requestAuthPrincipal
    case requestAuthAudiences
    case requestAuthPresenter
    /// Nested claim path: `claims[a][b]` is `["a", "b"]`.
    case requestAuthClaims([String])
    case destinationIP
    case destinationPort
    case connectionSNI
    /// `experimental.envoy.filters.<filter>[<key>]...`: needs Envoy metadata no request carries.
    case experimentalEnvoyFilter(String)

    public var description: String {
        switch self {
        case .requestHeader(let name): return "request.headers[\(name)]"
        case .sourceIP: return "source.ip"
        case .remoteIP: return "remote.ip"
        case .sourceNamespace: return "source.namespace"
        case .sourcePrincipal: return "source.principal"
        case .sourceServiceAccount: return "source.serviceAccount"
        case .sourceTrustDomain: return "source.trustDomain"
        case .requestAuthPrincipal: return "request.auth.principal"
        case .requestAuthAudiences: return "request.auth.audiences"
        case .requestAuthPresenter: return "request.auth.presenter"
        case .requestAuthClaims(let path): return "request.auth.claims" + path.map { "[\($0)]" }.joined()
        case .destinationIP: return "destination.ip"
        case .destinationPort: return "destination.port"
        case .connectionSNI: return "connection.sni"
        case .experimentalEnvoyFilter(let raw): return raw
        }
    }
}

/// The label a Gateway API gateway's pods carry with the gateway's name: what `targetRefs` select by.
let gatewayNameLabel = "gateway.networking.k8s.io/gateway-name"
