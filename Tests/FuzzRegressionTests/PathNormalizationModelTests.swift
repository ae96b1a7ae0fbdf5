@testable import MeshAuthzFuzzChecks
import Testing

/// The fuzzer's second implementation of path normalization is only worth comparing against if it
/// follows the rules itself: here it meets the Envoy 1.40 observations listed in PathNormalization.swift,
/// and the invariant checks do flag what they look for.
struct PathNormalizationModelTests {
    static let observed: [(String, String?)] = [
        ("/a/./b/../c", "/a/c"), ("/%2e%2E/x", "/x"), ("/../../a", "/a"), ("/a\\..\\b", "/b"),
        ("/a/..//b", "//b"), ("/a/b/..", "/a/"), ("/a%2fb", "/a%2fb"), ("/%7e%41%61", "/~Aa"),
        ("/a%00b", nil), ("/a|b", "/a%7Cb"), ("/a%zzb", nil), ("/a%", nil), ("*", nil),
        ("/a b", nil), ("/a\u{7F}", nil), ("/\u{E9}", nil), ("/a?x=/../y#f", "/a?x=/../y"), ("/a#f", "/a"),
        ("/public/..%2fadmin", "/public/..%2fadmin"), ("/a/%2e%2e/b", "/b"), ("/.", "/"), ("/a/.", "/a/"),
    ]

    @Test(arguments: observed.indices)
    func modelMatchesEnvoy(_ index: Int) {
        let (target, expected) = Self.observed[index]
        let actual = PathNormalizationModel.normalize(Array(target.utf8))
        #expect(actual.map { String(decoding: $0, as: UTF8.self) } == expected, "\(target)")
    }

    @Test func invariantsFlagWhatTheyCheck() {
        let input: [UInt8] = Array("/x".utf8)
        input.withUnsafeBufferPointer { input in
            #expect(!PathNormalizationCheck.invariants(Array("/a/../b".utf8), input: input).isEmpty)
            #expect(!PathNormalizationCheck.invariants(Array("/a/.".utf8), input: input).isEmpty)
            #expect(!PathNormalizationCheck.invariants(Array("a/b".utf8), input: input).isEmpty)
            #expect(!PathNormalizationCheck.invariants(Array("/a\\b".utf8), input: input).isEmpty)
            #expect(PathNormalizationCheck.invariants(Array("/a/..b/.c?x=/../".utf8), input: input).isEmpty)
        }
    }
}
