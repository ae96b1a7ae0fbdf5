/// Confirming a candidate rule: reading its record (RuleRecord.swift, written by `ProgramBuilder` from each
/// field's `FieldSpec`) against the request. Every switch is exhaustive: a check reads the attribute its
/// spec names, a matcher kind that cannot serve an attribute stops the process (`corrupt`), and only
/// `MatcherKind.never` means "no match".
extension CompiledTables {
    /// `to` (cheapest: port, method, path, host), then `from`, then `when` (may read headers and claims).
    @inline(__always)
    func matches(_ rule: RuleRecord, _ view: RequestView) -> Bool {
        if rule.toClauseCount > 0 && !anyClause(rule.firstToClause, rule.toClauseCount, view) { return false }
        if rule.fromClauseCount > 0 && !anyClause(rule.firstFromClause, rule.fromClauseCount, view) { return false }
        var check = rule.firstWhenCheck
        for _ in 0..<rule.whenCheckCount {
            if !holds(check, view) { return false }
            check = check.next
        }
        return true
    }

    /// Any of `count` clauses from `first`: all of a clause's checks hold.
    @inline(__always)
    private func anyClause(_ first: ClauseRecord, _ count: Int, _ view: RequestView) -> Bool {
        var clause = first
        clauses: for _ in 0..<count {
            var check = clause.firstCheck
            let checkCount = clause.checkCount
            clause = clause.next
            for _ in 0..<checkCount {
                if !holds(check, view) { continue clauses }
                check = check.next
            }
            return true
        }
        return false
    }

    /// One field: a positive matcher must match (when there are any) and no negative one may.
    private func holds(_ check: CheckRecord, _ view: RequestView) -> Bool {
        switch check.attribute {
        case .principal: return anyPositiveNoNegative(check) { matchesString($0, view.principal) }
        case .path: return anyPositiveNoNegative(check) { matchesString($0, view.path) }
        case .method: return anyPositiveNoNegative(check) { matchesString($0, view.method) }
        case .host: return anyPositiveNoNegative(check) { matchesString($0, view.host) }
        case .sni: return anyPositiveNoNegative(check) { matchesString($0, view.sni) }
        case .rawPath: return anyPositiveNoNegative(check) { matchesString($0, view.rawPath) }
        case .port: return anyPositiveNoNegative(check) { matchesPort($0, view.port) }
        case .sourceIP: return anyPositiveNoNegative(check) { matchesIP($0, view.sourceIP) }
        case .remoteIP: return anyPositiveNoNegative(check) { matchesIP($0, view.remoteIP) }
        case .destinationIP: return anyPositiveNoNegative(check) { matchesIP($0, view.destinationIP) }
        case .requestPrincipal: return anyPositiveNoNegative(check) { matchesRequestPrincipal($0, view) }
        case .authorityHeader:
            if view.host != nil { return anyPositiveNoNegative(check) { matchesString($0, view.host) } }
            return view.headers.withValue(headerNames[check.argument]) { value in anyPositiveNoNegative(check) { matchesString($0, value) } }
        case .header:
            return view.headers.withValue(headerNames[check.argument]) { value in anyPositiveNoNegative(check) { matchesString($0, value) } }
        case .claim:
            return holdsClaim(check, claimPaths[check.argument], view)
        case .absent:
            return anyPositiveNoNegative(check) { matchesNothing($0) }
        }
    }

    /// The positive matchers (any), then the negative ones (none).
    @inline(__always)
    private func anyPositiveNoNegative(_ check: CheckRecord, _ match: (MatcherRecord) -> Bool) -> Bool {
        let positives = check.positiveCount, negatives = check.negativeCount
        var matcher = check.firstMatcher
        if positives > 0 {
            var found = false
            for _ in 0..<positives {
                if match(matcher) { found = true; break }
                matcher = matcher.next
            }
            if !found { return false }
            if negatives == 0 { return true }
            // Skip to the negative matchers.
            matcher = check.firstMatcher
            for _ in 0..<positives { matcher = matcher.next }
        }
        for _ in 0..<negatives {
            if match(matcher) { return false }
            matcher = matcher.next
        }
        return true
    }

    // MARK: Matchers, one per kind of value

    /// A string-like matcher against a value (absent: no match).
    @inline(__always)
    private func matchesString(_ m: MatcherRecord, _ value: Bytes?) -> Bool {
        guard let value else { return false }
        switch m.kind {
        case .string:
            return StringPattern.matches(m.form, lowered: m.isLowered, m.bytes(3, Int(m[2])), value)
        case .template:
            return ByteMatching.template(m.words.advanced(by: 3), Int(m[2]), value, 0)
        case .namespaceGlob:
            return ByteMatching.glob(m.bytes(3, Int(m[2])), value)
        case .trustDomain:
            guard let domain = ByteMatching.trustDomain(value) else { return false }
            return StringPattern.matches(m.form, lowered: false, m.bytes(3, Int(m[2])), domain)
        case .serviceAccount:
            let nsCount = Int(m[2]), saCount = Int(m[3])
            return ByteMatching.serviceAccount(namespace: m.bytes(4, nsCount), name: m.bytes(4 + (nsCount + 3) / 4, saCount), value)
        case .never:
            return false
        case .requestPrincipal, .ip, .port:
            corrupt("matcher kind in a string check", m.kind.rawValue)
        }
    }

    @inline(__always)
    private func matchesIP(_ m: MatcherRecord, _ ip: IPAddress?) -> Bool {
        switch m.kind {
        case .ip:
            guard let ip else { return false }
            let isV4 = m.extra != 0
            let maskHigh = m.int64(2), maskLow = m.int64(4)
            return ip.isV4 == isV4 && (ip.high & maskHigh) == m.int64(6) && (ip.low & maskLow) == m.int64(8)
        case .never:
            return false
        case .string, .template, .namespaceGlob, .trustDomain, .serviceAccount, .requestPrincipal, .port:
            corrupt("matcher kind in an IP check", m.kind.rawValue)
        }
    }

    @inline(__always)
    private func matchesPort(_ m: MatcherRecord, _ port: Int?) -> Bool {
        switch m.kind {
        case .port:
            let value: Int? = m.extra != 0 ? Int(Int64(bitPattern: m.int64(2))) : nil
            return value == port
        case .never:
            return false
        case .string, .template, .namespaceGlob, .trustDomain, .serviceAccount, .requestPrincipal, .ip:
            corrupt("matcher kind in a port check", m.kind.rawValue)
        }
    }

    /// istiod's `requestPrincipalGenerator`: issuer and subject, each in its own string form.
    @inline(__always)
    private func matchesRequestPrincipal(_ m: MatcherRecord, _ view: RequestView) -> Bool {
        switch m.kind {
        case .requestPrincipal:
            guard let issuer = view.issuer, let subject = view.subject else { return false }
            let issuerCount = Int(m[2]), subjectCount = Int(m[3])
            let subjectStart = 4 + (issuerCount + 3) / 4
            return StringPattern.matches(m.form, lowered: false, m.bytes(4, issuerCount), issuer)
                && StringPattern.matches(m.extraForm, lowered: false, m.bytes(subjectStart, subjectCount), subject)
        case .never:
            return false
        case .string, .template, .namespaceGlob, .trustDomain, .serviceAccount, .ip, .port:
            corrupt("matcher kind in a request principal check", m.kind.rawValue)
        }
    }

    private func matchesNothing(_ m: MatcherRecord) -> Bool {
        switch m.kind {
        case .never: return false
        case .string, .template, .namespaceGlob, .trustDomain, .serviceAccount, .requestPrincipal, .ip, .port:
            corrupt("matcher kind in a check of an absent attribute", m.kind.rawValue)
        }
    }

    /// `request.auth.claims[...]` (and audiences, presenter): the claim as Envoy's jwt_authn publishes it.
    private func holdsClaim(_ check: CheckRecord, _ path: [String], _ view: RequestView) -> Bool {
        if let claims = view.claimSource.claims {
            guard var value = claims[path[0]] else { return anyPositiveNoNegative(check) { matchesString($0, nil as Bytes?) } }
            for key in path.dropFirst() {
                guard let next = value[key] else { return anyPositiveNoNegative(check) { matchesString($0, nil as Bytes?) } }
                value = next
            }
            switch value {
            case .string(let text):
                // Envoy's jwt_authn splits the string claims `scope` and `permission` on spaces.
                let split = path.count == 1 && (path[0] == "scope" || path[0] == "permission")
                return text.withBytes { bytes in
                    anyPositiveNoNegative(check) { matcher in
                        split ? ByteMatching.words(bytes) { matchesString(matcher, $0) } : matchesString(matcher, bytes)
                    }
                }
            case .array(let items):
                return anyPositiveNoNegative(check) { matcher in
                    items.contains { item in
                        if case .string(let text) = item { return text.withBytes { matchesString(matcher, $0) } }
                        return false
                    }
                }
            case .null, .bool, .number, .object:
                // Envoy matches string claims and lists of strings only.
                return anyPositiveNoNegative(check) { matchesString($0, nil as Bytes?) }
            }
        }
        // No claims but a request principal: Envoy's payload then holds only `iss` and `sub`.
        guard view.hasRequestPrincipal, path.count == 1 else { return anyPositiveNoNegative(check) { matchesString($0, nil as Bytes?) } }
        let value: Bytes? = path[0] == "iss" ? view.issuer : path[0] == "sub" ? view.subject : nil
        return anyPositiveNoNegative(check) { matchesString($0, value) }
    }
}
