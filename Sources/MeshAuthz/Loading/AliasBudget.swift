internal import CYaml

/// Bounds what YAML aliases expand to, before Yams composes the file.
///
/// Why before: Yams composes an alias as the anchored node itself (shared, not copied), but it hashes
/// every mapping key to find duplicates, and the decoder walks values; a key or value that is an alias
/// of an alias of ... is walked in full, 9^9 nodes for a 3.4 KB file. So the libyaml event stream is
/// read once first (linear in the file), the expanded size of every anchored node is computed, and the
/// file is refused at the first alias that takes the total past the budget.
enum AliasBudget {
    /// The first alias over the budget, or nil when the file is within it (or is not valid YAML: then
    /// Yams reports the syntax error, with its own wording).
    static func check(_ text: String, file: String, maxAliasNodes: Int) -> PolicyError? {
        var bytes = Array(text.utf8)
        if bytes.isEmpty { return nil }
        return bytes.withUnsafeMutableBufferPointer { buffer in
            scan(buffer, file: file, budget: maxAliasNodes)
        }
    }

    private static func scan(_ buffer: UnsafeMutableBufferPointer<UInt8>, file: String, budget: Int) -> PolicyError? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { return nil }
        defer { yaml_parser_delete(&parser) }
        yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
        yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)

        // Expanded node count of each anchored node. Yams keeps anchors across the documents of a
        // stream (a later document may name an earlier anchor), so this does too.
        var sizes: [String: Int] = [:]
        // Open collections: their anchor and their expanded size so far (1 for the node itself).
        var open: [(anchor: String?, size: Int)] = []
        var expanded = 0
        // Saturate well above the budget so sums never overflow.
        let cap = budget < Int.max / 4 ? budget + 1 : Int.max / 4

        func add(_ size: Int) {
            if !open.isEmpty { open[open.count - 1].size = min(cap, open[open.count - 1].size + size) }
        }

        // One iteration per event; libyaml ends every stream with STREAM_END (or an error), and the
        // input is finite, so the loop ends.
        while true {
            var event = yaml_event_t()
            guard yaml_parser_parse(&parser, &event) == 1 else { return nil }
            defer { yaml_event_delete(&event) }
            switch event.type {
            case YAML_STREAM_END_EVENT:
                return nil
            case YAML_SCALAR_EVENT:
                if let anchor = string(event.data.scalar.anchor) { sizes[anchor] = 1 }
                add(1)
            case YAML_SEQUENCE_START_EVENT:
                open.append((string(event.data.sequence_start.anchor), 1))
            case YAML_MAPPING_START_EVENT:
                open.append((string(event.data.mapping_start.anchor), 1))
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                guard let closed = open.popLast() else { continue }
                if let anchor = closed.anchor { sizes[anchor] = closed.size }
                add(closed.size)
            case YAML_ALIAS_EVENT:
                // An undefined alias is Yams's error to report; it expands to nothing here.
                let size = string(event.data.alias.anchor).flatMap { sizes[$0] } ?? 0
                expanded = min(cap, expanded + size)
                add(size)
                if expanded > budget {
                    let name = string(event.data.alias.anchor) ?? ""
                    return PolicyError.limit(
                        file, line: Int(event.start_mark.line) + 1, column: Int(event.start_mark.column) + 1,
                        "YAML aliases expand to more than \(budget) nodes (at *\(name)); refused as a possible " +
                        "billion-laughs file (limit: --max-alias-nodes)")
                }
            case YAML_NO_EVENT, YAML_STREAM_START_EVENT, YAML_DOCUMENT_START_EVENT, YAML_DOCUMENT_END_EVENT:
                continue
            default:
                // libyaml has no other event type; a new one would not change sizes.
                continue
            }
        }
    }

    private static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        guard let pointer else { return nil }
        return String(cString: pointer)
    }
}
