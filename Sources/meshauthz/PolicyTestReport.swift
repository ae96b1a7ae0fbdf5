import MeshAuthz

/// What `meshauthz test` prints: text for people, JSON for tools. A failure carries the explanation of the
/// decision it got (the fields that did not match), so the reader need not rerun anything.
enum PolicyTestReport {
    static func text(_ results: [PolicyTestRunner.FileResult], _ summary: PolicyTestRunner.Summary) -> String {
        var out = ""
        for result in results {
            if !result.errors.isEmpty {
                out += "ERROR \(result.file): cannot run\n"
                for error in result.errors { out += "    \(error)\n" }
                continue
            }
            let failed = result.checks.filter { !$0.passed }
            if failed.isEmpty {
                out += "ok    \(result.file): \(result.checks.count) check\(result.checks.count == 1 ? "" : "s")\n"
                continue
            }
            for check in failed {
                out += "FAIL  \(check.check.location.file):\(check.check.location.line) \(check.check.displayName)\n"
                for failure in check.failures { out += "    \(failure)\n" }
                if let explanation = check.answer.explanation { out += explanation.text(indent: "    | ") }
            }
            out += "FAIL  \(result.file): \(failed.count) of \(result.checks.count) checks failed\n"
        }
        out += "\(summary.passed) passed, \(summary.failed) failed"
        if summary.errors > 0 { out += ", \(summary.errors) file\(summary.errors == 1 ? "" : "s") could not run" }
        return out + "\n"
    }

    /// `{"passed": N, "failed": M, "errors": E, "files": [{"file", "errors": [...], "checks": [{"index", "name",
    /// "line", "passed", "failures": [...], "answer": {...}}]}]}`; a failed check's answer carries `explain`.
    static func json(_ results: [PolicyTestRunner.FileResult], _ summary: PolicyTestRunner.Summary) -> [UInt8] {
        var w = JSONWriter(capacity: 4096)
        w.beginObject()
        w.key("passed"); w.number(summary.passed)
        w.key("failed"); w.number(summary.failed)
        w.key("errors"); w.number(summary.errors)
        w.key("files")
        w.beginArray()
        for result in results {
            w.beginObject()
            w.key("file"); w.string(result.file)
            w.key("errors")
            w.beginArray()
            for error in result.errors { w.string(error.description) }
            w.endArray()
            w.key("checks")
            w.beginArray()
            for check in result.checks {
                w.beginObject()
                w.key("index"); w.number(check.check.index)
                w.key("name"); w.optionalString(check.check.name)
                w.key("line"); w.number(check.check.location.line)
                w.key("passed"); w.bool(check.passed)
                w.key("failures")
                w.beginArray()
                for failure in check.failures { w.string(failure) }
                w.endArray()
                w.key("answer"); w.rawValue(check.answer.jsonBytes)
                w.endObject()
            }
            w.endArray()
            w.endObject()
        }
        w.endArray()
        w.endObject()
        var bytes = w.bytes
        bytes.append(0x0A)
        return bytes
    }
}
