import MeshAuthz

/// `meshauthz test --junit FILE`: JUnit XML as GitLab, Jenkins and GitHub test reporters read it (the shape of
/// Jenkins' junit-10.xsd, which `Tests/e2e/junit-10.xsd` holds and a test validates every report against).
/// One `testsuite` per test file, one `testcase` per check (`classname` the file, `name` the check's index
/// and name); a failed check has a `failure` whose text is the explanation; a file that could not run is one
/// `testcase` with an `error`.
enum JUnitReport {
    static func xml(_ results: [PolicyTestRunner.FileResult], _ summary: PolicyTestRunner.Summary) -> String {
        let total = results.reduce(0) { $0 + max($1.checks.count, $1.errors.isEmpty ? 0 : 1) }
        let seconds = results.reduce(0) { $0 + $1.seconds }
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out += "<testsuites name=\"meshauthz test\" tests=\"\(total)\" failures=\"\(summary.failed)\" errors=\"\(summary.errors)\" time=\"\(time(seconds))\">\n"
        for (id, result) in results.enumerated() {
            let failures = result.checks.filter { !$0.passed }.count
            let tests = result.errors.isEmpty ? result.checks.count : 1
            out += "  <testsuite name=\"\(escape(result.file))\" id=\"\(id)\" tests=\"\(tests)\" failures=\"\(failures)\" errors=\"\(result.errors.isEmpty ? 0 : 1)\" skipped=\"0\" time=\"\(time(result.seconds))\">\n"
            if !result.errors.isEmpty {
                let text = result.errors.map(\.description).joined(separator: "\n")
                out += "    <testcase classname=\"\(escape(result.file))\" name=\"load\" time=\"0\">\n"
                out += "      <error message=\"\(escape(result.errors[0].description))\" type=\"invalid\">\(escape(text))</error>\n"
                out += "    </testcase>\n"
            }
            for check in result.checks {
                out += "    <testcase classname=\"\(escape(result.file))\" name=\"\(escape(check.check.displayName))\" time=\"0\""
                if check.passed {
                    out += "/>\n"
                    continue
                }
                var text = check.failures.joined(separator: "\n") + "\n"
                if let explanation = check.answer.explanation { text += explanation.text() }
                out += ">\n      <failure message=\"\(escape(check.failures.joined(separator: "; ")))\" type=\"\(check.answer.decision.allowed ? "ALLOW" : "DENY")\">"
                out += escape(text) + "</failure>\n    </testcase>\n"
            }
            out += "  </testsuite>\n"
        }
        return out + "</testsuites>\n"
    }

    /// Seconds with millisecond precision, as reporters expect (`0.004`).
    static func time(_ seconds: Double) -> String {
        let millis = Int((seconds * 1000).rounded())
        let fraction = String(millis % 1000)
        return "\(millis / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    /// Text safe in an attribute or element: the five entities escaped, line breaks and tabs kept as character
    /// references (attributes would fold them), and characters XML 1.0 forbids (control bytes a test file's
    /// `name` may carry) replaced by U+FFFD: a report must always parse.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\n": out += "&#10;"
            case "\t": out += "&#9;"
            case "\r": out += "&#13;"
            default:
                let v = scalar.value
                let allowed = (v >= 0x20 && v <= 0xD7FF) || (v >= 0xE000 && v <= 0xFFFD) || v >= 0x10000
                out.unicodeScalars.append(allowed ? scalar : "\u{FFFD}")
            }
        }
        return out
    }
}
