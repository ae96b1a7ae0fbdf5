/// Where a token was found, and which issuers may use that place (Envoy's `JwtLocation`).
struct FoundToken {
    enum Place: Hashable {
        case header(String)
        case param(String)
        case cookie(String)
    }

    let token: String
    let place: Place
    /// Issuers whose rules name this place.
    let issuers: Set<String>
}

/// The parts of a request the token extractor reads. Header names are lower-cased; a header sent more
/// than once has several values.
public struct AuthenticationInput: Sendable {
    public var method: String?
    /// The target as the proxy passes it (path and query).
    public var target: String?
    public var host: String?
    public var headers: [(name: String, value: String)]

    public init(method: String?, target: String?, host: String?, headers: [(name: String, value: String)]) {
        self.method = method
        self.target = target
        self.host = host
        self.headers = headers
    }

    func values(_ name: String) -> [String] {
        headers.compactMap { $0.name == name ? Self.trimmed($0.value) : nil }
    }

    /// HTTP strips optional whitespace around a field value before Envoy sees it (`Bearer ` is `Bearer`).
    static func trimmed(_ value: String) -> String {
        var s = Substring(value)
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return String(s)
    }

    /// CORS preflight: Envoy's jwt_authn lets it through unauthenticated (istiod sets bypass_cors_preflight).
    var isCORSPreflight: Bool {
        method == "OPTIONS" && values("origin").contains { !$0.isEmpty }
            && values("access-control-request-method").contains { !$0.isEmpty }
    }
}

/// Envoy's `ExtractorImpl`: header locations (ordered by name + prefix), then query parameters, then cookies
/// (each ordered by name), every place shared by the rules that name it. Small sorted arrays (a rule has a
/// place or two), and the prefix is searched as bytes: this runs on every request with a token.
struct TokenExtractor {
    private var headerPlaces: [(key: String, name: String, prefix: String, issuers: Set<String>)] = []
    private var paramPlaces: [(name: String, issuers: Set<String>)] = []
    private var cookiePlaces: [(name: String, issuers: Set<String>)] = []

    init(_ rules: [JWTRule]) {
        for rule in rules {
            for location in rule.headerLocations {
                let name = location.name.lowercased()
                let key = name + location.prefix
                if let i = headerPlaces.firstIndex(where: { $0.key == key }) {
                    headerPlaces[i].issuers.insert(rule.issuer)
                } else {
                    headerPlaces.append((key, name, location.prefix, [rule.issuer]))
                }
            }
            for param in rule.paramLocations {
                if let i = paramPlaces.firstIndex(where: { $0.name == param }) { paramPlaces[i].issuers.insert(rule.issuer) }
                else { paramPlaces.append((param, [rule.issuer])) }
            }
            for cookie in rule.fromCookies {
                if let i = cookiePlaces.firstIndex(where: { $0.name == cookie }) { cookiePlaces[i].issuers.insert(rule.issuer) }
                else { cookiePlaces.append((cookie, [rule.issuer])) }
            }
        }
        if headerPlaces.count > 1 { headerPlaces.sort { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) } }
        if paramPlaces.count > 1 { paramPlaces.sort { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) } }
        if cookiePlaces.count > 1 { cookiePlaces.sort { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) } }
    }

    /// Header names the extractor reads (so a gateway request copies only those).
    var headerNames: Set<String> {
        var names = Set(headerPlaces.map(\.name))
        if !cookiePlaces.isEmpty { names.insert("cookie") }
        return names
    }

    func extract(_ input: AuthenticationInput) -> [FoundToken] {
        var tokens: [FoundToken] = []
        for place in headerPlaces {
            for header in input.headers where header.name == place.name {
                let value = AuthenticationInput.trimmed(header.value)
                var token = Substring(value)
                if !place.prefix.isEmpty {
                    guard let end = Self.endOfFirst(place.prefix, in: value) else { continue }
                    token = Self.jwt(after: value[end...]) ?? Substring(value)
                }
                tokens.append(FoundToken(token: String(token), place: .header(place.name), issuers: place.issuers))
            }
        }
        if !paramPlaces.isEmpty, let target = input.target, target.utf8.contains(UInt8(ascii: "?")) {
            let params = Self.queryParameters(target)
            for place in paramPlaces {
                if let value = params.first(where: { $0.name == place.name })?.value {
                    tokens.append(FoundToken(token: value, place: .param(place.name), issuers: place.issuers))
                }
            }
        }
        if !cookiePlaces.isEmpty {
            let cookies = Self.cookies(input.values("cookie"))
            for place in cookiePlaces {
                if let value = cookies[place.name] {
                    tokens.append(FoundToken(token: value, place: .cookie(place.name), issuers: place.issuers))
                }
            }
        }
        return tokens
    }

    /// Where the first occurrence of `prefix` in `value` ends (`std::string::find`, bytes compared as bytes).
    static func endOfFirst(_ prefix: String, in value: String) -> String.Index? {
        let p = Array(prefix.utf8)
        let v = value.utf8
        guard let first = p.first, v.count >= p.count else { return nil }
        var i = v.startIndex
        while i != v.endIndex {
            if v[i] == first {
                var j = i, k = 0
                while k < p.count, j != v.endIndex, v[j] == p[k] { j = v.index(after: j); k += 1 }
                if k == p.count { return j }
            }
            i = v.index(after: i)
        }
        return nil
    }

    /// `extractJWT` as Envoy 1.40 does it: from the first base64url character or dot after the prefix to the
    /// end of the value; nil (the whole value is then taken) when there is none. Recorded from a real Envoy
    /// 1.40 (`JWTTests.theTokenRunsFromItsFirstCharacterToTheEndOfTheValue`): `Bearer  <token>` and
    /// `Bearer ,<token>` pass, `Bearer <token>, Bearer x` is a 401 (the signature is not base64url). Later
    /// Envoy sources stop at the first other character instead: follow them when the oracle does.
    static func jwt(after rest: Substring) -> Substring? {
        guard let start = rest.utf8.firstIndex(where: isTokenByte) else { return nil }
        return rest[start...]
    }

    static func isTokenByte(_ b: UInt8) -> Bool {
        (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39)
            || b == UInt8(ascii: "-") || b == UInt8(ascii: "_") || b == UInt8(ascii: ".")
    }

    /// The query's parameters in order, names and values percent-decoded (Envoy's
    /// `parseAndDecodeQueryString`); the first of a repeated name is the one used.
    static func queryParameters(_ target: String) -> [(name: String, value: String)] {
        guard let q = target.firstIndex(of: "?") else { return [] }
        var query = target[target.index(after: q)...]
        if let hash = query.firstIndex(of: "#") { query = query[..<hash] }
        return query.split(separator: "&", omittingEmptySubsequences: true).map { item in
            if let eq = item.firstIndex(of: "=") {
                return (percentDecoded(item[..<eq]), percentDecoded(item[item.index(after: eq)...]))
            }
            return (percentDecoded(item), "")
        }
    }

    static func percentDecoded(_ text: Substring) -> String {
        let bytes = Array(text.utf8)
        guard bytes.contains(UInt8(ascii: "%")) else { return String(text) }
        var out: [UInt8] = []
        var i = 0
        func hex(_ b: UInt8) -> UInt8? {
            switch b {
            case 0x30...0x39: return b - 0x30
            case 0x41...0x46: return b - 0x41 + 10
            case 0x61...0x66: return b - 0x61 + 10
            default: return nil
            }
        }
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count, let h = hex(bytes[i + 1]), let l = hex(bytes[i + 2]) {
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Envoy's `parseCookies`: `k=v` pairs separated by `;`, leading spaces dropped, a quoted value unquoted,
    /// the first of a repeated name kept.
    static func cookies(_ headerValues: [String]) -> [String: String] {
        var cookies: [String: String] = [:]
        for header in headerValues {
            for part in header.split(separator: ";", omittingEmptySubsequences: true) {
                let item = part.drop(while: { $0 == " " || $0 == "\t" })
                guard let eq = item.firstIndex(of: "=") else { continue }
                let name = String(item[..<eq])
                var value = item[item.index(after: eq)...]
                if value.count >= 2, value.first == "\"", value.last == "\"" { value = value.dropFirst().dropLast() }
                if cookies[name] == nil { cookies[name] = String(value) }
            }
        }
        return cookies
    }
}
