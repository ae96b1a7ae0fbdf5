import Testing
@testable import MeshAuthz

/// The string forms of §5–§8 of the reference, one row per edge.
@Suite struct ValueMatchingTests {
    @Test(arguments: [
        ("abc", "abc", true), ("abc", "abcd", false), ("abc*", "abc", true), ("abc*", "abcd", true),
        ("abc*", "ab", false), ("*abc", "xabc", true), ("*abc", "abc", true), ("*", "x", true), ("*", "", false),
        ("a*b", "a*b", true), ("a*b", "axb", false),
    ])
    func istioString(_ pattern: String, _ value: String, _ expected: Bool) {
        #expect(ValueMatching.istioString(pattern, value) == expected)
    }

    @Test(arguments: [
        ("cluster.local/ns/default/sa/a", "spiffe://cluster.local/ns/default/sa/a", true),
        ("spiffe://cluster.local/ns/default/sa/a", "spiffe://cluster.local/ns/default/sa/a", false),
        ("cluster.local/ns/default/*", "spiffe://cluster.local/ns/default/sa/a", true),
        ("*/sa/a", "spiffe://cluster.local/ns/default/sa/a", true),
        ("*", "spiffe://x", true),
    ])
    func principals(_ pattern: String, _ principal: String, _ expected: Bool) {
        #expect(ValueMatching.istioString(pattern, principal, prefix: "spiffe://") == expected)
    }

    @Test(arguments: [
        ("prod", "spiffe://cluster.local/ns/prod/sa/x", true), ("prod", "spiffe://cluster.local/ns/prod-eu/sa/x", false),
        ("prod*", "spiffe://cluster.local/ns/prod-eu/sa/x", true), ("*", "spiffe://td/ns/a/sa/b", true),
        ("*-eu", "spiffe://td/ns/prod-eu/sa/b", true),
    ])
    func namespaces(_ pattern: String, _ principal: String, _ expected: Bool) {
        #expect(ValueMatching.namespace(pattern, principal) == expected)
    }

    @Test(arguments: [
        ("my-sa", "spiffe://td/ns/pol-ns/sa/my-sa", true), ("my-sa", "spiffe://td/ns/other/sa/my-sa", false),
        ("ns1/sa1", "spiffe://other-td/ns/ns1/sa/sa1", true), ("ns1/sa1", "spiffe://td/ns/ns1/sa/sa1-junk", false),
        ("ns1/sa1", "spiffe://td/ns/ns1/k/v/sa/sa1/extra", true), ("ns1/sa1", "spiffe://td/ns/ns1/sa/sa1/", false),
    ])
    func serviceAccounts(_ pattern: String, _ principal: String, _ expected: Bool) {
        #expect(ValueMatching.serviceAccount(pattern, principal, policyNamespace: "pol-ns") == expected)
    }

    @Test(arguments: [
        ("iss/sub", "iss", "sub", true), ("iss", "iss", "", true), ("iss", "iss", "sub", false),
        ("*", "i", "s", true), ("https://a.com/*", "https://a.com", "x", true), ("*/sub", "any", "sub", true),
        ("*com/sub", "https://a.com", "sub", true), ("iss/x*", "iss", "xyz", true), ("*z", "iss", "xyz", true),
        ("https://a*", "https://a.com", "x", false),
    ])
    func requestPrincipals(_ pattern: String, _ issuer: String, _ subject: String, _ expected: Bool) {
        #expect(ValueMatching.requestPrincipal(pattern, issuer: issuer, subject: subject) == expected)
    }

    @Test(arguments: [
        ("/users/{*}/profile", "/users/42/profile", true), ("/users/{*}/profile", "/users/4/2/profile", false),
        ("/users/{*}/profile", "/users//profile", false), ("/static/{**}", "/static/", true),
        ("/static/{**}", "/static", false), ("/static/{**}", "/static/a/b.css", true),
        ("/{**}/path/template", "/a/b/path/template", true), ("/path/template/{*}", "/path/template/a=b", true),
        ("/path/template/{*}", "/path/template/a[b", false), ("/a/{*}", "/a/b?c=d", true),
        ("/api/*", "/api", false), ("/api*", "/apiary", true), ("*.json", "/x.json#frag", true),
    ])
    func paths(_ pattern: String, _ path: String, _ expected: Bool) {
        #expect(ValueMatching.path(pattern, path) == expected)
    }

    @Test(arguments: [
        ("Example.COM", "example.com", true), ("*.example.com", "API.example.com", true),
        ("example.com", "example.com:8080", false), ("example.com*", "example.com:8080", true), ("*", "", true),
    ])
    func hosts(_ pattern: String, _ host: String, _ expected: Bool) {
        #expect(ValueMatching.host(pattern, host) == expected)
    }

    @Test(arguments: [
        ("10.0.0.0/8", "10.1.2.3", true), ("10.0.0.0/8", "11.0.0.1", false), ("1.2.3.4", "1.2.3.4", true),
        ("2001:db8::/32", "2001:db8::1", true), ("10.0.0.0/8", "::ffff:10.0.0.1", true), ("0.0.0.0/0", "::1", false),
    ])
    func cidrs(_ block: String, _ address: String, _ expected: Bool) throws {
        let cidr = try #require(CIDR(block))
        let ip = try #require(IPAddress(address))
        #expect(cidr.contains(ip) == expected)
    }

    @Test(arguments: ["10.0.0.0/33", "1.2.3", "01.2.3.4", "1.2.3.4/", "::g", "abc"])
    func invalidCIDRsAreRejected(_ text: String) {
        #expect(CIDR(text) == nil)
    }
}
