/// Every finding `lint` can report: one code per analyzer, each with one severity. The codes are stable
/// (scripts and `--fail-on` depend on them); a new analyzer takes a new code, and the README's table
/// lists them all (a test keeps it in step with `allCases`).
///
/// Ranges: MA00xx the files themselves, MA01xx mTLS (PeerAuthentication, DestinationRule), MA02xx
/// AuthorizationPolicy, MA03xx workload coverage (needs manifests), MA04xx RequestAuthentication.
public enum FindingCode: String, Sendable, Hashable, CaseIterable {
    case syntax = "MA0001"
    case unknownField = "MA0002"
    case invalidField = "MA0003"
    case misspelledKind = "MA0004"
    case duplicateResource = "MA0005"
    case manifestError = "MA0006"
    case noManifests = "MA0007"
    case meshNotStrict = "MA0101"
    case plaintextToStrict = "MA0102"
    case mutualToDisabled = "MA0103"
    case unknownHost = "MA0104"
    case allowNothingOnWorkload = "MA0201"
    case allowNothingNamespace = "MA0202"
    case allowAnyRequest = "MA0203"
    case selectsNothing = "MA0204"
    case unknownServiceAccount = "MA0205"
    case principalForm = "MA0206"
    case unknownNamespace = "MA0207"
    case allowOverriddenByDeny = "MA0208"
    case pathNeverMatches = "MA0209"
    case lowercaseMethod = "MA0210"
    case customPolicy = "MA0211"
    case experimentalKey = "MA0212"
    case deniedByAllowNothing = "MA0301"
    case uncoveredWorkload = "MA0302"
    case undiscoverableKeys = "MA0401"

    public var severity: Finding.Severity {
        switch self {
        case .syntax, .unknownField, .invalidField, .misspelledKind, .duplicateResource, .manifestError,
             .plaintextToStrict, .mutualToDisabled, .undiscoverableKeys:
            return .error
        case .meshNotStrict, .unknownHost, .allowNothingOnWorkload, .allowAnyRequest, .selectsNothing,
             .unknownServiceAccount, .principalForm, .unknownNamespace, .allowOverriddenByDeny, .pathNeverMatches,
             .lowercaseMethod, .experimentalKey, .uncoveredWorkload:
            return .warning
        case .noManifests, .allowNothingNamespace, .customPolicy, .deniedByAllowNothing:
            return .info
        }
    }

    /// One line for the README's table and `lint --list`.
    public var summary: String {
        switch self {
        case .syntax: return "a file cannot be read as YAML (or is unreadable, or over a limit): the whole set is refused by serve"
        case .unknownField: return "an unknown field, with the field probably meant (principles → principals)"
        case .invalidField: return "a value istiod rejects: wrong type, missing field, bad CIDR, port or template, unknown when key, misspelled enum value"
        case .misspelledKind: return "a kind or API group that is a near miss of security.istio.io's (the policy would be ignored)"
        case .duplicateResource: return "two resources of the same kind, namespace and name"
        case .manifestError: return "a workload manifest, Service or DestinationRule field that cannot be read"
        case .noManifests: return "no workload manifests: the analyses that need an inventory are skipped"
        case .meshNotStrict: return "PERMISSIVE or DISABLE mTLS at mesh or namespace scope"
        case .plaintextToStrict: return "a DestinationRule sends plaintext (DISABLE) or its own TLS (SIMPLE) to workloads that require Istio mTLS"
        case .mutualToDisabled: return "a DestinationRule sends Istio mTLS (ISTIO_MUTUAL) to workloads whose mTLS is DISABLE"
        case .unknownHost: return "a DestinationRule host that no Service of the manifests serves"
        case .allowNothingOnWorkload: return "an ALLOW policy without rules on selected workloads: every request to them is denied"
        case .allowNothingNamespace: return "the namespace-wide allow-nothing policy (the zero-trust default)"
        case .allowAnyRequest: return "an ALLOW rule {} that allows every request from any caller (plaintext ones too where mTLS is not STRICT)"
        case .selectsNothing: return "a selector or targetRef that selects no workload of the manifests"
        case .unknownServiceAccount: return "a principal or service account that no manifest declares in that namespace"
        case .principalForm: return "a principal written with spiffe:// (never matches) or without the mesh's trust domain"
        case .unknownNamespace: return "a source namespace that no manifest declares"
        case .allowOverriddenByDeny: return "an ALLOW rule that a DENY rule on the same workloads always overrides: it can never allow"
        case .pathNeverMatches: return "a path that can never match: no leading /, or * in the middle"
        case .lowercaseMethod: return "a method in lower case: Envoy refuses such requests, so it never matches"
        case .customPolicy: return "a CUSTOM policy: meshauthz cannot ask its provider and denies the requests it matches"
        case .experimentalKey: return "an experimental.envoy.filters when key: it reads Envoy metadata meshauthz never has, so it never matches"
        case .deniedByAllowNothing: return "a workload under an allow-nothing policy that no ALLOW policy opens: all its traffic is denied"
        case .uncoveredWorkload: return "a workload no policy covers in an otherwise zero-trust mesh: everything is allowed to it"
        case .undiscoverableKeys: return "a jwtRule with neither jwks nor jwksUri whose issuer is no https URL to discover keys from: all its tokens are rejected"
        }
    }
}
