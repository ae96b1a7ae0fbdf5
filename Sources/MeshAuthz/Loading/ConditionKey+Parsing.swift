/// Parsing and value validation of `when[].key`, after istiod's `ValidateAttribute`.
extension ConditionKey {
    public struct ParseProblem: Error, Sendable, Hashable {
        public let message: String
    }

    public static func parse(_ text: String) -> Result<ConditionKey, ParseProblem> {
        switch text {
        case "source.ip": return .success(.sourceIP)
        case "remote.ip": return .success(.remoteIP)
        case "source.namespace": return .success(.sourceNamespace)
        case "source.principal": return .success(.sourcePrincipal)
        case "source.serviceAccount": return .success(.sourceServiceAccount)
        case "source.trustDomain": return .success(.sourceTrustDomain)
        case "request.auth.principal": return .success(.requestAuthPrincipal)
        case "request.auth.audiences": return .success(.requestAuthAudiences)
        case "request.auth.presenter": return .success(.requestAuthPresenter)
        case "destination.ip": return .success(.destinationIP)
        case "destination.port": return .success(.destinationPort)
        case "connection.sni": return .success(.connectionSNI)
        default: break
        }
        if text.hasPrefix("request.headers") {
            let names = bracketedNames(text.dropFirst("request.headers".count))
            guard let names, names.count == 1 else {
                return .failure(ParseProblem(message: "\"\(text)\": expected request.headers[<name>]"))
            }
            return .success(.requestHeader(names[0].lowercased()))
        }
        if text.hasPrefix("request.auth.claims") {
            guard let names = bracketedNames(text.dropFirst("request.auth.claims".count)), !names.isEmpty else {
                return .failure(ParseProblem(message: "\"\(text)\": expected request.auth.claims[<claim>] (nested: [a][b])"))
            }
            return .success(.requestAuthClaims(names))
        }
        if text.hasPrefix("experimental.envoy.filters.") && text.hasSuffix("]") && text.contains("[") {
            return .success(.experimentalEnvoyFilter(text))
        }
        if ["destination.labels", "destination.namespace", "destination.name", "destination.user"].contains(where: { text.hasPrefix($0) }) {
            return .failure(ParseProblem(message: "\"\(text)\" is no longer supported by Istio; use the policy's selector and namespace instead"))
        }
        return .failure(ParseProblem(message: "unknown condition key \"\(text)\""))
    }

    /// `[a][b]` → `["a", "b"]`; a name may contain anything but brackets. nil when malformed.
    static func bracketedNames(_ text: Substring) -> [String]? {
        var names: [String] = []
        var rest = text
        while !rest.isEmpty {
            guard rest.first == "[", let close = rest.firstIndex(of: "]") else { return nil }
            let name = rest[rest.index(after: rest.startIndex)..<close]
            guard !name.isEmpty, !name.contains("[") else { return nil }
            names.append(String(name))
            rest = rest[rest.index(after: close)...]
        }
        return names
    }

    /// Keys that read the caller's identity: CUSTOM policies may not use them.
    var readsIdentity: Bool {
        switch self {
        case .sourceNamespace, .sourcePrincipal, .sourceServiceAccount, .sourceTrustDomain,
             .requestAuthPrincipal, .requestAuthAudiences, .requestAuthPresenter, .requestAuthClaims:
            return true
        default:
            return false
        }
    }

    /// Why `value` is not valid for this key, or nil.
    func validationError(_ value: String) -> String? {
        switch self {
        case .sourceIP, .remoteIP, .destinationIP:
            return CIDR(value) == nil ? "\"\(value)\" is not an IP address or CIDR block" : nil
        case .destinationPort:
            guard let port = Int(value), (0...65535).contains(port) else { return "\"\(value)\" is not a port number (0-65535)" }
            return nil
        case .sourceServiceAccount:
            let parts = value.split(separator: "/", omittingEmptySubsequences: false)
            return value.contains("*") || parts.count > 2 || parts.contains(where: \.isEmpty)
                ? "expected \"name\" or \"namespace/name\" without wildcards, got \"\(value)\"" : nil
        case .sourceTrustDomain:
            let stars = value.filter { $0 == "*" }.count
            let inMiddle = stars == 1 && value != "*" && !value.hasPrefix("*") && !value.hasSuffix("*")
            return stars > 1 || inMiddle ? "a trust domain may have one \"*\", only at its start or end" : nil
        default:
            return nil
        }
    }
}
