/// `namespace/name` of a Kubernetes resource.
public struct ResourceID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let namespace: String
    public let name: String

    public init(namespace: String, name: String) {
        self.namespace = namespace
        self.name = name
    }

    public var description: String { "\(namespace)/\(name)" }

    public static func < (a: ResourceID, b: ResourceID) -> Bool {
        (a.namespace, a.name) < (b.namespace, b.name)
    }
}

/// Where something was written: file and 1-based line and column.
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    public let file: String
    public let line: Int
    public let column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }
}

/// A rule as Istio names it in Envoy's RBAC config: `ns[NS]-policy[NAME]-rule[I]`.
public struct RuleID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let policy: ResourceID
    public let index: Int
    /// Precomputed once: Envoy keeps RBAC policies in a map ordered by this string, so the first
    /// matching rule it reports is the least one in this order, and so do we.
    public let description: String

    public init(policy: ResourceID, index: Int) {
        self.policy = policy
        self.index = index
        self.description = "ns[\(policy.namespace)]-policy[\(policy.name)]-rule[\(index)]"
    }

    public static func < (a: RuleID, b: RuleID) -> Bool { a.description < b.description }
}
