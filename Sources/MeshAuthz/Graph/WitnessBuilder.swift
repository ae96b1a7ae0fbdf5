/// Candidate requests that an ALLOW rule would match, for a given caller and destination: what
/// reachability and the graph offer the decision engine as witnesses. A candidate is only a guess;
/// it counts once the engine allows it (so a reported path is never a false alarm).
///
/// What is covered: every operation alternative of the rule (`to[]`), each listed method, path, host and
/// port made concrete (`/api/*` → `/api/meshauthz-witness`, `*.png` → `/meshauthz-witness.png`, templates
/// filled, `not*` values avoided from a fixed list), the source's non-identity fields (`ipBlocks`,
/// `remoteIpBlocks`, `requestPrincipals`) and the `when` keys a request carries (headers, IPs, ports, SNI,
/// `request.auth.principal`, claims). What is not: the caller's identity, which is fixed by the question;
/// values that only a regular search could find (a `notPaths` list that excludes every guess).
struct WitnessBuilder {
    static let methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
    static let paths = ["/", "/meshauthz-witness"]
    /// At most this many candidates per rule.
    static let limit = 16

    func candidates(_ rule: Rule, caller: CheckRequest.Peer, destination: CheckRequest.Workload) -> [CheckRequest] {
        var base = CheckRequest(source: caller, destination: destination)
        // The source alternatives: the first whose non-identity fields can be filled.
        if let source = rule.from.first {
            if let block = source.ipBlocks.first { base.source.ip = block.address }
            if let block = source.remoteIpBlocks.first { base.source.remoteIP = block.address }
            if let principal = source.requestPrincipals.first { base.source.requestPrincipal = concrete(principal, "meshauthz") }
        }
        for condition in rule.when { apply(condition, to: &base) }
        let operations: [Operation?] = rule.to.isEmpty ? [nil] : rule.to
        var out: [CheckRequest] = []
        for operation in operations {
            for method in methods(operation) {
                for path in paths(operation) {
                    var request = base
                    request.request.method = method
                    request.request.path = path
                    if let operation {
                        if let host = operation.hosts.first { request.request.host = concrete(host, "meshauthz-witness") }
                        if let port = operation.ports.first { request.destination.port = port }
                        else if !operation.notPorts.isEmpty {
                            request.destination.port = [8080, 80, 443, 9090].first { !operation.notPorts.contains($0) } ?? 8081
                        }
                    }
                    out.append(request)
                    if out.count >= Self.limit { return out }
                }
            }
        }
        return out
    }

    private func methods(_ operation: Operation?) -> [String] {
        guard let operation else { return ["GET"] }
        let listed = operation.methods.map { concrete($0, "GET") }
        let pool = listed.isEmpty ? Self.methods : listed
        let allowed = pool.filter { !operation.notMethods.contains($0) }
        return Array((allowed.isEmpty ? pool : allowed).prefix(3))
    }

    private func paths(_ operation: Operation?) -> [String] {
        guard let operation else { return ["/"] }
        let listed = operation.paths.map(concretePath)
        let pool = listed.isEmpty ? Self.paths : listed
        return Array(pool.prefix(3))
    }

    /// A value that an Istio string match (exact, `x*`, `*x`, `*`) accepts.
    func concrete(_ pattern: String, _ filler: String) -> String {
        if pattern == "*" { return filler }
        if pattern.hasSuffix("*") { return pattern.dropLast() + filler }
        if pattern.hasPrefix("*") { return filler + pattern.dropFirst() }
        return pattern
    }

    /// A path that a path pattern (exact, prefix, suffix, template) accepts.
    func concretePath(_ pattern: String) -> String {
        if pattern == "*" { return "/meshauthz-witness" }
        if pattern.contains("{") {
            return pattern.replacingOccurrences(of: "{**}", with: "meshauthz-witness")
                .replacingOccurrences(of: "{*}", with: "meshauthz-witness")
        }
        if pattern.hasPrefix("*") { return "/meshauthz-witness" + pattern.dropFirst() }
        if pattern.hasSuffix("*") { return pattern.dropLast() + "meshauthz-witness" }
        return pattern
    }

    /// Sets what a `when` condition reads to its first value (identity keys are the caller's: left alone).
    private func apply(_ condition: Condition, to request: inout CheckRequest) {
        guard let value = condition.values.first else { return }
        switch condition.key {
        case .requestHeader(let name): request.request.headers[name] = concrete(value, "meshauthz-witness")
        case .sourceIP: request.source.ip = CIDR(value)?.address
        case .remoteIP: request.source.remoteIP = CIDR(value)?.address
        case .destinationIP: request.destination.ip = CIDR(value)?.address
        case .destinationPort: request.destination.port = Int(value)
        case .connectionSNI: request.connection.sni = concrete(value, "meshauthz-witness")
        case .requestAuthPrincipal: request.source.requestPrincipal = concrete(value, "meshauthz")
        case .requestAuthClaims(let path):
            guard let first = path.first else { return }
            var claims = request.request.claims ?? [:]
            var nested: JSONValue = .string(concrete(value, "meshauthz"))
            for key in path.dropFirst().reversed() { nested = .object([key: nested]) }
            claims[first] = nested
            request.request.claims = claims
        case .sourceNamespace, .sourcePrincipal, .sourceServiceAccount, .sourceTrustDomain, .requestAuthAudiences,
             .requestAuthPresenter, .experimentalEnvoyFilter:
            return
        }
    }
}
