import MeshAuthzFuzzChecks

// libFuzzer calls this once per input. Built with --sanitize=fuzzer, the executable gets libFuzzer's main.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzEntry.run(JWTCheck.check, data, size)
}

// A normal build links `main` to `<module>_main` (SwiftPM's entry-point renaming), so `swift build`
// links this target too, as a replayer: `FuzzJWT FILE...` runs the check on each file.
@_cdecl("FuzzJWT_main")
public func replay(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    FuzzEntry.replay(JWTCheck.check, argc, argv)
}
