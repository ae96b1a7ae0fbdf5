/// The two forms `lint` prints findings in.
public enum FindingReport {
    /// One line per finding, `FILE:LINE:COL: severity [CODE] (resource) message`, its fix on the next
    /// line, then a summary line counting each severity.
    public static func text(_ findings: [Finding]) -> String {
        var out = ""
        for finding in findings {
            out += "\(finding.location): \(finding.severity.rawValue) [\(finding.code.rawValue)]"
            if !finding.resource.isEmpty { out += " (\(finding.resource))" }
            out += " \(finding.message)\n"
            if let fix = finding.fix { out += "    fix: \(fix)\n" }
        }
        let counts = Finding.Severity.allCases.reversed().map { severity in
            let count = findings.filter { $0.severity == severity }.count
            return "\(count) \(severity.rawValue)\(severity == .info || count == 1 ? "" : "s")"
        }
        out += findings.isEmpty ? "no findings\n" : counts.joined(separator: ", ") + "\n"
        return out
    }

    /// An array of `{"code","severity","file","line","column","resource","message","fix"}` (`fix` null
    /// when there is none), in the order of `text`.
    public static func json(_ findings: [Finding]) -> [UInt8] {
        var writer = JSONWriter(capacity: 256 * findings.count + 16)
        writer.beginArray()
        for finding in findings {
            writer.beginObject()
            writer.key("code")
            writer.string(finding.code.rawValue)
            writer.key("severity")
            writer.string(finding.severity.rawValue)
            writer.key("file")
            writer.string(finding.location.file)
            writer.key("line")
            writer.number(finding.location.line)
            writer.key("column")
            writer.number(finding.location.column)
            writer.key("resource")
            writer.string(finding.resource)
            writer.key("message")
            writer.string(finding.message)
            writer.key("fix")
            writer.optionalString(finding.fix)
            writer.endObject()
        }
        writer.endArray()
        return writer.bytes + [0x0A]
    }
}
