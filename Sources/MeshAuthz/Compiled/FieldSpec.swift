/// One spec per rule field, as istiod's `authz/model` has one generator per attribute: what a check on the
/// field reads from the request, how each of its values compiles into a matcher, whether it can file a rule
/// in a bucket's candidate index, and where a `when` check on it goes in a rule's order of checks. The
/// record builder (`ProgramBuilder`), the candidate index (`Compiler+Index.swift`) and the checker
/// (`RuleChecker.swift`, through `Attribute` and `MatcherKind`) all start here, so they cannot disagree.
///
/// Adding a `when` key: its case in `ConditionKey` (Model) and its parse (Loading), one line in
/// `FieldSpec.of(_:)`, and a row in the fixture tests. Only a key that reads something no `Attribute` reads
/// yet also needs a case there, in `RequestView` and in `CompiledTables.holds`.

/// A field of a rule: `from[].source.*`, `to[].operation.*`, or a `when` condition's key.
enum RuleField: Hashable {
    case principals, namespaces, serviceAccounts, trustDomains, requestPrincipals, ipBlocks, remoteIpBlocks
    case ports, methods, paths, hosts
    case condition(ConditionKey)
}

/// How one value of a field becomes a matcher (`ProgramBuilder.matcher`).
enum MatcherForm: Hashable {
    /// istiod's string forms; `star` is what a lone `*` means in this field, `lowered`: compared ASCII
    /// case-insensitively (hosts).
    case string(star: StringPattern.Kind, lowered: Bool)
    /// A string form over the principal with `spiffe://` prepended (istiod's `StringMatcherWithPrefix`).
    case principal
    case namespace
    case serviceAccount
    case trustDomain
    case requestPrincipal
    case ip
    case port
    /// A string form, or a template (`{*}`, `{**}`) when the value is one.
    case path
    case never
}

/// The request attributes a bucket's candidate index has tries (or a port table) for.
enum IndexDimension: Int, Hashable, Comparable {
    case principal, path, host, method, port
    static func < (a: IndexDimension, b: IndexDimension) -> Bool { a.rawValue < b.rawValue }
}

/// What a check's argument word names.
enum CheckArgument: Hashable {
    case none
    /// `headerNames` index of this (lower-case) name.
    case header(String)
    /// `claimPaths` index of this path.
    case claim([String])
}

struct FieldSpec {
    let attribute: Attribute
    let argument: CheckArgument
    let form: MatcherForm
    /// nil: the field never files a rule in a candidate index.
    let index: IndexDimension?
    /// `when` checks are written cheapest first (the order of an AND does not change its value).
    let cost: Int

    init(_ attribute: Attribute, _ form: MatcherForm, argument: CheckArgument = .none, index: IndexDimension? = nil, cost: Int) {
        self.attribute = attribute
        self.argument = argument
        self.form = form
        self.index = index
        self.cost = cost
    }

    static func of(_ field: RuleField) -> FieldSpec {
        switch field {
        case .principals: return FieldSpec(.principal, .principal, index: .principal, cost: 1)
        case .namespaces: return FieldSpec(.principal, .namespace, cost: 2)
        case .serviceAccounts: return FieldSpec(.principal, .serviceAccount, cost: 2)
        case .trustDomains: return FieldSpec(.principal, .trustDomain, cost: 1)
        case .requestPrincipals: return FieldSpec(.requestPrincipal, .requestPrincipal, cost: 1)
        case .ipBlocks: return FieldSpec(.sourceIP, .ip, cost: 0)
        case .remoteIpBlocks: return FieldSpec(.remoteIP, .ip, cost: 0)
        case .ports: return FieldSpec(.port, .port, index: .port, cost: 0)
        case .methods: return FieldSpec(.method, .string(star: .present, lowered: false), index: .method, cost: 1)
        case .paths: return FieldSpec(.path, .path, index: .path, cost: 1)
        case .hosts: return FieldSpec(.host, .string(star: .present, lowered: true), index: .host, cost: 1)
        case .condition(let key): return of(key)
        }
    }

    private static func of(_ key: ConditionKey) -> FieldSpec {
        let header = MatcherForm.string(star: .present, lowered: false)
        let claim = MatcherForm.string(star: .nonEmpty, lowered: false)
        switch key {
        case .requestHeader(let name):
            // Pseudo-headers read the request line, as `CheckRequest.HTTP.header(named:)` does.
            switch name {
            case ":authority", "host": return FieldSpec(.authorityHeader, header, argument: .header(name), cost: 2)
            case ":method": return FieldSpec(.method, header, cost: 2)
            case ":path": return FieldSpec(.rawPath, header, cost: 2)
            default: return FieldSpec(.header, header, argument: .header(name), cost: 2)
            }
        case .sourceIP: return FieldSpec(.sourceIP, .ip, cost: 0)
        case .remoteIP: return FieldSpec(.remoteIP, .ip, cost: 0)
        case .destinationIP: return FieldSpec(.destinationIP, .ip, cost: 0)
        case .destinationPort: return FieldSpec(.port, .port, cost: 0)
        case .sourcePrincipal: return FieldSpec(.principal, .principal, index: .principal, cost: 1)
        case .connectionSNI: return FieldSpec(.sni, claim, cost: 1)
        case .sourceTrustDomain: return FieldSpec(.principal, .trustDomain, cost: 1)
        case .requestAuthPrincipal: return FieldSpec(.requestPrincipal, .requestPrincipal, cost: 1)
        case .sourceNamespace: return FieldSpec(.principal, .namespace, cost: 2)
        case .sourceServiceAccount: return FieldSpec(.principal, .serviceAccount, cost: 2)
        case .requestAuthAudiences: return FieldSpec(.claim, claim, argument: .claim(["aud"]), cost: 3)
        case .requestAuthPresenter: return FieldSpec(.claim, claim, argument: .claim(["azp"]), cost: 3)
        case .requestAuthClaims(let path): return FieldSpec(.claim, claim, argument: .claim(path), cost: 3)
        case .experimentalEnvoyFilter: return FieldSpec(.absent, .never, cost: 3)
        }
    }
}

/// A field of a clause with its values, in the order its checks are written.
typealias FieldValues = (field: RuleField, values: [String], negated: [String])

extension Source {
    var fieldValues: [FieldValues] {
        [(.principals, principals, notPrincipals), (.namespaces, namespaces, notNamespaces),
         (.serviceAccounts, serviceAccounts, notServiceAccounts), (.trustDomains, trustDomains, notTrustDomains),
         (.requestPrincipals, requestPrincipals, notRequestPrincipals),
         (.ipBlocks, ipBlocks.map(\.text), notIpBlocks.map(\.text)),
         (.remoteIpBlocks, remoteIpBlocks.map(\.text), notRemoteIpBlocks.map(\.text))]
    }
}

extension Operation {
    /// Ports and methods first: the cheapest to reject on.
    var fieldValues: [FieldValues] {
        [(.ports, ports.map(String.init), notPorts.map(String.init)), (.methods, methods, notMethods),
         (.paths, paths, notPaths), (.hosts, hosts, notHosts)]
    }
}

extension Condition {
    var fieldValues: FieldValues { (.condition(key), values, notValues) }
}
