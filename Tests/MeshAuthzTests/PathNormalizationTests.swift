import MeshAuthz
import Testing

struct PathNormalizationTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let target: String
        let path: String?
        let query: String?
        let fragment: String?
        var testDescription: String { target }
        init(_ target: String, _ path: String?, query: String? = nil, fragment: String? = nil) {
            self.target = target
            self.path = path
            self.query = query
            self.fragment = fragment
        }
    }

    /// Expectations marked "Envoy" were observed with Envoy 1.40.0 (`normalize_path: true`).
    static let cases: [Case] = [
        // Unchanged
        Case("/", "/"),
        Case("/api/users", "/api/users"),
        Case("/A/b/C", "/A/b/C"),  // case kept (Envoy)
        Case("/a//b", "/a//b"),  // slashes not merged under BASE (Envoy)
        Case("/a/", "/a/"),
        Case("/a/.b/..c/...", "/a/.b/..c/..."),  // dots inside names are not segments (Envoy)
        Case("/a.b", "/a.b"),
        Case("/a;b/c:d@e!$&'()*+,=", "/a;b/c:d@e!$&'()*+,="),
        Case("/~a/[x]", "/~a/[x]"),
        // Dot segments (Envoy)
        Case("/a/./b/../c", "/a/c"),
        Case("/..", "/"),
        Case("/../../a", "/a"),
        Case("/a/../../../b", "/b"),
        Case("/.", "/"),
        Case("/./a", "/a"),
        Case("/a/.", "/a/"),
        Case("/a/b/..", "/a/"),
        Case("/a/b/.", "/a/b/"),
        Case("/a/./", "/a/"),
        Case("/a/..//b", "//b"),
        Case("/a//../b", "/a/b"),
        Case("//..", "/"),
        Case("/a/b/../../..", "/"),
        // Percent-decoding of unreserved characters, once (Envoy)
        Case("/%2e%2E/x", "/x"),
        Case("/a/%2e%2e/b", "/b"),
        Case("/a/%2e%2e", "/"),
        Case("/a/.%2e", "/"),
        Case("/a/%2e./b", "/b"),
        Case("/%2e", "/"),
        Case("/a%2eb", "/a.b"),
        Case("/%7e%7E%41%61", "/~~Aa"),
        Case("/a%2d%5f%2E%30%39", "/a-_.09"),
        Case("/%61pi/users", "/api/users"),
        Case("/a%252e", "/a%252e"),  // decoded once: %25 stays, no %2e appears
        Case("/a%25%32%65", "/a%252e"),
        // Kept escapes, case preserved (Envoy)
        Case("/a%2fb", "/a%2fb"),
        Case("/a%2Fb", "/a%2Fb"),
        Case("/a%5cb", "/a%5cb"),
        Case("/a%5C..%5Cb", "/a%5C..%5Cb"),
        Case("/%2e%2e%5c", "/..%5c"),
        Case("/a/..%2f", "/a/..%2f"),
        Case("/a/b%2f..", "/a/b%2f.."),
        Case("/a%3f%23%25%20", "/a%3f%23%25%20"),
        Case("/a%C3%A9", "/a%C3%A9"),
        Case("/a%c3%a9", "/a%c3%a9"),
        Case("/a%41%2F", "/aA%2F"),
        // Backslashes (Envoy)
        Case("/a\\b", "/a/b"),
        Case("/a\\..\\b", "/b"),
        Case("\\a", nil),  // does not start with "/"
        Case("/\\..\\..\\etc", "/etc"),
        // Characters Envoy escapes (upper-case hex)
        Case("/a|b", "/a%7Cb"),
        Case("/a^b", "/a%5Eb"),
        Case("/a`b", "/a%60b"),
        Case("/a{b}", "/a%7Bb%7D"),
        Case("/a\"b", "/a%22b"),
        Case("/a<b>", "/a%3Cb%3E"),
        // Query and fragment: split off, kept raw
        Case("/a?x=1", "/a", query: "x=1"),
        Case("/a?", "/a", query: ""),
        Case("/a/..?q", "/", query: "q"),
        Case("/a?x=%2e&y=..", "/a", query: "x=%2e&y=.."),
        Case("/a?b/../c", "/a", query: "b/../c"),
        Case("/a#frag", "/a", fragment: "frag"),
        Case("/a?x#f", "/a", query: "x", fragment: "f"),
        Case("/a#b?c", "/a", fragment: "b?c"),
        Case("/a/./b?x", "/a/b", query: "x"),
        Case("/a/.?x", "/a/", query: "x"),
        Case("/a/..#f", "/", fragment: "f"),
        Case("/a?%00", "/a", query: "%00"),  // the query is not the path
        Case("/%2e%2e/admin?%2e%2e", "/admin", query: "%2e%2e"),
        // Rejected (nil → 400 / deny)
        Case("/a%00b", nil),
        Case("/a/..%00", nil),
        Case("/a%zzb", nil),  // Envoy's legacy normalizer passes this; we fail closed (as Envoy's UHV does)
        Case("/a%", nil),
        Case("/a%2", nil),
        Case("/%%30%30", nil),
        Case("/a%g0", nil),
        Case("", nil),
        Case("a/b", nil),
        Case("*", nil),
        Case("?x", nil),
        Case("http://x/a/../b", nil),
        Case("/a b", nil),
        Case("/a\tb", nil),
        Case("/a\u{7F}b", nil),
        Case("/a\u{0}b", nil),
        Case("/café", nil),  // raw non-ASCII: Envoy's codec answers 400
    ]

    @Test(arguments: cases)
    func normalizes(_ test: Case) {
        let result = PathNormalization.base(test.target[...])
        #expect(result.map { String($0.path) } == test.path)
        if let result {
            #expect(result.query.map(String.init) == test.query)
            #expect(result.fragment.map(String.init) == test.fragment)
        }
        #expect(PathNormalization.base(test.target) == result)
        // The gateway path's byte form gives the same `path?query`.
        let bytes = Array(test.target.utf8).withUnsafeBufferPointer { target in
            PathNormalization.withBase(target) { $0.map { String(decoding: $0, as: UTF8.self) } }
        }
        #expect(bytes == result?.pathWithQuery)
    }

    @Test(arguments: cases.filter { $0.path != nil })
    func isIdempotent(_ test: Case) {
        // Normalizing a normalized path changes nothing (no double decoding: %25 stays %25).
        let once = PathNormalization.base(test.target)!
        let twice = PathNormalization.base(once.path)
        #expect(twice.map { String($0.path) } == String(once.path))
    }

    @Test func pathWithQuery() {
        #expect(PathNormalization.base("/a/../b?x=1#f")?.pathWithQuery == "/b?x=1")
        #expect(PathNormalization.base("/a/../b#f")?.pathWithQuery == "/b")
        #expect(PathNormalization.base("/b?")?.pathWithQuery == "/b?")
    }

    @Test func fastPathReturnsASliceOfTheInput() {
        let target = "/api/v1/users/42?verbose=1"
        let result = PathNormalization.base(target[...])!
        #expect(result.path == "/api/v1/users/42")
        // Same storage: the slice starts where the input starts.
        #expect(result.path.startIndex == target.startIndex)
        #expect(result.path.base == target)
    }

    @Test func worksOnASubstringInTheMiddleOfAString() {
        let line = "GET /a/%2e%2e/b?q=1 HTTP/1.1"
        let parts = line.split(separator: " ")
        let result = PathNormalization.base(parts[1])
        #expect(result?.path == "/b")
        #expect(result?.query == "q=1")
    }
}
