/// A path-compressed byte trie (radix tree) from keys to lists of ids, for exact and prefix lookups. Built
/// once, then immutable. A key may be stored reversed (suffix lookups) or lower-cased (hosts): the caller
/// inserts it in that form and looks it up with the same `reversed` / `lowered` flags.
struct ByteTrie: Sendable {
    struct Node: Sendable {
        /// The edge bytes leading here from the parent (the first one selects the child); empty at the root.
        var labelStart: UInt32
        var labelCount: UInt32
        var firstChild: UInt32
        var childCount: UInt32
        /// `ids[listStart ..< listMid]`: prefix keys ending here; `ids[listMid ..< listEnd]`: exact keys.
        var listStart: UInt32
        var listMid: UInt32
        var listEnd: UInt32
        var firstByte: UInt8
    }

    private(set) var nodes: [Node]
    private(set) var labels: [UInt8]
    private(set) var ids: [UInt32]

    var isEmpty: Bool { ids.isEmpty }

    /// Calls `emit` with every id list whose key matches `value`: prefix keys that `value` starts with (all
    /// of them, shortest first) and the exact key equal to `value`.
    @inline(__always)
    func lookup(_ value: Bytes, reversed: Bool, lowered: Bool, _ emit: (UnsafeBufferPointer<UInt32>) -> Void) {
        nodes.withUnsafeBufferPointer { nodes in
            labels.withUnsafeBufferPointer { labels in
                ids.withUnsafeBufferPointer { ids in
                    @inline(__always) func byte(_ i: Int) -> UInt8 {
                        let b = reversed ? value[value.count - 1 - i] : value[i]
                        return lowered ? asciiLower(b) : b
                    }
                    @inline(__always) func emitRange(_ from: UInt32, _ to: UInt32) {
                        if from < to { emit(UnsafeBufferPointer(rebasing: ids[Int(from)..<Int(to)])) }
                    }
                    var node = nodes[0]
                    var position = 0
                    emitRange(node.listStart, node.listMid)
                    while true {
                        if position == value.count {
                            emitRange(node.listMid, node.listEnd)
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
                        emitRange(node.listStart, node.listMid)
                    }
                }
            }
        }
    }

    /// Number of nodes and stored ids, for memory accounting.
    var footprint: Int { nodes.count * MemoryLayout<Node>.stride + labels.count + ids.count * 4 }

    struct Builder {
        private struct BuildNode {
            var children: [UInt8: Int] = [:]
            var prefixIDs: [UInt32] = []
            var exactIDs: [UInt32] = []
        }

        private var nodes: [BuildNode] = [BuildNode()]

        var isEmpty: Bool { nodes.count == 1 && nodes[0].prefixIDs.isEmpty && nodes[0].exactIDs.isEmpty }

        /// Adds `key` (already reversed / lower-cased as the lookups will be) for `id`.
        mutating func insert<C: Collection>(_ key: C, prefix: Bool, id: UInt32) where C.Element == UInt8 {
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

        /// Compresses chains of single-child nodes without ids into multi-byte edges.
        func freeze() -> ByteTrie {
            var trie = ByteTrie(nodes: [], labels: [], ids: [])
            // Breadth-first, so each node's children are contiguous and sorted by their first byte.
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
            var queue: [Pending] = [Pending(buildNode: 0, label: [])]
            var head = 0
            while head < queue.count {
                let pending = queue[head]
                head += 1
                let source = nodes[pending.buildNode]
                let listStart = UInt32(trie.ids.count)
                trie.ids.append(contentsOf: source.prefixIDs.sorted())
                let listMid = UInt32(trie.ids.count)
                trie.ids.append(contentsOf: source.exactIDs.sorted())
                let labelStart = UInt32(trie.labels.count)
                trie.labels.append(contentsOf: pending.label)
                let children = source.children.sorted { $0.key < $1.key }
                // Children are appended to the queue in order; their final index is their queue position.
                let firstChild = UInt32(queue.count)
                for (byte, child) in children { queue.append(compress(child, firstByte: byte)) }
                trie.nodes.append(Node(labelStart: labelStart, labelCount: UInt32(pending.label.count),
                                       firstChild: firstChild, childCount: UInt32(children.count),
                                       listStart: listStart, listMid: listMid, listEnd: UInt32(trie.ids.count),
                                       firstByte: pending.label.first ?? 0))
            }
            return trie
        }
    }
}
