/// The two hash tables a decision starts with: namespace → scope, and (namespace, label key, label value) →
/// selector groups and gateway bucket. At 10,000 policies they are far larger than a core's caches, so each
/// probe is a miss: slots are laid out so that a probe reads two whole cache lines whose addresses are
/// known at once (`Frozen` aligns them to 64 bytes), and the label slots are keyed by the namespace's name
/// hash rather than its scope number, so that they can be asked for before the namespace slot arrives.

/// Namespace → scope. Empty slots have `scope == -1`. 128 bytes: the scope's data, hash and scope in the
/// first cache line, the name in the second (inline: Kubernetes names are at most 63 bytes, and rarely more
/// than 56), instead of a run in the arena read only after the slot arrived.
struct NamespaceSlot: Sendable {
    /// A copy of `scopes[scope]`.
    var data: Scope
    var hash: UInt64
    var scope: Int32
    var isInline: Bool
    var nameCount: UInt8
    var inlineName: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
    /// The name in the arena when it does not fit inline.
    var name: ByteRun

    static let inlineCapacity = 56
    static let inlineOffset = MemoryLayout<NamespaceSlot>.offset(of: \NamespaceSlot.inlineName)!
    static let empty = NamespaceSlot(data: .none, hash: 0, scope: -1, isInline: false, nameCount: 0,
                                     inlineName: (0, 0, 0, 0, 0, 0, 0), name: .empty)

    init(data: Scope, hash: UInt64, scope: Int32, isInline: Bool, nameCount: UInt8,
         inlineName: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64), name: ByteRun) {
        self.data = data
        self.hash = hash
        self.scope = scope
        self.isInline = isInline
        self.nameCount = nameCount
        self.inlineName = inlineName
        self.name = name
    }

    /// A filled slot; the name goes inline when it fits, else into `arena`.
    init(name bytes: [UInt8], hash: UInt64, scope: Int32, data: Scope, arena: inout ByteArenaBuilder) {
        self = .empty
        self.data = data
        self.hash = hash
        self.scope = scope
        if bytes.count <= Self.inlineCapacity {
            isInline = true
            nameCount = UInt8(bytes.count)
            withUnsafeMutableBytes(of: &inlineName) { $0.copyBytes(from: bytes) }
        } else {
            name = arena.add(bytes)
        }
    }
}

/// (namespace, label key, label value) → selector groups and gateway bucket. Empty slots have `scope == -1`.
/// 128 bytes, all of it read by a probe that finds the label.
struct LabelSlot: Sendable {
    /// Of the label and the namespace's name (`labelSlotHash`).
    var hash: UInt64
    var scope: Int32
    var isInline: Bool
    var keyCount: UInt8
    var valueCount: UInt8
    /// Key then value bytes when they fit (`isInline`); otherwise the first 16 bytes are the arena runs of
    /// the key and the value (`key`, `value`).
    var text: (UInt64, UInt64, UInt64, UInt64)
    /// The first selector group filed under this label (`groups[firstGroupIndex]`, copied), then any others.
    var firstGroupIndex: Int32
    var firstGroup: SelectorGroup
    var groupsStart: UInt32
    var groupsEnd: UInt32
    var gatewayBucket: Int32
    /// A copy of `buckets[gatewayBucket]`.
    var gateway: Bucket
    /// The default-deny text when the gateway's and the wide buckets' ALLOW policies are all that apply.
    var gatewayReason: Int32

    static let inlineCapacity = 32
    static let inlineOffset = MemoryLayout<LabelSlot>.offset(of: \LabelSlot.text)!

    var key: ByteRun {
        get { withUnsafeBytes(of: text) { $0.load(as: ByteRun.self) } }
        set { withUnsafeMutableBytes(of: &text) { $0.storeBytes(of: newValue, as: ByteRun.self) } }
    }

    var value: ByteRun {
        get { withUnsafeBytes(of: text) { $0.load(fromByteOffset: MemoryLayout<ByteRun>.stride, as: ByteRun.self) } }
        set { withUnsafeMutableBytes(of: &text) { $0.storeBytes(of: newValue, toByteOffset: MemoryLayout<ByteRun>.stride, as: ByteRun.self) } }
    }
}

/// Where a label is filed in the label table: its key and value with the name of the namespace it is
/// selected in (not the scope number, which is known only once the namespace slot has been read).
@inline(__always)
func labelSlotHash(_ labelHash: UInt64, namespaceHash: UInt64) -> UInt64 {
    combineHash(labelHash, namespaceHash)
}

extension CompiledTables {
    /// The slot of `namespace` (whose name hashes to `hash`), -1 for none.
    @inline(__always)
    func findScope(_ namespace: Bytes, hash: UInt64) -> Int {
        let mask = namespaceTable.count - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        while true {
            let slot = namespaceTable.base + i
            if slot.pointee.scope < 0 { return -1 }
            if slot.pointee.hash == hash {
                if slot.pointee.isInline {
                    let text = (UnsafeRawPointer(slot) + NamespaceSlot.inlineOffset).assumingMemoryBound(to: UInt8.self)
                    if namespace.count == Int(slot.pointee.nameCount) && namespace.equals(Bytes(start: text, count: namespace.count)) {
                        return i
                    }
                } else if arena.bytes(slot.pointee.name).equals(namespace) {
                    return i
                }
            }
            i = (i + 1) & mask
        }
    }

    /// Asks for the cache lines of the label slot where a probe for `label` in the namespace whose name
    /// hashes to `namespaceHash` starts (a load whose value only feeds `keep`).
    @inline(__always)
    func touchLabelSlot(_ label: LabelView, namespaceHash: UInt64) -> UInt32 {
        let i = Int(truncatingIfNeeded: labelSlotHash(label.hash, namespaceHash: namespaceHash)) & (labelTable.count - 1)
        let slot = UnsafeRawPointer(labelTable.base + i)
        return slot.load(as: UInt32.self) &+ slot.load(fromByteOffset: 64, as: UInt32.self)
    }

    /// The slot of `label` in `scope` (whose namespace's name hashes to `namespaceHash`), -1 for none.
    @inline(__always)
    func findLabel(_ scope: Int32, namespaceHash: UInt64, _ label: LabelView) -> Int {
        let mask = labelTable.count - 1
        let hash = labelSlotHash(label.hash, namespaceHash: namespaceHash)
        var i = Int(truncatingIfNeeded: hash) & mask
        while true {
            let slot = labelTable[i]
            if slot.scope < 0 { return -1 }
            if slot.hash == hash && slot.scope == scope {
                if slot.isInline {
                    let text = (UnsafeRawPointer(labelTable.base + i) + LabelSlot.inlineOffset).assumingMemoryBound(to: UInt8.self)
                    let keyCount = Int(slot.keyCount), valueCount = Int(slot.valueCount)
                    if label.key.count == keyCount && label.value.count == valueCount
                        && label.key.equals(Bytes(start: text, count: keyCount))
                        && label.value.equals(Bytes(start: text + keyCount, count: valueCount)) {
                        return i
                    }
                } else if arena.bytes(slot.key).equals(label.key) && arena.bytes(slot.value).equals(label.value) {
                    return i
                }
            }
            i = (i + 1) & mask
        }
    }
}

// MARK: What the slots point to (plain values in `Frozen` arrays)

let namespaceSeed: UInt64 = 0x6E61_6D65_7370_6163
let labelKeySeed: UInt64 = 0x6C61_6265_6C6B_6579
let labelValueSeed: UInt64 = 0x6C61_6265_6C76_616C

/// Policies that apply to exactly the same workloads, and their rule records.
struct Bucket: Sendable {
    static let empty = Bucket(programStart: 0, programEnd: 0, allowStart: 0, allowEnd: 0, index: -1)

    /// `program[programStart ..< programEnd]`: the records of the bucket's rules, in evaluation order.
    var programStart: UInt32
    var programEnd: UInt32
    /// `lists[allowStart ..< allowEnd]`: enforced ALLOW policies (ordinals, ascending).
    var allowStart: UInt32
    var allowEnd: UInt32
    /// `indices[index]`, or -1 when the bucket is scanned rule by rule.
    var index: Int32
}

/// The candidate index of a bucket with many rules: each rule is filed under one dimension.
struct CandidateIndex: Sendable {
    /// Rules with no indexable field: always candidates.
    var alwaysStart: UInt32
    var alwaysEnd: UInt32
    var principal: StringIndex
    var path: StringIndex
    var host: StringIndex
    var method: StringIndex
    /// `portEntries[portsStart ..< portsEnd]`, sorted by port.
    var portsStart: UInt32
    var portsEnd: UInt32
}

/// Candidate rules by one string attribute.
struct StringIndex: Sendable {
    /// Trie roots (-1: none): exact and prefix keys; suffix keys reversed.
    var forward: Int32
    var backward: Int32
    /// Rules asking only that the attribute be present (`*`).
    var presentStart: UInt32
    var presentEnd: UInt32
    var isUsed: Bool { forward >= 0 || backward >= 0 || presentStart < presentEnd }
    static let unused = StringIndex(forward: -1, backward: -1, presentStart: 0, presentEnd: 0)
}

struct PortEntry: Sendable {
    var port: Int
    var start: UInt32
    var end: UInt32
}

/// A namespace: its wide bucket and the mTLS mode its levels above the workload resolve to.
struct Scope: Sendable {
    /// Namespace-wide policies (mesh-wide in the root namespace), -1 for none; `wide` is a copy of it (one
    /// load fewer on the decision path).
    var wideBucket: Int32
    var wide: Bucket
    /// Mesh level then this namespace's level.
    var mode: MTLSMode
    var decidedBy: Int32
    /// The default-deny text when only the wide buckets have ALLOW policies.
    var wideReason: Int32
    /// Bit `keyHash >> 58` is set for each label key the scope's selector groups are filed under (and the
    /// gateway label when it has targetRefs policies).
    var keyFilter: UInt64

    static let none = Scope(wideBucket: -1, wide: .empty, mode: .permissive, decidedBy: -1, wideReason: -1, keyFilter: 0)
}

/// Policies of one namespace with one selector, and the first PeerAuthentication with that selector.
struct SelectorGroup: Sendable {
    static let empty = SelectorGroup(bucket: -1, body: .empty, peerAuth: -1, othersStart: 0, othersEnd: 0, reason: -1)

    var bucket: Int32
    /// A copy of `buckets[bucket]`.
    var body: Bucket
    var peerAuth: Int32
    /// `groupLabels[othersStart ..< othersEnd]`: the selector's labels other than the one it is filed under.
    var othersStart: UInt32
    var othersEnd: UInt32
    /// The default-deny text when this group and the wide buckets are the ALLOW policies that apply.
    var reason: Int32
}

struct LabelRuns: Sendable {
    var key: ByteRun
    var value: ByteRun
}

/// A workload-level PeerAuthentication: its mode and `peerPorts[portsStart ..< portsEnd]`.
struct PeerEntry: Sendable {
    var mode: MTLSMode
    var portsStart: UInt32
    var portsEnd: UInt32
}

struct PeerPort: Sendable {
    var port: Int
    var mode: MTLSMode
}
