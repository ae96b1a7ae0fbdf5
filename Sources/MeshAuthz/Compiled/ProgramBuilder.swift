/// Writes rule records (layout: RuleRecord.swift), each field through its `FieldSpec`.
struct ProgramBuilder {
    var words: [UInt32] = []
    var headerNames: [String] = []
    var claimPaths: [[String]] = []
    private var headerIndex: [String: UInt32] = [:]
    private var claimIndex: [[String]: UInt32] = [:]

    /// Appends the record of `rule`; returns its offset.
    mutating func emit(_ rule: Rule, policyNamespace: String, category: RuleCategory, rank: UInt32, ruleIndex: UInt32) -> UInt32 {
        typealias Word = RuleRecord.Word
        let start = words.count
        words += Array(repeating: 0, count: Word.headerCount)
        words[start + Word.category] = category.rawValue
        words[start + Word.rank] = rank
        words[start + Word.ruleIndex] = ruleIndex
        words[start + Word.toClauses] = UInt32(rule.to.count)
        words[start + Word.fromClauses] = UInt32(rule.from.count)
        words[start + Word.whenChecks] = UInt32(rule.when.count)
        for operation in rule.to { clause(operation.fieldValues, policyNamespace: policyNamespace) }
        words[start + Word.fromOffset] = UInt32(words.count - start)
        for source in rule.from { clause(source.fieldValues, policyNamespace: policyNamespace) }
        words[start + Word.whenOffset] = UInt32(words.count - start)
        // Cheap checks first: the order of an AND does not change its value.
        for condition in rule.when.sorted(by: { FieldSpec.of(.condition($0.key)).cost < FieldSpec.of(.condition($1.key)).cost }) {
            check(condition.fieldValues, policyNamespace: policyNamespace)
        }
        words[start + Word.length] = UInt32(words.count - start)
        return UInt32(start)
    }

    /// `[check count, length]`, then a check per field that has values.
    private mutating func clause(_ fields: [FieldValues], policyNamespace: String) {
        let start = words.count
        words += [0, 0]
        var checks: UInt32 = 0
        for field in fields where check(field, policyNamespace: policyNamespace) { checks += 1 }
        words[start] = checks
        words[start + 1] = UInt32(words.count - start)
    }

    /// `[attribute, argument, positive count, negative count, length]`, then a matcher per value; false (and
    /// nothing written) for a field without values.
    @discardableResult
    private mutating func check(_ field: FieldValues, policyNamespace: String) -> Bool {
        guard !field.values.isEmpty || !field.negated.isEmpty else { return false }
        let spec = FieldSpec.of(field.field)
        let argument: UInt32
        switch spec.argument {
        case .none: argument = 0
        case .header(let name): argument = headerID(name)
        case .claim(let path): argument = claimID(path)
        }
        let start = words.count
        words += [spec.attribute.rawValue, argument, UInt32(field.values.count), UInt32(field.negated.count), 0]
        for value in field.values + field.negated { matcher(spec.form, value, policyNamespace: policyNamespace) }
        words[start + 4] = UInt32(words.count - start)
        return true
    }

    private mutating func matcher(_ form: MatcherForm, _ value: String, policyNamespace: String) {
        switch form {
        case .string(let star, let lowered): string(value, star: star, lowered: lowered)
        case .principal: string(value, star: .nonEmpty, scheme: spiffeScheme)
        case .namespace: namespace(value)
        case .serviceAccount: serviceAccount(value, policyNamespace)
        case .trustDomain: trustDomain(value)
        case .requestPrincipal: requestPrincipal(value)
        case .ip: ip(value)
        case .port: port(Int(value))
        case .path: path(value)
        case .never: matcher(.never)
        }
    }

    private mutating func headerID(_ name: String) -> UInt32 {
        if let id = headerIndex[name] { return id }
        headerNames.append(name)
        headerIndex[name] = UInt32(headerNames.count - 1)
        return UInt32(headerNames.count - 1)
    }

    private mutating func claimID(_ path: [String]) -> UInt32 {
        if let id = claimIndex[path] { return id }
        claimPaths.append(path)
        claimIndex[path] = UInt32(claimPaths.count - 1)
        return UInt32(claimPaths.count - 1)
    }

    // MARK: Matchers

    private mutating func append(bytes: [UInt8]) {
        var word: UInt32 = 0
        for (i, byte) in bytes.enumerated() {
            word |= UInt32(byte) << (UInt32(i % 4) * 8)
            if i % 4 == 3 { words.append(word); word = 0 }
        }
        if bytes.count % 4 != 0 { words.append(word) }
    }

    /// `[header, length, extra words..., bytes...]`
    private mutating func matcher(_ kind: MatcherKind, form: UInt32 = 0, lowered: Bool = false, extra: UInt32 = 0,
                                  _ counts: [UInt32] = [], _ byteRuns: [[UInt8]] = []) {
        let start = words.count
        words += [kind.rawValue | form << 8 | (lowered ? 1 : 0) << 16 | extra << 24, 0]
        words += counts
        for run in byteRuns { append(bytes: run) }
        words[start + 1] = UInt32(words.count - start)
    }

    /// istiod's string forms: `*` alone, a leading `*` (suffix), a trailing `*` (prefix), or exact. `star` is
    /// what a lone `*` means in this field; `scheme` is prepended to exact and prefix forms (principals:
    /// `spiffe://`) and turns the suffix form into `schemeSuffix`.
    static func pattern(_ value: String, star: StringPattern.Kind, scheme: [UInt8] = [], lowered: Bool = false)
        -> (StringPattern.Kind, [UInt8]) {
        var bytes = Array(value.utf8)
        if lowered { bytes = bytes.map(asciiLower) }
        if bytes == [UInt8(ascii: "*")] { return (star, []) }
        if bytes.first == UInt8(ascii: "*") { return (scheme.isEmpty ? .suffix : .schemeSuffix, Array(bytes.dropFirst())) }
        if bytes.last == UInt8(ascii: "*") { return (.prefix, scheme + bytes.dropLast()) }
        return (.exact, scheme + bytes)
    }

    private mutating func string(_ value: String, star: StringPattern.Kind, scheme: [UInt8] = [], lowered: Bool = false) {
        let (form, bytes) = Self.pattern(value, star: star, scheme: scheme, lowered: lowered)
        matcher(.string, form: UInt32(form.rawValue), lowered: lowered && form != star, [UInt32(bytes.count)], [bytes])
    }

    private mutating func namespace(_ value: String) {
        let glob = Array("*/ns/".utf8) + Array(value.utf8) + Array("/*".utf8)
        matcher(.namespaceGlob, [UInt32(glob.count)], [glob])
    }

    private mutating func serviceAccount(_ value: String, _ policyNamespace: String) {
        let parts = value.split(separator: "/", maxSplits: 1)
        let (ns, sa) = parts.count == 2 ? (String(parts[0]), String(parts[1])) : (policyNamespace, value)
        let nsBytes = Array(ns.utf8), saBytes = Array(sa.utf8)
        // Two runs, each padded to whole words.
        let start = words.count
        words += [MatcherKind.serviceAccount.rawValue, 0, UInt32(nsBytes.count), UInt32(saBytes.count)]
        append(bytes: nsBytes)
        append(bytes: saBytes)
        words[start + 1] = UInt32(words.count - start)
    }

    private mutating func trustDomain(_ value: String) {
        if value == "*" {
            matcher(.string, form: UInt32(StringPattern.Kind.nonEmpty.rawValue), [0])
            return
        }
        let (form, bytes) = Self.pattern(value, star: .nonEmpty)
        matcher(.trustDomain, form: UInt32(form.rawValue), [UInt32(bytes.count)], [bytes])
    }

    /// istiod's `requestPrincipalGenerator`: the value split at its last `/` into issuer and subject.
    private mutating func requestPrincipal(_ value: String) {
        let star = UInt8(ascii: "*")
        let bytes = Array(value.utf8)
        let slash = bytes.lastIndex(of: UInt8(ascii: "/"))
        let issuer = slash.map { Array(bytes[..<$0]) } ?? bytes
        let subject = slash.map { Array(bytes[($0 + 1)...]) } ?? []
        typealias Form = (StringPattern.Kind, [UInt8])
        let any: Form = (.nonEmpty, [])
        var forms: (Form, Form)
        if bytes == [star] {
            forms = (any, any)
        } else if bytes.first == star {
            if slash != nil {
                forms = (issuer == [star] ? any : (.suffix, Array(issuer.dropFirst())), (.exact, subject))
            } else {
                forms = (any, (.suffix, Array(bytes.dropFirst())))
            }
        } else if bytes.last == star {
            if slash != nil {
                forms = ((.exact, issuer), subject == [star] ? any : (.prefix, Array(subject.dropLast())))
            } else {
                forms = ((.prefix, Array(bytes.dropLast())), any)
            }
        } else {
            forms = ((.exact, issuer), (.exact, subject))
        }
        let start = words.count
        words += [MatcherKind.requestPrincipal.rawValue | UInt32(forms.0.0.rawValue) << 8 | UInt32(forms.1.0.rawValue) << 24, 0,
                  UInt32(forms.0.1.count), UInt32(forms.1.1.count)]
        append(bytes: forms.0.1)
        append(bytes: forms.1.1)
        words[start + 1] = UInt32(words.count - start)
    }

    private mutating func ip(_ text: String) {
        guard let cidr = CIDR(text) else { return matcher(.never) }
        let block = IPBlock(cidr)
        var values: [UInt32] = []
        for value in [block.maskHigh, block.maskLow, block.high, block.low] {
            values += [UInt32(truncatingIfNeeded: value), UInt32(truncatingIfNeeded: value >> 32)]
        }
        matcher(.ip, extra: block.isV4 ? 1 : 0, values)
    }

    private mutating func port(_ value: Int?) {
        let bits = UInt64(bitPattern: Int64(value ?? 0))
        matcher(.port, extra: value == nil ? 0 : 1, [UInt32(truncatingIfNeeded: bits), UInt32(truncatingIfNeeded: bits >> 32)])
    }

    private mutating func path(_ value: String) {
        guard PathTemplate.isTemplate(value) else { return string(value, star: .nonEmpty) }
        let tokens = PathTemplate(value).tokens
        let start = words.count
        words += [MatcherKind.template.rawValue, 0, UInt32(tokens.count)]
        for token in tokens {
            switch token {
            case .literal(let bytes):
                words.append(TemplateTokenKind.literal.rawValue | UInt32(bytes.count) << 8)
                append(bytes: bytes)
            case .segment: words.append(TemplateTokenKind.segment.rawValue)
            case .rest: words.append(TemplateTokenKind.rest.rawValue)
            }
        }
        words[start + 1] = UInt32(words.count - start)
    }
}

