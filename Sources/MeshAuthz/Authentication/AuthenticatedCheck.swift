/// A `/v1/check` request through the sidecar's two steps: jwt_authn (the RequestAuthentications that apply
/// to the destination, reading the token from `request.headers` or the query of `request.path`), then
/// authorization with the verified identity. `meshauthz check`, the server and the tests share it.
public struct AuthenticatedCheck: Sendable {
    public let authenticator: RequestAuthenticator
    public let peerAuthentication: PeerAuthenticationResolver
    public init(_ set: PolicySet) {
        authenticator = RequestAuthenticator(set)
        peerAuthentication = PeerAuthenticationResolver(set)
    }

    /// The decision and what authentication made of the request (nil when no RequestAuthentication applies).
    /// A request carrying a token that an applicable rule reads *and* an explicit identity
    /// (`source.requestPrincipal`, `request.claims`, the what-if input) is refused: which one is meant?
    public func decide(_ request: CheckRequest, now: Int64, element: Int? = nil,
                       remoteKeys: @escaping (String) -> JWKS? = { _ in nil }, cache: (any VerifiedTokenCache)? = nil,
                       evaluate: (CheckRequest) -> Decision) throws(RequestError) -> (Decision, AuthenticationResult?) {
        guard !authenticator.isEmpty else { return (evaluate(request), nil) }
        let rules = authenticator.rules(for: request.destination)
        guard !rules.isEmpty else { return (evaluate(request), nil) }
        let input = AuthenticationInput(method: request.request.method, target: request.request.path,
                                        host: request.request.host,
                                        headers: request.request.headers.map { (name: $0.key, value: $0.value) })
        let result = authenticator.authenticate(input, rules: rules, now: now, remoteKeys: remoteKeys, cache: cache)
        if result.tokenFound && (request.source.requestPrincipal != nil || request.request.claims != nil) {
            let location = FieldLocation(element: element)
            throw RequestError.invalidRequest(
                "the request carries a token that a RequestAuthentication of the destination reads, and an explicit identity (source.requestPrincipal or request.claims): send one or the other (the token is validated; the explicit identity is taken as already verified)",
                field: request.source.requestPrincipal != nil ? location.field("source", "requestPrincipal") : location.field("request", "claims"))
        }
        return (decide(request, result, evaluate: evaluate), result)
    }

    /// Authorization after authentication: a rejected token denies before any policy runs (unless STRICT
    /// mTLS refused the connection first), a verified one is the identity policies see.
    public func decide(_ request: CheckRequest, _ result: AuthenticationResult,
                       evaluate: (CheckRequest) -> Decision) -> Decision {
        switch result.verdict {
        case .notApplicable:
            return evaluate(request)
        case .failed(let status):
            let mode = peerAuthentication.mode(for: request.destination)
            if mode.mode == .strict && !request.source.isMTLS { return evaluate(request) }
            return Decision(allowed: false, stage: .requestAuthentication,
                            reason: "request authentication failed (Envoy answers \(status.httpStatus)): \(status.message)",
                            mtlsMode: mode.mode)
        case .passed:
            return evaluate(Self.applying(result, to: request))
        }
    }

    /// The request as authorization sees it after jwt_authn: the verified payload as claims, verified tokens
    /// (not forwarded) and client-sent output headers removed, the output headers added.
    public static func applying(_ result: AuthenticationResult, to request: CheckRequest) -> CheckRequest {
        var copy = request
        for name in result.removedHeaders { copy.request.headers[name] = nil }
        for (name, value) in result.upstreamHeaders {
            copy.request.headers[name] = copy.request.headers[name].map { $0 + "," + value } ?? value
        }
        if let identity = result.identity {
            // iss and sub come from the payload itself: `requestPrincipals` split them there, exactly.
            copy.source.requestPrincipal = nil
            copy.request.claims = identity.claims
        }
        return copy
    }
}
