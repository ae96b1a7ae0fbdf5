/// What `meshauthz --version` prints and `meshauthz_build_info{version,swift}` reports.
public enum BuildInfo {
    /// The release this source tree becomes; bumped when one is tagged.
    public static let version = "0.2.0-dev"

    /// The compiler that built the binary (major.minor), known at compile time.
    public static let swift: String = {
        #if compiler(>=6.4)
        return "6.4+"
        #elseif compiler(>=6.3)
        return "6.3"
        #elseif compiler(>=6.2)
        return "6.2"
        #elseif compiler(>=6.1)
        return "6.1"
        #else
        return "6.0"
        #endif
    }()

    /// `meshauthz --version`.
    public static var versionLine: String { "meshauthz \(version) (swift \(swift))" }
}
