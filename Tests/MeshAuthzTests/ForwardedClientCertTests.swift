import MeshAuthz
import Testing

struct ForwardedClientCertTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let header: String
        let principal: String?
        let why: String
        var testDescription: String { why }
    }

    static let hash = "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688"

    static let principals: [Case] = [
        Case(header: "By=spiffe://cluster.local/ns/istio-system/sa/gw;Hash=\(hash);URI=spiffe://cluster.local/ns/a/sa/b",
             principal: "spiffe://cluster.local/ns/a/sa/b", why: "Envoy SANITIZE_SET with uri: true"),
        Case(header: "URI=spiffe://cluster.local/ns/a/sa/b", principal: "spiffe://cluster.local/ns/a/sa/b", why: "URI only"),
        Case(header: "uri=spiffe://td/ns/a/sa/b", principal: "spiffe://td/ns/a/sa/b", why: "keys are case-insensitive"),
        Case(header: "By=spiffe://td/ns/x/sa/proxy;Hash=\(hash)", principal: nil, why: "By is never the principal"),
        Case(header: "By=spiffe://td/ns/x/sa/proxy;URI=", principal: nil, why: "empty URI (certificate without URI SAN)"),
        Case(header: #"By=http://frontend.lyft.com;Hash=\#(hash);Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com"#,
             principal: "http://testclient.lyft.com", why: "Envoy docs example 1"),
        Case(header: "By=http://frontend.lyft.com;Hash=\(hash);URI=http://testclient.lyft.com,By=http://backend.lyft.com;Hash=9ba6;URI=http://frontend.lyft.com",
             principal: "http://frontend.lyft.com", why: "Envoy docs example 2: the last element wins"),
        Case(header: #"By=http://frontend.lyft.com;Hash=\#(hash);Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com;DNS=lyft.com;DNS=www.lyft.com"#,
             principal: "http://testclient.lyft.com", why: "Envoy docs example 3"),
        Case(header: #"Subject="CN=a,O=b;c=d";URI=spiffe://td/ns/a/sa/first,By=x;Subject="O=Acme, Inc.,CN=gw";URI=spiffe://td/ns/b/sa/second"#,
             principal: "spiffe://td/ns/b/sa/second", why: "commas and semicolons inside quotes do not split"),
        Case(header: #"URI=spiffe://td/ns/a/sa/first,Subject="CN=\"quoted, still\"";URI=spiffe://td/ns/b/sa/second"#,
             principal: "spiffe://td/ns/b/sa/second", why: "escaped quotes inside a quoted value"),
        Case(header: "URI=spiffe://td/ns/evil/sa/forged,By=spiffe://td/ns/x/sa/gw;Hash=\(hash)",
             principal: nil, why: "an earlier element's URI never stands in for a missing last one"),
        Case(header: "URI=spiffe://td/ns/a/sa/one;URI=spiffe://td/ns/a/sa/two", principal: "spiffe://td/ns/a/sa/one",
             why: "several URI SANs: the first"),
        Case(header: #"URI="spiffe://td/ns/a/sa/b""#, principal: "spiffe://td/ns/a/sa/b", why: "a quoted URI"),
        Case(header: "By=x;URI=;URI=spiffe://td/ns/a/sa/b", principal: "spiffe://td/ns/a/sa/b",
             why: "an empty URI does not hide a later one (issue 7 #13)"),
        Case(header: "By=a;URI=spiffe://td/ns/a/sa/b , By=b ; URI = spiffe://td/ns/c/sa/d ",
             principal: "spiffe://td/ns/c/sa/d", why: "spaces around elements, pairs and keys"),
        Case(header: #"URI="x,By=y;URI=spiffe://td/ns/a/sa/b"#, principal: "spiffe://td/ns/a/sa/b",
             why: "an unbalanced quote before the last element does not swallow it"),
        Case(header: #"By=y;Subject="CN=x;URI=spiffe://td/ns/a/sa/b"#, principal: nil, why: "unterminated quote in the last element"),
        Case(header: #"junk"",URI=spiffe://td/ns/evil/sa/x,By=gw;Hash=\#(hash);URI=spiffe://td/ns/real/sa/caller"#,
             principal: "spiffe://td/ns/real/sa/caller",
             why: "client junk before the appended element cannot hide the nearest proxy's URI"),
        Case(header: #"URI=a";b,By=gw;URI=spiffe://td/ns/real/sa/caller"#, principal: "spiffe://td/ns/real/sa/caller",
             why: "an unbalanced quote in a forged element is ignored"),
        Case(header: "URI=spiffe://td/ns/a/sa/b,", principal: nil, why: "trailing comma: an empty last element"),
        Case(header: "", principal: nil, why: "empty header"),
        Case(header: "URI", principal: nil, why: "a key without a value"),
        Case(header: "URI=spiffe://td/ns/a/sa/b;", principal: nil, why: "trailing semicolon is malformed"),
        Case(header: #"URI=spiffe://td/ns/a/sa/b;Subject="CN=x"junk"#, principal: nil, why: "text after a closing quote"),
        Case(header: #"URI=spi"ffe://x"#, principal: nil, why: "a quote inside an unquoted value"),
    ]

    @Test(arguments: principals)
    func principalOfTheLastElement(_ test: Case) {
        #expect(ForwardedClientCert.principal(fromHeader: test.header) == test.principal)
        #expect(ForwardedClientCert.principal(fromHeader: test.header[...]) == test.principal)
        // The gateway path's byte form: the same principal, with `spiffe://` as policies match it.
        let bytes = Array(test.header.utf8).withUnsafeBufferPointer { header in
            ForwardedClientCert.withPrincipal(fromHeader: header, severalURIs: { "several" }) { $0.map { String(decoding: $0, as: UTF8.self) } }
        }
        // ... unless the last element names several URI SANs, which the gateway path refuses.
        var header = test.header
        let several = header.withUTF8 { ForwardedClientCert.hasSeveralURIs($0) }
        #expect(bytes == (several ? "several" : test.principal.map(CheckRequest.Peer.withSPIFFEScheme)))
    }

    struct Parse: Sendable, CustomTestStringConvertible {
        let header: String
        let elements: [[ForwardedClientCert.Pair]]?
        var testDescription: String { header }
    }

    static func pairs(_ list: [(String, String)]) -> [ForwardedClientCert.Pair] {
        list.map { ForwardedClientCert.Pair(key: $0.0, value: $0.1) }
    }

    static let parses: [Parse] = [
        Parse(header: "By=a;Hash=h;URI=u", elements: [pairs([("By", "a"), ("Hash", "h"), ("URI", "u")])]),
        Parse(header: "URI=u1,URI=u2, URI=u3", elements: [pairs([("URI", "u1")]), pairs([("URI", "u2")]), pairs([("URI", "u3")])]),
        Parse(header: #"Subject="a,b;c=d";URI=u"#, elements: [pairs([("Subject", "a,b;c=d"), ("URI", "u")])]),
        Parse(header: #"Subject="say \"hi\", ok""#, elements: [pairs([("Subject", #"say "hi", ok"#)])]),
        Parse(header: #"Subject="CN=a\,b\\""#, elements: [pairs([("Subject", #"CN=a\,b\\"#)])]),
        Parse(header: "DNS=a.example;DNS=b.example", elements: [pairs([("DNS", "a.example"), ("DNS", "b.example")])]),
        Parse(header: "URI=", elements: [pairs([("URI", "")])]),
        Parse(header: "Cert=\"-----BEGIN%20CERTIFICATE-----%0AMIIB\"", elements: [pairs([("Cert", "-----BEGIN%20CERTIFICATE-----%0AMIIB")])]),
        Parse(header: "", elements: nil),
        Parse(header: ",", elements: nil),
        Parse(header: "URI=a,,URI=b", elements: nil),
        Parse(header: "=x", elements: nil),
        Parse(header: #"URI="open"#, elements: nil),
        Parse(header: #"junk",URI=u"#, elements: nil),
    ]

    @Test(arguments: parses)
    func parsesElements(_ test: Parse) {
        #expect(ForwardedClientCert(header: test.header)?.elements == test.elements)
    }

    @Test func accessors() throws {
        let header = "By=gw1;URI=spiffe://td/ns/a/sa/client;DNS=x;DNS=y,By=gw2;Hash=h;URI=spiffe://td/ns/b/sa/gw1"
        let xfcc = try #require(ForwardedClientCert(header: header))
        #expect(xfcc.elements.count == 2)
        #expect(xfcc.uri(ofElement: 0) == "spiffe://td/ns/a/sa/client")
        #expect(xfcc.uri(ofElement: 1) == "spiffe://td/ns/b/sa/gw1")
        #expect(xfcc.uri(ofElement: 2) == nil)
        #expect(xfcc.uri(ofElement: -1) == nil)
        #expect(xfcc.values("dns", ofElement: 0) == ["x", "y"])
        #expect(xfcc.values("by", ofElement: 1) == ["gw2"])
        #expect(xfcc.principal == "spiffe://td/ns/b/sa/gw1")
    }

    @Test(arguments: [
        ("URI=spiffe://td/ns/a/sa/one;URI=spiffe://td/ns/a/sa/two", true),
        ("URI=spiffe://td/ns/a/sa/one;URI=spiffe://td/ns/a/sa/one", false),
        ("URI=spiffe://td/ns/a/sa/one;URI=", false),
        ("URI=spiffe://td/ns/a/sa/one;DNS=a;DNS=b", false),
        ("URI=spiffe://td/ns/a/sa/one;URI=spiffe://td/ns/a/sa/two,URI=spiffe://td/ns/b/sa/c", false),
        ("URI=spiffe://td/ns/b/sa/c,URI=spiffe://td/ns/a/sa/one;uri=spiffe://td/ns/a/sa/two", true),
    ])
    func severalURIs(_ header: String, _ several: Bool) {
        var text = header
        #expect(text.withUTF8 { ForwardedClientCert.hasSeveralURIs($0) } == several)
    }

    /// Elements without quotes or commas take a faster path (libc scans for `;`): it must read them exactly as a
    /// naive split does, malformed ones included. 20,000 generated elements from a fixed seed.
    @Test func plainElementsReadAsANaiveSplit() {
        let alphabet = Array("ab=;  \t\\URIuri:/%x".utf8)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        func naive(_ text: String) -> [ForwardedClientCert.Pair]? {
            var pairs: [ForwardedClientCert.Pair] = []
            for part in text.split(separator: ";", omittingEmptySubsequences: false) {
                guard let eq = part.firstIndex(of: "=") else { return nil }
                let key = part[..<eq].trimmingCharacters(in: " \t"), value = part[part.index(after: eq)...].trimmingCharacters(in: " \t")
                guard !key.isEmpty else { return nil }
                pairs.append(ForwardedClientCert.Pair(key: key, value: value))
            }
            return pairs
        }
        for _ in 0..<20_000 {
            let length = Int(next() % 24)
            let text = String(decoding: (0..<length).map { _ in alphabet[Int(next() % UInt64(alphabet.count))] }, as: UTF8.self)
            #expect(ForwardedClientCert(header: text)?.elements.first == naive(text), "\(text.debugDescription)")
        }
    }
}

private extension Substring {
    func trimmingCharacters(in set: String) -> String {
        var s = self
        while let c = s.first, set.contains(c) { s.removeFirst() }
        while let c = s.last, set.contains(c) { s.removeLast() }
        return String(s)
    }
}
