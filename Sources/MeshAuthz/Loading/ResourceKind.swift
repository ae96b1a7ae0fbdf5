/// What a resource's `kind` and `apiVersion` make of it.
///
/// Why a typo is an error: a resource of an unknown kind is kept as "another resource" and never used
/// in decisions, so `kind: AuthorisationPolicy` (or an AuthorizationPolicy under `networking.istio.io`,
/// which istiod would not accept either) would silently drop a DENY policy, failing open.
enum ResourceKind: Equatable {
    case authorizationPolicy
    case peerAuthentication
    case requestAuthentication
    /// Not used in decisions (a ConfigMap, a DestinationRule, ...).
    case other
    /// A near miss of a known kind or group: refused, with what was probably meant.
    case nearMiss(code: PolicyError.Code, field: String, message: String)

    static let securityGroup = "security.istio.io"
    /// The kinds of `security.istio.io`.
    static let securityKinds = ["AuthorizationPolicy", "PeerAuthentication", "RequestAuthentication"]
    /// Edit distance (case-insensitive) within which a kind or group is taken for a typo.
    static let nearDistance = 2

    static func classify(kind: String, apiVersion: String) -> ResourceKind {
        // `group/version`; a bare `v1` is the core group (""), a bare `security.istio.io` a group without version.
        let group = apiVersion.firstIndex(of: "/").map { String(apiVersion[..<$0]) }
            ?? (apiVersion.contains(".") ? apiVersion : "")
        if securityKinds.contains(kind) {
            guard group == securityGroup else {
                let shown = group.isEmpty ? "no API group" : "API group \(group)"
                return .nearMiss(code: .wrongAPIGroup, field: "apiVersion",
                                 message: "\(kind) under \(shown) (did you mean \(securityGroup)/v1?)")
            }
            switch kind {
            case "AuthorizationPolicy": return .authorizationPolicy
            case "PeerAuthentication": return .peerAuthentication
            default: return .requestAuthentication
            }
        }
        if let meant = securityKinds.first(where: { isNear(kind, $0) }) {
            return .nearMiss(code: .misspelledKind, field: "kind",
                             message: "unknown kind \(kind) (did you mean \(meant)?)")
        }
        if group != securityGroup && isNear(group, securityGroup) {
            return .nearMiss(code: .wrongAPIGroup, field: "apiVersion",
                             message: "unknown API group \(group) (did you mean \(securityGroup)?)")
        }
        return .other
    }

    /// Near but not equal, ignoring case (`authorizationpolicy` is a near miss too).
    static func isNear(_ a: String, _ b: String) -> Bool {
        a != b && editDistance(a.lowercased(), b.lowercased(), limit: nearDistance) <= nearDistance
    }

    /// Levenshtein distance, or `limit + 1` as soon as it is known to exceed `limit` (kinds from a file
    /// can be long: the work stays proportional to their length times the known name's).
    static func editDistance(_ a: String, _ b: String, limit: Int) -> Int {
        let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
        if abs(x.count - y.count) > limit { return limit + 1 }
        var previous = Array(0...y.count)
        var current = [Int](repeating: 0, count: y.count + 1)
        for i in 1...max(1, x.count) where !x.isEmpty {
            current[0] = i
            var rowMin = current[0]
            for j in stride(from: 1, through: y.count, by: 1) {
                let cost = x[i - 1] == y[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                rowMin = min(rowMin, current[j])
            }
            if rowMin > limit { return limit + 1 }
            swap(&previous, &current)
        }
        return previous[y.count]
    }
}
