/// How much a policy set may hold. Policy files come from outside the process (a ConfigMap, a git
/// checkout): without bounds, 3.4 KB of nested YAML aliases ("billion laughs") took a reload 30 s and
/// 287 MB, and delayed SIGTERM by as long. Anything over a limit refuses the set, in time and memory
/// proportional to the limit, not to what the file would expand to.
public struct LoadLimits: Sendable, Hashable {
    /// Largest policy file, in bytes (checked before the file is read, and again on what was read).
    public var maxFileBytes: Int
    /// Largest sum of the files' sizes.
    public var maxTotalBytes: Int
    /// Most resources (YAML documents and `List` items, every kind counted) in the whole set.
    public var maxResources: Int
    /// Most YAML nodes a file may reach through aliases (`*name`), an alias inside an anchored node
    /// counting everything it expands to. Hand-written policies that share a list through an anchor
    /// stay far below it; a billion-laughs file passes it within a few aliases.
    public var maxAliasNodes: Int

    public static let defaultMaxFileBytes = 4 << 20
    public static let defaultMaxTotalBytes = 64 << 20
    public static let defaultMaxResources = 10_000
    public static let defaultMaxAliasNodes = 100_000

    public init(maxFileBytes: Int = defaultMaxFileBytes, maxTotalBytes: Int = defaultMaxTotalBytes,
                maxResources: Int = defaultMaxResources, maxAliasNodes: Int = defaultMaxAliasNodes) {
        self.maxFileBytes = maxFileBytes
        self.maxTotalBytes = maxTotalBytes
        self.maxResources = maxResources
        self.maxAliasNodes = maxAliasNodes
    }
}

extension PolicyError {
    static func limit(_ file: String, line: Int = 1, column: Int = 1, _ message: String) -> PolicyError {
        PolicyError(.limitExceeded, at: SourceLocation(file: file, line: line, column: column), field: "", message)
    }
}
