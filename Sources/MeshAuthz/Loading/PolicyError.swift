/// A problem in a policy file, with where it is and which field: `file:line:col: field: message`.
public struct PolicyError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// The file is not valid YAML (or was cut short).
        case syntax = "syntax"
        case unknownField = "unknown_field"
        case missingField = "missing_field"
        /// A value of the wrong YAML type (a string where a list is expected, ...).
        case wrongType = "wrong_type"
        /// A value istiod's validation would reject (bad CIDR, bad template, ...).
        case invalidValue = "invalid_value"
        case unknownConditionKey = "unknown_condition_key"
        case duplicateResource = "duplicate_resource"
        case unreadable = "unreadable"
        /// No AuthorizationPolicy and no PeerAuthentication at all (an empty or missing mount): refused
        /// unless an empty set is declared intended (`--allow-empty`), since it would allow everything.
        case emptySet = "empty_set"
        /// A kind within edit distance 2 of a known one (`AuthorisationPolicy`): a typo would otherwise
        /// turn a DENY policy into an ignored "other resource".
        case misspelledKind = "misspelled_kind"
        /// A known kind under another API group (`networking.istio.io`), or a group that is a typo of
        /// `security.istio.io`.
        case wrongAPIGroup = "wrong_api_group"
        /// A file, the set, the resource count or the YAML alias expansion is over its limit (`LoadLimits`).
        case limitExceeded = "limit_exceeded"
        /// The files kept changing while they were read (a writer in progress).
        case changedWhileReading = "changed_while_reading"
    }

    public let code: Code
    public let location: SourceLocation
    /// Dotted path of the offending field, e.g. `spec.rules[0].from[1].source.ipBlocks[0]`.
    public let field: String
    public let message: String

    public init(_ code: Code, at location: SourceLocation, field: String, _ message: String) {
        self.code = code
        self.location = location
        self.field = field
        self.message = message
    }

    public var description: String {
        field.isEmpty ? "\(location): \(message)" : "\(location): \(field): \(message)"
    }
}

/// A policy set was refused: every problem found, in file order.
public struct PolicyLoadFailure: Error, Sendable, Hashable, CustomStringConvertible {
    public let errors: [PolicyError]

    public init(errors: [PolicyError]) { self.errors = errors }

    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
