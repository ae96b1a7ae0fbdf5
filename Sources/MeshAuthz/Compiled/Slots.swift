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
    var data: ScopeHot
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

    init(data: ScopeHot, hash: UInt64, scope: Int32, isInline: Bool, nameCount: UInt8,
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
    init(name bytes: [UInt8], hash: UInt64, scope: Int32, data: ScopeHot, arena: inout ByteArenaBuilder) {
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
    var firstGroup: GroupHot
    var groupsStart: UInt32
    var groupsEnd: UInt32
    var gatewayBucket: Int32
    /// A copy of `buckets[gatewayBucket]`.
    var gateway: BucketHot
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

extension CompiledPolicySet {
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
