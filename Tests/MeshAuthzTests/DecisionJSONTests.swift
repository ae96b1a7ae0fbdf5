import MeshAuthz
import Testing

struct DecisionJSONTests {
    static let apiRule = RuleID(policy: ResourceID(namespace: "default", name: "api-policy"), index: 0)

    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let decision: Decision
        let json: String
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "allowed by a rule",
             decision: Decision(allowed: true, stage: .allowPolicy, reason: "matched", rule: apiRule, mtlsMode: .strict),
             json: #"{"allowed":true,"decision":"ALLOW","reason":"matched","policy":"default/api-policy","rule":0,"#
                 + #""ruleId":"ns[default]-policy[api-policy]-rule[0]","stage":"allow-policy","mtlsMode":"STRICT","#
                 + #""dryRun":[],"audit":[]}"#),
        Case(name: "default deny, no rule",
             decision: Decision(allowed: false, stage: .defaultDeny, reason: "no ALLOW policy matched", mtlsMode: .permissive),
             json: #"{"allowed":false,"decision":"DENY","reason":"no ALLOW policy matched","policy":null,"rule":null,"#
                 + #""ruleId":null,"stage":"default-deny","mtlsMode":"PERMISSIVE","dryRun":[],"audit":[]}"#),
        Case(name: "peer authentication, DISABLE",
             decision: Decision(allowed: true, stage: .noAllowPolicy, reason: "r", mtlsMode: .disable),
             json: #"{"allowed":true,"decision":"ALLOW","reason":"r","policy":null,"rule":null,"ruleId":null,"#
                 + #""stage":"no-allow-policy","mtlsMode":"DISABLE","dryRun":[],"audit":[]}"#),
        Case(name: "UNSET reported as the PERMISSIVE default",
             decision: Decision(allowed: true, stage: .noAllowPolicy, reason: "r", mtlsMode: .unset),
             json: #"{"allowed":true,"decision":"ALLOW","reason":"r","policy":null,"rule":null,"ruleId":null,"#
                 + #""stage":"no-allow-policy","mtlsMode":"PERMISSIVE","dryRun":[],"audit":[]}"#),
        Case(name: "dry-run and audit reports",
             decision: Decision(
                allowed: false, stage: .denyPolicy, reason: "deny", rule: RuleID(policy: ResourceID(namespace: "ns", name: "d"), index: 3),
                mtlsMode: .strict,
                dryRun: [
                    Decision.Report(action: .deny, rule: RuleID(policy: ResourceID(namespace: "a", name: "x"), index: 1)),
                    Decision.Report(action: .allow, rule: RuleID(policy: ResourceID(namespace: "a", name: "y"), index: 0)),
                    Decision.Report(action: .audit, rule: RuleID(policy: ResourceID(namespace: "a", name: "z"), index: 2)),
                    Decision.Report(action: .custom, rule: RuleID(policy: ResourceID(namespace: "a", name: "c"), index: 0)),
                ],
                audit: [Decision.Report(action: .audit, rule: RuleID(policy: ResourceID(namespace: "b", name: "au"), index: 12))]),
             json: #"{"allowed":false,"decision":"DENY","reason":"deny","policy":"ns/d","rule":3,"ruleId":"ns[ns]-policy[d]-rule[3]","#
                 + #""stage":"deny-policy","mtlsMode":"STRICT","dryRun":["#
                 + #"{"action":"DENY","policy":"a/x","rule":1,"ruleId":"ns[a]-policy[x]-rule[1]","wouldBe":"DENY"},"#
                 + #"{"action":"ALLOW","policy":"a/y","rule":0,"ruleId":"ns[a]-policy[y]-rule[0]","wouldBe":"ALLOW"},"#
                 + #"{"action":"AUDIT","policy":"a/z","rule":2,"ruleId":"ns[a]-policy[z]-rule[2]","wouldBe":"AUDIT"},"#
                 + #"{"action":"CUSTOM","policy":"a/c","rule":0,"ruleId":"ns[a]-policy[c]-rule[0]","wouldBe":"DENY"}],"#
                 + #""audit":[{"policy":"b/au","rule":12,"ruleId":"ns[b]-policy[au]-rule[12]"}]}"#),
        Case(name: "reason with quotes, controls and non-ASCII",
             decision: Decision(allowed: false, stage: .custom, reason: "a \"q\" \\ \n\t\u{1} é 😀", mtlsMode: .strict),
             json: #"{"allowed":false,"decision":"DENY","reason":"a \"q\" \\ \n\t\u0001 é 😀","policy":null,"rule":null,"#
                 + #""ruleId":null,"stage":"custom","mtlsMode":"STRICT","dryRun":[],"audit":[]}"#),
        Case(name: "not ready",
             decision: Decision.notReady("loading"),
             json: #"{"allowed":false,"decision":"DENY","reason":"no valid policy set is loaded: loading","policy":null,"#
                 + #""rule":null,"ruleId":null,"stage":"not-ready","mtlsMode":"STRICT","dryRun":[],"audit":[]}"#),
    ]

    @Test(arguments: cases)
    func encodesExactly(_ test: Case) throws {
        let bytes = test.decision.jsonBytes
        #expect(String(decoding: bytes, as: UTF8.self) == test.json)
        // And it is JSON.
        let parsed = try JSONParser.parse(bytes)
        #expect(parsed["allowed"] == .bool(test.decision.allowed))
    }

    @Test func batchIsAnArrayInOrder() throws {
        let answers = Self.cases.map { CheckAnswer(decision: $0.decision) }
        let text = String(decoding: CheckAnswer.jsonBytes(answers), as: UTF8.self)
        #expect(text == "[" + Self.cases.map(\.json).joined(separator: ",") + "]")
        #expect(String(decoding: CheckAnswer.jsonBytes([]), as: UTF8.self) == "[]")
    }

    /// `/v1/check` adds `normalizedPath` and `warnings` after the decision's members, only when there are any.
    @Test func answerExtras() throws {
        let test = Self.cases[0]
        let answer = CheckAnswer(decision: test.decision, normalizedPath: "/a\"b", warnings: ["w1", "w\n2"])
        let text = String(decoding: answer.jsonBytes, as: UTF8.self)
        #expect(text == test.json.dropLast() + #","normalizedPath":"/a\"b","warnings":["w1","w\n2"]}"#)
        let parsed = try JSONParser.parse(answer.jsonBytes)
        #expect(parsed["warnings"] == .array([.string("w1"), .string("w\n2")]))
        #expect(String(decoding: CheckAnswer(decision: test.decision).jsonBytes, as: UTF8.self) == test.json)
    }

    @Test func wouldBe() {
        let rule = Self.apiRule
        #expect(Decision.Report(action: .allow, rule: rule).wouldBe == "ALLOW")
        #expect(Decision.Report(action: .deny, rule: rule).wouldBe == "DENY")
        #expect(Decision.Report(action: .audit, rule: rule).wouldBe == "AUDIT")
        #expect(Decision.Report(action: .custom, rule: rule).wouldBe == "DENY")
    }

    struct Escape: Sendable, CustomTestStringConvertible {
        let input: String
        let output: String
        var testDescription: String { input.debugDescription }
    }

    static let escapes: [Escape] = [
        Escape(input: "", output: #""""#),
        Escape(input: "plain", output: #""plain""#),
        Escape(input: "\"", output: #""\"""#),
        Escape(input: "\\", output: #""\\""#),
        Escape(input: "/", output: #""/""#),  // no need to escape the solidus
        Escape(input: "\n\r\t\u{8}\u{C}", output: #""\n\r\t\b\f""#),
        Escape(input: "\u{0}\u{1}\u{1F}", output: #""\u0000\u0001\u001f""#),
        Escape(input: "\u{7F}", output: "\"\u{7F}\""),
        Escape(input: "é中😀\u{2028}", output: "\"é中😀\u{2028}\""),
        Escape(input: "a\"b\\c\nd", output: #""a\"b\\c\nd""#),
    ]

    @Test(arguments: escapes)
    func writerEscapesStrings(_ test: Escape) throws {
        var writer = JSONWriter()
        writer.string(test.input)
        #expect(String(decoding: writer.bytes, as: UTF8.self) == test.output)
        #expect(try JSONParser.parse(writer.bytes) == .string(test.input))
    }

    struct Number: Sendable, CustomTestStringConvertible {
        let value: Double
        let output: String
        var testDescription: String { output }
    }

    static let numbers: [Number] = [
        Number(value: 0, output: "0"),
        Number(value: -0.0, output: "-0"),
        Number(value: 8080, output: "8080"),
        Number(value: -12, output: "-12"),
        Number(value: 0.5, output: "0.5"),
        Number(value: 1e100, output: "1e+100"),
        Number(value: 9_007_199_254_740_992, output: "9007199254740992"),
        Number(value: .infinity, output: "null"),
        Number(value: .nan, output: "null"),
    ]

    @Test(arguments: numbers)
    func writerNumbers(_ test: Number) {
        var writer = JSONWriter()
        writer.number(test.value)
        #expect(String(decoding: writer.bytes, as: UTF8.self) == test.output)
    }

    @Test func writerIntegersAndStructure() {
        var writer = JSONWriter()
        writer.beginArray()
        for value in [0, 7, 10, -1, 1234567890, Int.max, Int.min] { writer.number(value) }
        writer.beginObject()
        writer.key("k\"")
        writer.beginArray()
        writer.endArray()
        writer.key("n")
        writer.null()
        writer.key("o")
        writer.beginObject()
        writer.endObject()
        writer.endObject()
        writer.bool(false)
        writer.endArray()
        #expect(String(decoding: writer.bytes, as: UTF8.self)
                == #"[0,7,10,-1,1234567890,9223372036854775807,-9223372036854775808,{"k\"":[],"n":null,"o":{}},false]"#)
    }

    /// Borrowed bytes (the decision log's header values): escaped like strings; invalid UTF-8 becomes U+FFFD, so
    /// the output always parses.
    @Test(arguments: [
        ([UInt8]("a\"b\n".utf8), #"["a\"b\n",1]"#),
        ([0x68, 0xFF, 0xFE, 0x2E], "[\"h\u{FFFD}\u{FFFD}.\",1]"),
        ([0xC3, 0xA9], "[\"é\",1]"),
        ([], #"["",1]"#),
    ])
    func writerStringFromBytes(_ input: [UInt8], _ output: String) throws {
        var writer = JSONWriter()
        writer.beginArray()
        input.withUnsafeBufferPointer { writer.string(bytes: $0) }
        writer.number(1)
        writer.endArray()
        #expect(String(decoding: writer.bytes, as: UTF8.self) == output)
        _ = try JSONParser.parse(writer.bytes)  // valid JSON: a parse error fails the test
    }

    @Test func writerSortsObjectKeys() {
        let value = JSONValue.object(["b": .number(1), "a": .array([.null, .bool(true)]), "c": .string("x")])
        #expect(String(decoding: value.jsonBytes, as: UTF8.self) == #"{"a":[null,true],"b":1,"c":"x"}"#)
    }
}
