/// Every value of a field of a policy's rules, with its field path: what the value analyzers read.
struct RuleValue {
    let policy: AuthorizationPolicy
    let path: String
    let field: String
    let value: String
}

extension AuthorizationPolicy {
    /// The values of `from.source` fields named `fields`.
    func sourceValues(_ fields: [String]) -> [RuleValue] {
        rules.enumerated().flatMap { ruleIndex, rule in
            rule.from.enumerated().flatMap { fromIndex, source in
                fields.flatMap { field in
                    source.values(field).enumerated().map { i, value in
                        RuleValue(policy: self, path: "spec.rules[\(ruleIndex)].from[\(fromIndex)].source.\(field)[\(i)]",
                                  field: field, value: value)
                    }
                }
            }
        }
    }

    /// The values of `to.operation` fields named `fields`.
    func operationValues(_ fields: [String]) -> [RuleValue] {
        rules.enumerated().flatMap { ruleIndex, rule in
            rule.to.enumerated().flatMap { toIndex, operation in
                fields.flatMap { field in
                    operation.values(field).enumerated().map { i, value in
                        RuleValue(policy: self, path: "spec.rules[\(ruleIndex)].to[\(toIndex)].operation.\(field)[\(i)]",
                                  field: field, value: value)
                    }
                }
            }
        }
    }
}

extension Source {
    func values(_ field: String) -> [String] {
        switch field {
        case "principals": return principals
        case "notPrincipals": return notPrincipals
        case "namespaces": return namespaces
        case "notNamespaces": return notNamespaces
        case "serviceAccounts": return serviceAccounts
        case "notServiceAccounts": return notServiceAccounts
        default: return []
        }
    }
}

extension Operation {
    func values(_ field: String) -> [String] {
        switch field {
        case "methods": return methods
        case "notMethods": return notMethods
        case "paths": return paths
        case "notPaths": return notPaths
        case "hosts": return hosts
        case "notHosts": return notHosts
        default: return []
        }
    }
}

/// MA0206: istiod prepends `spiffe://` to a principal, so one written with it never matches; and a
/// principal is `TRUST-DOMAIN/ns/NS/sa/SA`: one without the trust domain (`ns/...`) never matches either,
/// one with another trust domain matches only callers from it.
struct PrincipalFormAnalyzer: Analyzer {
    var code: FindingCode { .principalForm }

    func analyze(_ input: AnalysisInput) -> [Finding] {
        let domain = input.options.trustDomain
        return input.set.authorizationPolicies.flatMap { policy in
            policy.sourceValues(["principals", "notPrincipals"]).compactMap { item -> Finding? in
                let effect = item.field == "principals" ? "never matches" : "never excludes anyone"
                if item.value.hasPrefix("spiffe://") {
                    return Finding(code, at: policy.location(of: item.path), resource: policy.resourceName,
                                   "\(item.path) \"\(item.value)\" is written with spiffe://, which istiod adds itself: it \(effect)",
                                   fix: "write \"\(item.value.dropFirst("spiffe://".count))\"")
                }
                if item.value.contains("*") || item.value.hasPrefix(domain + "/") { return nil }
                if item.value.hasPrefix("ns/") {
                    return Finding(code, at: policy.location(of: item.path), resource: policy.resourceName,
                                   "\(item.path) \"\(item.value)\" has no trust domain: it \(effect)",
                                   fix: "write \"\(domain)/\(item.value)\"")
                }
                let other = item.value.split(separator: "/").first.map(String.init) ?? item.value
                return Finding(code, at: policy.location(of: item.path), resource: policy.resourceName,
                               "\(item.path) \"\(item.value)\" names trust domain \(other), not the mesh's \(domain): it matches only callers certified by that domain",
                               fix: "write \"\(domain)/...\" unless callers from \(other) are meant (--trust-domain sets the mesh's)")
            }
        }
    }
}

/// MA0209: a request path always starts with `/`, and Istio's `*` is a prefix or suffix wildcard only:
/// a path without the leading `/`, or with a `*` in the middle (a literal star), never matches.
struct PathNeverMatchesAnalyzer: Analyzer {
    var code: FindingCode { .pathNeverMatches }

    func analyze(_ input: AnalysisInput) -> [Finding] {
        input.set.authorizationPolicies.flatMap { policy in
            policy.operationValues(["paths", "notPaths"]).compactMap { item -> Finding? in
                let value = item.value
                if value == "*" || value.contains("{") { return nil }  // templates: validated by the loader
                let effect = item.field == "paths" ? "never matches" : "never excludes a request"
                if !value.hasPrefix("/") && !value.hasPrefix("*") {
                    return Finding(code, at: policy.location(of: item.path), resource: policy.resourceName,
                                   "\(item.path) \"\(value)\" does not start with /: it \(effect)", fix: "write \"/\(value)\"")
                }
                let inner = value.dropFirst().dropLast()
                if inner.contains("*") {
                    return Finding(code, at: policy.location(of: item.path), resource: policy.resourceName,
                                   "\(item.path) \"\(value)\" has a * in the middle, which Istio compares literally: it \(effect)",
                                   fix: "use a prefix (\"/api/*\"), a suffix (\"*.png\") or a template (\"/api/{*}/users\")")
                }
                return nil
            }
        }
    }
}

/// MA0210: methods compare case-sensitively and Envoy refuses a request whose method is not upper case
/// before authorization, so a lower-case method never matches.
struct LowercaseMethodAnalyzer: Analyzer {
    var code: FindingCode { .lowercaseMethod }

    func analyze(_ input: AnalysisInput) -> [Finding] {
        input.set.authorizationPolicies.flatMap { policy in
            policy.operationValues(["methods", "notMethods"]).compactMap { item -> Finding? in
                guard item.value != item.value.uppercased() else { return nil }
                let effect = item.field == "methods" ? "never matches" : "never excludes a request"
                return Finding(code, at: policy.location(of: item.path), resource: policy.resourceName,
                               "\(item.path) \"\(item.value)\" is not upper case: it \(effect)",
                               fix: "write \"\(item.value.uppercased())\"")
            }
        }
    }
}
