/// Path-compressed byte tries (radix trees) from keys to lists of rule ids, for exact and prefix lookups.
/// All tries of a compiled set live in shared pools (`TriePools`): a trie is its root node's index. A key
/// may be stored reversed (suffix lookups) or lower-cased (hosts): it is inserted in that form and looked up
/// with the same `reversed` / `lowered` flags.
struct TrieNode: Sendable {
    /// The edge bytes leading here from the parent (the first selects the child); empty at a root.
    var labelStart: UInt32
    var labelCount: UInt32
    /// Children are contiguous, sorted by their first byte.
    var firstChild: UInt32
    var childCount: UInt32
    /// `lists[listStart ..< listMid]`: prefix keys ending here; `lists[listMid ..< listEnd]`: exact keys.
    var listStart: UInt32
    var listMid: UInt32
    var listEnd: UInt32
    var firstByte: UInt8
}

/// The frozen pools all tries (and all id lists) of a compiled set share.
struct TriePools: Sendable {
    let nodes: Frozen<TrieNode>
    let labels: Frozen<UInt8>

    /// Calls `emit` with every id range of the trie at `root` whose key matches `value`: the prefix keys
    /// `value` starts with (shortest first), then the key equal to `value`.
    @inline(__always)
    func lookup(_ root: Int32, _ value: Bytes, reversed: Bool, lowered: Bool, _ emit: (UInt32, UInt32) -> Void) {
        @inline(__always) func byte(_ i: Int) -> UInt8 {
            let b = reversed ? value[value.count - 1 - i] : value[i]
            return lowered ? asciiLower(b) : b
        }
        var node = nodes[root]
        var position = 0
        if node.listStart < node.listMid { emit(node.listStart, node.listMid) }
        while true {
            if position == value.count {
                if node.listMid < node.listEnd { emit(node.listMid, node.listEnd) }
                return
            }
            let b = byte(position)
            var child = -1
            let first = Int(node.firstChild), count = Int(node.childCount)
            if count <= 8 {
                for c in first..<(first + count) where nodes[c].firstByte == b {
                    child = c
                    break
                }
            } else {
                var low = first, high = first + count
                while low < high {
                    let mid = (low + high) >> 1
                    let m = nodes[mid].firstByte
                    if m == b { child = mid; break }
                    if m < b { low = mid + 1 } else { high = mid }
                }
            }
            if child < 0 { return }
            let next = nodes[child]
            let length = Int(next.labelCount)
            guard value.count - position >= length else { return }
            let start = Int(next.labelStart)
            var k = 1
            while k < length {
                if byte(position + k) != labels[start + k] { return }
                k += 1
            }
            position += length
            node = next
            if node.listStart < node.listMid { emit(node.listStart, node.listMid) }
        }
    }
}

/// Mutable pools while compiling.
struct PoolBuilder {
    var nodes: [TrieNode] = []
    var labels: [UInt8] = []
    /// Every id list of the compiled set (bucket rules, trie lists, ...).
    var lists: [UInt32] = []

    /// Appends a list; returns its range.
    mutating func list<S: Sequence>(_ ids: S) -> (UInt32, UInt32) where S.Element == UInt32 {
        let start = UInt32(lists.count)
        lists.append(contentsOf: ids)
        return (start, UInt32(lists.count))
    }
}

struct TrieBuilder {
    private struct BuildNode {
        var children: [UInt8: Int] = [:]
        var prefixIDs: [UInt32] = []
        var exactIDs: [UInt32] = []
    }

    private var nodes: [BuildNode] = [BuildNode()]
    private(set) var isEmpty = true

    /// Adds `key` (already reversed / lower-cased as the lookups will be) for `id`.
    mutating func insert<C: Collection>(_ key: C, prefix: Bool, id: UInt32) where C.Element == UInt8 {
        isEmpty = false
        var node = 0
        for byte in key {
            if let next = nodes[node].children[byte] {
                node = next
            } else {
                nodes.append(BuildNode())
                nodes[node].children[byte] = nodes.count - 1
                node = nodes.count - 1
            }
        }
        if prefix { nodes[node].prefixIDs.append(id) } else { nodes[node].exactIDs.append(id) }
    }

    /// Compresses chains of single-child nodes without ids into multi-byte edges; returns the root's index
    /// in the pool, or -1 for an empty trie.
    func freeze(into pool: inout PoolBuilder) -> Int32 {
        guard !isEmpty else { return -1 }
        struct Pending { var buildNode: Int; var label: [UInt8] }
        func compress(_ start: Int, firstByte: UInt8) -> Pending {
            var label: [UInt8] = [firstByte]
            var node = start
            while nodes[node].children.count == 1 && nodes[node].prefixIDs.isEmpty && nodes[node].exactIDs.isEmpty {
                let (byte, next) = nodes[node].children.first!
                label.append(byte)
                node = next
            }
            return Pending(buildNode: node, label: label)
        }
        // Breadth-first: each node's children are contiguous; a node's index is base + its queue position.
        let base = pool.nodes.count
        var queue: [Pending] = [Pending(buildNode: 0, label: [])]
        var head = 0
        while head < queue.count {
            let pending = queue[head]
            head += 1
            let source = nodes[pending.buildNode]
            let (listStart, listMid) = pool.list(Array(Set(source.prefixIDs)).sorted())
            let (_, listEnd) = pool.list(Array(Set(source.exactIDs)).sorted())
            let labelStart = UInt32(pool.labels.count)
            pool.labels.append(contentsOf: pending.label)
            let children = source.children.sorted { $0.key < $1.key }
            let firstChild = UInt32(base + queue.count)
            for (byte, child) in children { queue.append(compress(child, firstByte: byte)) }
            pool.nodes.append(TrieNode(labelStart: labelStart, labelCount: UInt32(pending.label.count),
                                       firstChild: firstChild, childCount: UInt32(children.count),
                                       listStart: listStart, listMid: listMid, listEnd: listEnd,
                                       firstByte: pending.label.first ?? 0))
        }
        return Int32(base)
    }
}
