import MeshAuthz

/// Builds `CheckRequest`s from fuzz bytes. Values come mostly from the policy set's own vocabulary
/// (principals, namespaces, paths, hosts, header values, selector labels, ports, CIDR addresses), so that
/// rules match and the matchers' prefix/suffix/template/trie paths run; the rest are raw input bytes.
/// Exhausted input reads as zeros, so every input yields a request.
struct RequestDraw {
    let input: UnsafeBufferPointer<UInt8>
    var position = 0
    let vocabulary: Vocabulary

    init(_ input: UnsafeBufferPointer<UInt8>, _ vocabulary: Vocabulary) {
        self.input = input
        self.vocabulary = vocabulary
    }

    mutating func byte() -> UInt8 {
        guard position < input.count else { return 0 }
        defer { position += 1 }
        return input[position]
    }

    mutating func pick<T>(_ items: [T]) -> T? {
        items.isEmpty ? nil : items[Int(byte()) % items.count]
    }

    /// A vocabulary word, sometimes altered (case, a prefix or suffix cut or added), or raw input bytes.
    mutating func string(_ words: [String]) -> String? {
        let choice = byte()
        switch choice % 8 {
        case 0: return nil
        case 1:
            let length = Int(byte() % 24)
            let end = min(input.count, position + length)
            defer { position = end }
            return position < end ? String(decoding: input[position..<end], as: UTF8.self) : ""
        default:
            guard var word = pick(words) ?? pick(vocabulary.any) else { return nil }
            switch choice / 8 % 8 {
            case 0: word = word.uppercased()
            case 1: word = String(word.dropLast(Int(byte() % 4)))
            case 2: word = String(word.dropFirst(Int(byte() % 4)))
            case 3: word += pick(["/", "x", ".", "*", "/a", "?q=1", ":8080", "#f"]) ?? ""
            default: break
            }
            return word
        }
    }

    mutating func request() -> CheckRequest {
        let flags = byte()
        var labels: [String: String] = [:]
        for _ in 0..<Int(byte() % 3) {
            if let (key, value) = pick(vocabulary.labels) { labels[key] = byte() % 5 == 0 ? value + "x" : value }
        }
        var headers: [String: String] = [:]
        for _ in 0..<Int(byte() % 3) {
            if let name = string(vocabulary.headerNames), let value = string(vocabulary.values) {
                headers[name.lowercased()] = value
            }
        }
        let principal = string(vocabulary.principals)
        return CheckRequest(
            source: .init(principal: principal?.isEmpty == true ? nil : principal,
                          namespace: string(vocabulary.namespaces),
                          ip: flags & 1 == 0 ? nil : pick(vocabulary.addresses),
                          remoteIP: flags & 2 == 0 ? nil : pick(vocabulary.addresses),
                          requestPrincipal: string(vocabulary.requestPrincipals),
                          mtls: flags & 12 == 0 ? nil : flags & 4 != 0),
            destination: .init(namespace: string(vocabulary.namespaces), labels: labels,
                               port: flags & 16 == 0 ? nil : pick(vocabulary.ports),
                               ip: flags & 32 == 0 ? nil : pick(vocabulary.addresses)),
            request: .init(method: string(vocabulary.methods), path: string(vocabulary.paths),
                           host: string(vocabulary.hosts), headers: headers,
                           claims: flags & 64 == 0 ? nil : claims()),
            connection: .init(sni: flags & 128 == 0 ? nil : string(vocabulary.hosts)))
    }

    mutating func claims() -> [String: JSONValue] {
        var claims: [String: JSONValue] = [:]
        for _ in 0..<Int(byte() % 3) {
            guard let name = string(vocabulary.claimNames) else { continue }
            let value = string(vocabulary.values) ?? ""
            claims[name] = byte() % 2 == 0 ? .string(value) : .array([.string(value), .string("other")])
        }
        return claims
    }
}

/// The words of a policy set, by the request attribute they belong to.
struct Vocabulary {
    var principals: [String] = [], requestPrincipals: [String] = [], namespaces: [String] = []
    var paths: [String] = [], hosts: [String] = [], methods: [String] = ["GET", "POST", "get"]
    var headerNames: [String] = [], claimNames: [String] = [], values: [String] = []
    var labels: [(String, String)] = [], ports: [Int] = [80, 8080]
    var addresses: [IPAddress] = ["10.0.0.1", "192.168.1.1", "::1"].compactMap(IPAddress.init)
    var any: [String] = []

    init(_ set: PolicySet) {
        // Wildcards and templates become text a request could carry.
        func literal(_ pattern: String) -> String {
            pattern.replacingOccurrences("{**}", "a/b").replacingOccurrences("{*}", "a").replacingOccurrences("*", "x")
        }
        for policy in set.authorizationPolicies {
            namespaces.append(policy.id.namespace)
            for (key, value) in policy.selector ?? [:] { labels.append((key, value)) }
            for rule in policy.rules {
                for source in rule.from {
                    principals += (source.principals + source.notPrincipals).map(literal)
                    requestPrincipals += (source.requestPrincipals + source.notRequestPrincipals).map(literal)
                    namespaces += (source.namespaces + source.notNamespaces).map(literal)
                    principals += (source.serviceAccounts + source.notServiceAccounts).map { "cluster.local/ns/\(literal($0))" }
                    addresses += (source.ipBlocks + source.notIpBlocks + source.remoteIpBlocks + source.notRemoteIpBlocks).map(\.address)
                }
                for operation in rule.to {
                    paths += (operation.paths + operation.notPaths).map(literal)
                    hosts += (operation.hosts + operation.notHosts).map(literal)
                    methods += operation.methods + operation.notMethods
                    ports += operation.ports + operation.notPorts
                }
                for condition in rule.when {
                    values += (condition.values + condition.notValues).map(literal)
                    switch condition.key {
                    case .requestHeader(let name): headerNames.append(name)
                    case .requestAuthClaims(let path): claimNames += path.prefix(1)
                    default: break
                    }
                }
            }
        }
        for peer in set.peerAuthentications {
            namespaces.append(peer.id.namespace)
            for (key, value) in peer.selector ?? [:] { labels.append((key, value)) }
            ports += peer.portLevel.keys
        }
        any = principals + namespaces + paths + hosts + values
    }
}

extension String {
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
