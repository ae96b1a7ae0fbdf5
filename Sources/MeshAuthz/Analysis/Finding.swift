/// One thing `lint` has to say about a policy repo, like an `istioctl analyze` message: a stable code,
/// a severity, where (the resource or the field), which resource, what will happen at run time, and the
/// fix when there is one.
public struct Finding: Sendable, Hashable {
    public enum Severity: String, Sendable, Hashable, CaseIterable, Comparable {
        case info
        case warning
        case error

        var rank: Int {
            switch self {
            case .info: return 0
            case .warning: return 1
            case .error: return 2
            }
        }

        public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }
    }

    public let code: FindingCode
    public var severity: Severity { code.severity }
    public let location: SourceLocation
    /// `Kind namespace/name`, or empty when the problem is not in one resource (a YAML syntax error).
    public let resource: String
    public let message: String
    public let fix: String?

    public init(_ code: FindingCode, at location: SourceLocation, resource: String, _ message: String, fix: String? = nil) {
        self.code = code
        self.location = location
        self.resource = resource
        self.message = message
        self.fix = fix
    }

    /// Sorted by file, line, column, then code: the same input gives the same report.
    public static func ordered(_ a: Finding, _ b: Finding) -> Bool {
        if a.location.file != b.location.file { return a.location.file.utf8.lexicographicallyPrecedes(b.location.file.utf8) }
        if a.location.line != b.location.line { return a.location.line < b.location.line }
        if a.location.column != b.location.column { return a.location.column < b.location.column }
        if a.code != b.code { return a.code.rawValue < b.code.rawValue }
        return a.message < b.message
    }
}

extension AuthorizationPolicy {
    var resourceName: String { "AuthorizationPolicy \(id)" }
}

extension PeerAuthentication {
    var resourceName: String { "PeerAuthentication \(id)" }
}

extension DestinationRule {
    var resourceName: String { "DestinationRule \(id)" }
}

extension Inventory.Workload {
    var resourceName: String { "\(kind) \(id)" }
}
