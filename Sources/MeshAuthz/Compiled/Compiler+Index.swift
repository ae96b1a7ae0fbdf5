/// The candidate index of a bucket with more than `CompileOptions.indexThreshold` rules: each rule is
/// filed under the one field (`FieldSpec.index`) expected to bring the fewest candidates, in a trie over
/// its string forms or a port table; a rule with no such field is always a candidate.
extension Compiler {

    /// A key a rule is filed under: it can only match when the request's attribute matches the key.
    enum IndexKey: Hashable {
        case exact([UInt8])
        case prefix([UInt8])
        /// Not reversed yet.
        case suffix([UInt8])
        case present
        case port(Int)

        init(_ pattern: (StringPattern.Kind, [UInt8])) {
            switch pattern.0 {
            case .exact: self = .exact(pattern.1)
            case .prefix: self = .prefix(pattern.1)
            case .suffix, .schemeSuffix: self = .suffix(pattern.1)
            case .nonEmpty, .present: self = .present
            }
        }
    }

    private struct Option {
        var dimension: IndexDimension
        var keys: [IndexKey]
    }

    /// The fields on which `rule` can be filed (`FieldSpec.index`): it can only match when the request's
    /// attribute matches one of the keys (a superset: candidates are confirmed afterwards).
    private func indexOptions(_ rule: Rule) -> [Option] {
        var result: [Option] = []
        // A field of `from` (or `to`) can file the rule only when every clause constrains it: clauses are ORed.
        func everyClause(_ clauses: [[FieldValues]]) {
            guard let first = clauses.first else { return }
            for position in first.indices {
                let spec = FieldSpec.of(first[position].field)
                guard let dimension = spec.index, clauses.allSatisfy({ !$0[position].values.isEmpty }) else { continue }
                let keys = clauses.flatMap { $0[position].values.map { spec.form.indexKey($0) } }
                if keys.allSatisfy({ $0 != nil }) { result.append(Option(dimension: dimension, keys: keys.map { $0! })) }
            }
        }
        everyClause(rule.from.map(\.fieldValues))
        // A `when` condition must hold on its own: any one with values can file the rule.
        for condition in rule.when where !condition.values.isEmpty {
            let spec = FieldSpec.of(.condition(condition.key))
            guard let dimension = spec.index else { continue }
            let keys = condition.values.map { spec.form.indexKey($0) }
            if keys.allSatisfy({ $0 != nil }) { result.append(Option(dimension: dimension, keys: keys.map { $0! })) }
        }
        everyClause(rule.to.map(\.fieldValues))
        // By dimension, in the order found within one (the cheapest option wins; ties go to the first).
        let ordered = result.enumerated().sorted { ($0.element.dimension, $0.offset) < ($1.element.dimension, $1.offset) }
        return ordered.map { Option(dimension: $0.element.dimension, keys: Array(Set($0.element.keys))) }
    }

    private struct StringIndexBuilder {
        var forward = TrieBuilder()
        var backward = TrieBuilder()
        var present: [UInt32] = []

        mutating func add(_ key: IndexKey, _ rule: UInt32) {
            switch key {
            case .exact(let bytes): forward.insert(bytes, prefix: false, id: rule)
            case .prefix(let bytes): forward.insert(bytes, prefix: true, id: rule)
            case .suffix(let bytes): backward.insert(bytes.reversed(), prefix: true, id: rule)
            case .present: present.append(rule)
            case .port: break
            }
        }

        func freeze(into pool: inout PoolBuilder) -> StringIndex {
            let (presentStart, presentEnd) = pool.list(Array(Set(present)).sorted())
            return StringIndex(forward: forward.freeze(into: &pool), backward: backward.freeze(into: &pool),
                                  presentStart: presentStart, presentEnd: presentEnd)
        }
    }

    /// Candidate lists hold record offsets.
    mutating func makeIndex(_ records: [(ruleIndex: UInt32, offset: UInt32)]) -> CandidateIndex {
        let ruleOptions = records.map { record -> [Option] in
            let (policy, index) = ruleOwners[Int(record.ruleIndex)]
            return indexOptions(set.authorizationPolicies[policy].rules[index])
        }
        // How many rules share each key: the expected number of candidates it brings.
        var frequency: [IndexDimension: [IndexKey: Int]] = [:]
        for optionsOfRule in ruleOptions {
            for option in optionsOfRule {
                for key in option.keys { frequency[option.dimension, default: [:]][key, default: 0] += 1 }
            }
        }
        let everything = records.count
        func cost(_ option: Option) -> Int {
            option.keys.reduce(0) { total, key in
                switch key {
                case .present: return total + everything
                case .prefix(let bytes) where bytes.count <= 1: return total + everything
                case .suffix, .prefix: return total + frequency[option.dimension]![key]! + 1
                case .exact, .port: return total + frequency[option.dimension]![key]!
                }
            }
        }
        var always: [UInt32] = []
        var strings: [IndexDimension: StringIndexBuilder] = [:]
        var ports: [Int: [UInt32]] = [:]
        for (position, record) in records.enumerated() {
            let offset = record.offset
            var best: Option? = nil
            var bestCost = Int.max
            for option in ruleOptions[position] {
                let c = cost(option)
                if c < bestCost { best = option; bestCost = c }
            }
            guard let best, bestCost < everything || options.indexThreshold == 0 else {
                always.append(offset)
                continue
            }
            for key in best.keys {
                if case .port(let port) = key {
                    ports[port, default: []].append(offset)
                } else {
                    strings[best.dimension, default: StringIndexBuilder()].add(key, offset)
                }
            }
        }
        func freeze(_ dimension: IndexDimension) -> StringIndex {
            strings[dimension]?.freeze(into: &pool) ?? .unused
        }
        let (alwaysStart, alwaysEnd) = pool.list(always)
        let principal = freeze(.principal), path = freeze(.path), host = freeze(.host), method = freeze(.method)
        let portsStart = UInt32(portEntries.count)
        for (port, list) in ports.sorted(by: { $0.key < $1.key }) {
            let (start, end) = pool.list(Array(Set(list)).sorted())
            portEntries.append(PortEntry(port: port, start: start, end: end))
        }
        return CandidateIndex(alwaysStart: alwaysStart, alwaysEnd: alwaysEnd, principal: principal, path: path, host: host,
                        method: method, portsStart: portsStart, portsEnd: UInt32(portEntries.count))
    }
}

extension MatcherForm {
    /// The key a value of this form files a rule under, from the same string forms the matcher is built
    /// with (`ProgramBuilder.pattern`); nil for forms no index serves.
    func indexKey(_ value: String) -> Compiler.IndexKey? {
        switch self {
        case .principal: return Compiler.IndexKey(ProgramBuilder.pattern(value, star: .nonEmpty, scheme: spiffeScheme))
        case .string(let star, let lowered): return Compiler.IndexKey(ProgramBuilder.pattern(value, star: star, lowered: lowered))
        case .path:
            guard PathTemplate.isTemplate(value) else { return Compiler.IndexKey(ProgramBuilder.pattern(value, star: .nonEmpty)) }
            // A template starting with a literal can only match paths starting with it.
            if case .literal(let bytes)? = PathTemplate(value).tokens.first { return .prefix(bytes) }
            return .prefix([])
        case .port: return Int(value).map(Compiler.IndexKey.port)
        case .namespace, .serviceAccount, .trustDomain, .requestPrincipal, .ip, .never: return nil
        }
    }
}
