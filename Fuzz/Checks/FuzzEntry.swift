#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fuzz check: runs the code under test on one input and returns the invariants it broke (empty when
/// none). A crash in the code under test is a finding too; libFuzzer catches it as a deadly signal.
public typealias FuzzCheck = @Sendable (UnsafeBufferPointer<UInt8>) -> [String]

/// What every fuzzer executable under `Fuzz/<Name>/` calls. The checks live in this library, not in the
/// executables, so that the regression tests (`swift test`) feed the kept inputs to the same code.
public enum FuzzEntry {
    /// `LLVMFuzzerTestOneInput`: a broken invariant aborts, so libFuzzer keeps the input as a crash.
    public static func run(_ check: FuzzCheck, _ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
        let problems = check(UnsafeBufferPointer(start: data, count: size))
        if !problems.isEmpty {
            for problem in problems { printError("fuzz invariant broken: \(problem)") }
            abort()
        }
        return 0
    }

    /// The entry point of a normal (non-fuzzer) build: runs the check on every file named on the command
    /// line; exits 1 if any broke an invariant, else 2 if one could not be read. Lets a crash input be
    /// replayed under a debugger without libFuzzer.
    public static func replay(_ check: FuzzCheck, _ argc: CInt,
                              _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
        guard argc > 1 else {
            printError("usage: \(String(cString: argv[0]!)) FILE... (a normal build replays inputs; "
                       + "build with --sanitize=fuzzer to fuzz, see Fuzz/README.md)")
            return 2
        }
        var failed = false, unreadable = false
        for index in 1..<Int(argc) {
            let path = String(cString: argv[index]!)
            guard let bytes = readFile(path) else {
                printError("\(path): cannot read (skipped)")
                unreadable = true
                continue
            }
            let problems = bytes.withUnsafeBufferPointer { check($0) }
            for problem in problems { print("\(path): \(problem)") }
            failed = failed || !problems.isEmpty
        }
        return failed ? 1 : unreadable ? 2 : 0
    }

    /// A line on standard error (the `stderr` global is not concurrency-safe in Swift 6).
    static func printError(_ line: String) {
        var line = line + "\n"
        line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }

    /// The whole file, or nil when it cannot be read. (No Foundation: the fuzzers link only what they test.)
    public static func readFile(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if count > 0 { bytes += chunk[..<count] }
            if count < chunk.count { return ferror(file) == 0 ? bytes : nil }
        }
    }
}

extension UnsafeBufferPointer<UInt8> {
    /// The input as text when it is valid UTF-8 (the String-taking APIs only ever see valid text).
    var validUTF8: String? { String(validating: self, as: UTF8.self) }
}

/// `text` as a Substring that does not start at its base's first byte (a slice's offsets must not be
/// taken for its base's). Cut by scalar: `("x" + text).dropFirst()` would drop a combining mark with the x.
func shifted(_ text: String) -> Substring {
    Substring(("x" + text).unicodeScalars.dropFirst())
}
