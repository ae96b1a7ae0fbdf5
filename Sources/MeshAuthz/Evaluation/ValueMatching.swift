/// The string forms of Istio's policy values (§5 of the reference), one function per matcher istiod
/// emits. These serve the reference evaluator; they favour plain reading over speed.
enum ValueMatching {
    /// istiod's `StringMatcher` / `StringMatcherWithPrefix`: exact, `x*` prefix, `*x` suffix, `*` non-empty.
    /// With a `prefix` (e.g. `spiffe://`), exact and prefix forms are prefixed, and `*x` becomes the
    /// regex `<prefix>.*x`.
    static func istioString(_ pattern: String, _ value: String?, prefix: String = "") -> Bool {
        guard let value else { return false }
        if pattern == "*" { return !value.isEmpty }
        if pattern.bytesHavePrefix("*") {
            let suffix = pattern.dropFirst()
            guard value.bytesHavePrefix(prefix) else { return false }
            return value.utf8.count >= prefix.utf8.count + suffix.utf8.count && value.bytesHaveSuffix(suffix)
        }
        if pattern.bytesHaveSuffix("*") { return value.bytesHavePrefix(prefix + pattern.dropLast()) }
        return value.bytesEqual(prefix + pattern)
    }

    /// istiod's `HeaderMatcher` (methods, headers): as above, but `*` only asks that the header exists.
    static func header(_ pattern: String, _ value: String?) -> Bool {
        guard let value else { return false }
        if pattern == "*" { return true }
        return istioString(pattern, value)
    }

    /// istiod's `HostMatcher`: the header form with Envoy's `ignore_case`, which folds ASCII only.
    static func host(_ pattern: String, _ value: String?) -> Bool {
        guard let value else { return false }
        if pattern == "*" { return true }
        return istioString(pattern.asciiLowercased, value.asciiLowercased)
    }

    /// `paths`: templates or the string forms, on the path without `?query` / `#fragment`.
    static func path(_ pattern: String, _ rawPath: String?) -> Bool {
        guard let rawPath else { return false }
        let path = pathWithoutQuery(rawPath)
        if PathTemplate.isTemplate(pattern) { return PathTemplate(pattern).matches(path.utf8) }
        return istioString(pattern, path)
    }

    /// Cut at the first `?` or `#` byte (a `?` followed by a combining mark is still a `?` to Envoy).
    static func pathWithoutQuery(_ path: String) -> String {
        String(decoding: path.utf8.prefix { $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: "#") }, as: UTF8.self)
    }

    /// `namespaces`: the regex `.*/ns/<v>/.*` on the principal, each `*` of the value becoming `.*`.
    static func namespace(_ pattern: String, _ principal: String?) -> Bool {
        guard let principal else { return false }
        return glob("*/ns/" + pattern + "/*", principal)
    }

    /// `serviceAccounts`: `spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?`, a bare name meaning the policy's namespace.
    static func serviceAccount(_ pattern: String, _ principal: String?, policyNamespace: String) -> Bool {
        guard let principal, principal.bytesHavePrefix("spiffe://") else { return false }
        let parts = pattern.bytesSplit(UInt8(ascii: "/"))
        let (ns, sa) = parts.count >= 2
            ? (parts[0], parts.dropFirst().joined(separator: "/")) : (policyNamespace, pattern)
        // Path segments after the trust domain: ns/<ns>, then anything, then sa/<sa>, then anything.
        let segments = principal.dropFirst("spiffe://".count).bytesSplit(UInt8(ascii: "/"))
        guard segments.count >= 5 else { return false }
        for nsIndex in 1..<segments.count - 1 where segments[nsIndex] == "ns" && segments[nsIndex + 1].bytesEqual(ns) {
            // `.+` before `/ns/`: the trust domain (and anything after it) must not be empty.
            guard !segments[..<nsIndex].joined(separator: "/").isEmpty else { continue }
            var saIndex = nsIndex + 2
            while saIndex < segments.count - 1 {
                let before = segments[(nsIndex + 2)..<saIndex]
                // `(.+/|)`: nothing, or one or more non-empty characters then a slash.
                let gapOK = before.isEmpty || !before.joined(separator: "/").isEmpty
                if gapOK && segments[saIndex] == "sa" && segments[saIndex + 1].bytesEqual(sa) {
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
        guard principal.bytesHavePrefix("spiffe://") else { return false }
        let rest = principal.dropFirst("spiffe://".count)
        guard rest.utf8.contains(UInt8(ascii: "/")) else { return false }
        let domain = rest.bytesBefore(UInt8(ascii: "/"))
        if pattern.bytesHavePrefix("*") { return domain.bytesHaveSuffix(pattern.dropFirst()) }
        if pattern.bytesHaveSuffix("*") { return domain.bytesHavePrefix(pattern.dropLast()) }
        return domain.bytesEqual(pattern)
    }

    /// `requestPrincipals`: the value split at its last `/` into issuer and subject matchers
    /// (istiod's `requestPrincipalGenerator`, reproduced branch for branch).
    static func requestPrincipal(_ pattern: String, issuer: String?, subject: String?) -> Bool {
        guard let issuer, let subject else { return false }
        let split = pattern.bytesSplitAtLast(UInt8(ascii: "/"))
        let iss = split?.before ?? pattern
        let sub = split?.after ?? ""
        let any: (String) -> Bool = { !$0.isEmpty }
        if pattern == "*" { return any(issuer) && any(subject) }
        if pattern.bytesHavePrefix("*") {
            if split != nil {
                let issuerOK = iss == "*" ? any(issuer) : issuer.bytesHaveSuffix(iss.dropFirst())
                return issuerOK && subject.bytesEqual(sub)
            }
            return any(issuer) && subject.bytesHaveSuffix(pattern.dropFirst())
        }
        if pattern.bytesHaveSuffix("*") {
            if split != nil {
                let subjectOK = sub == "*" ? any(subject) : subject.bytesHavePrefix(sub.dropLast())
                return issuer.bytesEqual(iss) && subjectOK
            }
            return issuer.bytesHavePrefix(pattern.dropLast()) && any(subject)
        }
        return issuer.bytesEqual(iss) && subject.bytesEqual(sub)
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
