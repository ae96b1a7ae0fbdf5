// swift-tools-version:6.0
import PackageDescription

/// One libFuzzer executable per name, `Fuzz/<name>/<name>Fuzzer.swift`, product `Fuzz<name>`; its check is
/// `<name>Check` in Fuzz/Checks and its seeds are under Fuzz/corpus/<name>/. Adding one (the gateway
/// header reader's, say) is a name here plus those two files. They build in a normal `swift build` too:
/// there each is a replayer of input files (Fuzz/README.md says how).
let fuzzers = ["PolicyLoader", "CheckBody", "ForwardedClientCert", "PathNormalization", "Differential", "GatewayHeaders", "JWT"]

/// `-parse-as-library`: a lone file of an executable target is otherwise its top-level code, whose
/// entry point would clash with the replayer's `<module>_main` and, under --sanitize=fuzzer, libFuzzer's `main`.
func fuzzer(_ name: String) -> Target {
    .executableTarget(name: "Fuzz" + name, dependencies: ["MeshAuthzFuzzChecks"], path: "Fuzz/" + name,
                      swiftSettings: [.unsafeFlags(["-parse-as-library"])])
}

let package = Package(
    name: "meshauthz",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "meshauthz", targets: ["meshauthz"]),
        .library(name: "MeshAuthz", targets: ["MeshAuthz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // JWT signatures (RS*, PS*, ES*, EdDSA) are verified by swift-crypto (BoringSSL), never by our code.
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
    ],
    targets: [
        // C interop lives here and in MicroHTTPD only.
        .systemLibrary(
            name: "CMicroHTTPD",
            pkgConfig: "libmicrohttpd",
            providers: [.apt(["libmicrohttpd-dev"])]
        ),
        .systemLibrary(
            name: "CGnuTLS",
            pkgConfig: "gnutls",
            providers: [.apt(["libgnutls28-dev"])]
        ),
        .target(name: "MicroHTTPD", dependencies: ["CMicroHTTPD", "CGnuTLS"]),
        .testTarget(name: "MicroHTTPDTests", dependencies: ["MicroHTTPD", "CGnuTLS"]),
        // The pure core: model, loading, validation, evaluators. No I/O.
        .target(name: "MeshAuthz", dependencies: [
            .product(name: "Yams", package: "Yams"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "CryptoExtras", package: "swift-crypto"),
        ], exclude: ["Compiled/README.md"]),
        .target(
            name: "MeshAuthzServer",
            dependencies: [
                "MeshAuthz", "MicroHTTPD",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "meshauthz",
            dependencies: [
                "MeshAuthzServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Crypto: the tests sign their own tokens.
        .testTarget(name: "MeshAuthzTests", dependencies: ["MeshAuthz", .product(name: "Crypto", package: "swift-crypto")]),
        // In-process benchmark of the compiled matcher vs the reference evaluator (Benchmarks/run.sh).
        .executableTarget(name: "MeshAuthzBench", dependencies: [
            "MeshAuthz", .product(name: "Crypto", package: "swift-crypto"), .product(name: "CryptoExtras", package: "swift-crypto"),
        ], path: "Benchmarks/MeshAuthzBench"),
        // The HTTP binding vs the C libmicrohttpd baseline (Benchmarks/baseline-c/compare.sh).
        .executableTarget(name: "MicroHTTPDBench", dependencies: ["MicroHTTPD"], path: "Benchmarks/MicroHTTPDBench"),
        // Fuzzing (Fuzz/README.md): the checks, shared by the fuzzers and the regression tests.
        .target(name: "MeshAuthzFuzzChecks", dependencies: ["MeshAuthz"], path: "Fuzz/Checks"),
        .testTarget(name: "FuzzRegressionTests", dependencies: ["MeshAuthzFuzzChecks"]),
    ] + fuzzers.map(fuzzer)
)
