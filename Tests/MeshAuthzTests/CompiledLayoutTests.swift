import Testing
@testable import MeshAuthz

/// The memory layout the compiled matcher's speed at 10,000 policies relies on (see Slots.swift), and the
/// value semantics of `Decision`, whose texts live in one shared object.
@Suite struct CompiledLayoutTests {
    /// `ProgramCode.decode` bit-casts a byte: valid only for one-byte enums whose raw values are 0 ... last.
    @Test func programCodesDecodeExactlyTheirRawValues() {
        func check<E: ProgramCode>(_: E.Type, _ make: (UInt32) -> E?) {
            #expect(MemoryLayout<E>.size == 1, "\(E.self)")
            for raw in UInt32(0)...300 { #expect(E.decode(raw) == make(raw), "\(E.self) \(raw)") }
        }
        check(Attribute.self) { Attribute(rawValue: $0) }
        check(MatcherKind.self) { MatcherKind(rawValue: $0) }
        check(RuleCategory.self) { RuleCategory(rawValue: $0) }
        check(TemplateTokenKind.self) { TemplateTokenKind(rawValue: $0) }
        check(StringPattern.Kind.self) { $0 <= 255 ? StringPattern.Kind(rawValue: UInt8($0)) : nil }
    }

    @Test func hashTableSlotsAreTwoWholeCacheLines() {
        #expect(MemoryLayout<NamespaceSlot>.stride == 128)
        #expect(MemoryLayout<LabelSlot>.stride == 128)
        let table = Frozen([NamespaceSlot.empty, NamespaceSlot.empty])
        #expect(UInt(bitPattern: table.base) % 64 == 0)
    }

    @Test func labelSlotRunsShareTheInlineText() {
        var slot = LabelSlot(hash: 0, scope: -1, isInline: false, keyCount: 0, valueCount: 0, text: (0, 0, 0, 0),
                             firstGroupIndex: -1,
                             firstGroup: SelectorGroup(bucket: -1, body: .empty, peerAuth: -1, othersStart: 0, othersEnd: 0, reason: -1),
                             groupsStart: 0, groupsEnd: 0, gatewayBucket: -1, gateway: .empty, gatewayReason: -1)
        slot.key = ByteRun(start: 7, count: 40)
        slot.value = ByteRun(start: 47, count: 3)
        #expect(slot.key == ByteRun(start: 7, count: 40))
        #expect(slot.value == ByteRun(start: 47, count: 3))
    }

    @Test func longNamespaceNamesAreFoundInTheArena() {
        let long = String(repeating: "n", count: 60)
        let set = PolicySet(authorizationPolicies: [
            AuthorizationPolicy(id: ResourceID(namespace: long, name: "deny-all"), action: .deny, rules: [Rule()]),
        ])
        let compiled = CompiledPolicySet(set)
        let request = CheckRequest(source: .init(principal: "cluster.local/ns/a/sa/b", mtls: true),
                                   destination: .init(namespace: long, labels: ["app": "x"]),
                                   request: .init(method: "GET", path: "/"))
        #expect(compiled.evaluate(request) == ReferenceEvaluator(set).evaluate(request))
        #expect(compiled.evaluate(request).stage == .denyPolicy)
    }

    @Test func decisionsCompareAndHashByValue() {
        let rule = RuleID(policy: ResourceID(namespace: "a", name: "p"), index: 0)
        let one = Decision(allowed: true, stage: .allowPolicy, reason: "r", rule: rule, mtlsMode: .strict)
        var two = Decision(allowed: true, stage: .allowPolicy, reason: "r", rule: rule, mtlsMode: .strict)
        #expect(one == two)
        #expect(one.hashValue == two.hashValue)
        two.reason = "other"
        #expect(one != two)
        #expect(one.reason == "r" && two.reason == "other" && two.rule == rule)
        two.reason = "r"
        two.dryRun = [Decision.Report(action: .deny, rule: rule)]
        #expect(one != two)
        #expect(two.dryRun.count == 1 && two.audit.isEmpty && two.rule == rule)
    }
}
