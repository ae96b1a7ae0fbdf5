/// The string forms of Istio's policy values (§5 of the reference), one function per matcher istiod
/// emits. These serve the reference evaluator; they favour plain reading over speed.
enum ValueMatching {
    /// istiod's `StringMatcher` / `StringMatcherWithPrefix`: exact, `x*` prefix, `*x` suffix, `*` non-empty.
    /// With a `prefix` (e.g. `spiffe://`), exact and prefix forms are prefixed, and `*x` becomes the
    /// regex `<prefix>.*x`.
    static func istioString(_ pattern: String, _ value: String?, prefix: String = "") -> Bool {
        guard let value else { return false }
        if pattern == "*" { return !value.isEmpty }
        if pattern.hasPrefix("*") {
            let suffix = String(pattern.dropFirst())
            guard value.hasPrefix(prefix) else { return false }
            return value.utf8.count >= prefix.utf8.count + suffix.utf8.count && value.hasSuffix(suffix)
        }
        if pattern.hasSuffix("*") { return value.hasPrefix(prefix + pattern.dropLast()) }
        return value == prefix + pattern
    }

    /// istiod's `HeaderMatcher` (methods, headers): as above, but `*` only asks that the header exists.
    static func header(_ pattern: String, _ value: String?) -> Bool {
        guard let value else { return false }
        if pattern == "*" { return true }
        return istioString(pattern, value)
    }

    /// istiod's `HostMatcher`: the header form, case-insensitive.
    static func host(_ pattern: String, _ value: String?) -> Bool {
        guard let value else { return false }
        if pattern == "*" { return true }
        return istioString(pattern.lowercased(), value.lowercased())
    }

    /// `paths`: templates or the string forms, on the path without `?query` / `#fragment`.
    static func path(_ pattern: String, _ rawPath: String?) -> Bool {
        guard let rawPath else { return false }
        let path = pathWithoutQuery(rawPath)
        if PathTemplate.isTemplate(pattern) { return PathTemplate(pattern).matches(path.utf8) }
        return istioString(pattern, String(path))
    }

    static func pathWithoutQuery(_ path: String) -> Substring {
        path.prefix { $0 != "?" && $0 != "#" }
    }

    /// `namespaces`: the regex `.*/ns/<v>/.*` on the principal, each `*` of the value becoming `.*`.
    static func namespace(_ pattern: String, _ principal: String?) -> Bool {
        guard let principal else { return false }
        return glob("*/ns/" + pattern + "/*", principal)
    }

    /// `serviceAccounts`: `spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?`, a bare name meaning the policy's namespace.
    static func serviceAccount(_ pattern: String, _ principal: String?, policyNamespace: String) -> Bool {
        guard let principal, principal.hasPrefix("spiffe://") else { return false }
        let parts = pattern.split(separator: "/", maxSplits: 1)
        let (ns, sa) = parts.count == 2 ? (String(parts[0]), String(parts[1])) : (policyNamespace, pattern)
        // Path segments after the trust domain: ns/<ns>, then anything, then sa/<sa>, then anything.
        let segments = principal.dropFirst("spiffe://".count).split(separator: "/", omittingEmptySubsequences: false)
        guard segments.count >= 5 else { return false }
        for nsIndex in 1..<segments.count - 1 where segments[nsIndex] == "ns" && segments[nsIndex + 1] == ns {
            // `.+` before `/ns/`: the trust domain (and anything after it) must not be empty.
            guard !segments[..<nsIndex].joined(separator: "/").isEmpty else { continue }
            var saIndex = nsIndex + 2
            while saIndex < segments.count - 1 {
                let before = segments[(nsIndex + 2)..<saIndex]
                // `(.+/|)`: nothing, or one or more non-empty characters then a slash.
                let gapOK = before.isEmpty || !before.joined(separator: "/").isEmpty
                if gapOK && segments[saIndex] == "sa" && segments[saIndex + 1] == sa {
                    let after = segments[(saIndex + 2)...]
                    if after.isEmpty || !after.joined(separator: "/").isEmpty { return true }
                }
                saIndex += 1
            }
        }
        return false
    }

    /// `trustDomains`: exact `td` → `spiffe://td/...`; `*` → any principal; `x*` / `*x` on the trust domain.
    static func trustDomain(_ pattern: String, _ principal: String?) -> Bool {
        guard let principal else { return false }
        if pattern == "*" { return !principal.isEmpty }
        guard principal.hasPrefix("spiffe://") else { return false }
        let rest = principal.dropFirst("spiffe://".count)
        guard let slash = rest.firstIndex(of: "/") else { return false }
        let domain = String(rest[..<slash])
        if pattern.hasPrefix("*") { return domain.hasSuffix(pattern.dropFirst()) }
        if pattern.hasSuffix("*") { return domain.hasPrefix(pattern.dropLast()) }
        return domain == pattern
    }

    /// `requestPrincipals`: the value split at its last `/` into issuer and subject matchers
    /// (istiod's `requestPrincipalGenerator`, reproduced branch for branch).
    static func requestPrincipal(_ pattern: String, issuer: String?, subject: String?) -> Bool {
        guard let issuer, let subject else { return false }
        let slash = pattern.lastIndex(of: "/")
        let iss = slash.map { String(pattern[..<$0]) } ?? pattern
        let sub = slash.map { String(pattern[pattern.index(after: $0)...]) } ?? ""
        let any: (String) -> Bool = { !$0.isEmpty }
        if pattern == "*" { return any(issuer) && any(subject) }
        if pattern.hasPrefix("*") {
            if slash != nil {
                let issuerOK = iss == "*" ? any(issuer) : issuer.hasSuffix(iss.dropFirst())
                return issuerOK && subject == sub
            }
            return any(issuer) && subject.hasSuffix(pattern.dropFirst())
        }
        if pattern.hasSuffix("*") {
            if slash != nil {
                let subjectOK = sub == "*" ? any(subject) : subject.hasPrefix(sub.dropLast())
                return issuer == iss && subjectOK
            }
            return issuer.hasPrefix(pattern.dropLast()) && any(subject)
        }
        return issuer == iss && subject == sub
    }

    /// A JWT claim as Envoy's metadata matcher sees it: a string, or a list whose elements are tried.
    static func claim(_ pattern: String, _ value: JSONValue?) -> Bool {
        switch value {
        case .string(let text): return istioString(pattern, text)
        case .array(let items): return items.contains { if case .string(let text) = $0 { istioString(pattern, text) } else { false } }
        default: return false
        }
    }

    /// Full match of `pattern` where every `*` stands for any run of characters (`.*`).
    static func glob(_ pattern: String, _ value: String) -> Bool {
        let p = Array(pattern.utf8), v = Array(value.utf8)
        var pi = 0, vi = 0, starP = -1, starV = 0
        while vi < v.count {
            if pi < p.count && p[pi] == UInt8(ascii: "*") {
                starP = pi; starV = vi; pi += 1
            } else if pi < p.count && p[pi] == v[vi] {
                pi += 1; vi += 1
            } else if starP >= 0 {
                pi = starP + 1; starV += 1; vi = starV
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }
}
