extension RequestAuthentication {
    var resourceName: String { "RequestAuthentication \(id)" }
}

/// MA0401: a `jwtRules` entry with neither `jwks` nor `jwksUri` gets its keys by OpenID discovery from its
/// issuer (istiod's resolver, and meshauthz's): an issuer that is not an `https://` URL (or `http://` to
/// loopback, as for `jwksUri`) leads to no key set, so every token of that issuer is rejected (401).
struct UndiscoverableKeysAnalyzer: Analyzer {
    var code: FindingCode { .undiscoverableKeys }

    func analyze(_ input: AnalysisInput) -> [Finding] {
        input.set.requestAuthentications.flatMap { ra in
            ra.jwtRules.enumerated().compactMap { index, rule -> Finding? in
                guard rule.discoversKeys, !Self.isFetchable(rule.issuer) else { return nil }
                return Finding(code, at: rule.location, resource: ra.resourceName,
                               "spec.jwtRules[\(index)] has neither jwks nor jwksUri, and its issuer \"\(rule.issuer)\" is not an https URL to discover keys from: every token of this issuer is rejected (401)",
                               fix: "give the issuer's keys (jwks) or where to fetch them (jwksUri)")
            }
        }
    }

    static func isFetchable(_ issuer: String) -> Bool {
        let lower = issuer.lowercased()
        if lower.hasPrefix("https://") { return lower.count > "https://".count }
        return ["http://127.", "http://localhost", "http://[::1]"].contains { lower.hasPrefix($0) }
    }
}
