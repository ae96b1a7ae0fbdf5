/// The known name a misspelled one most likely meant: same letters in another case, a plural or
/// singular, or the closest within edit distance 2 (`principles` → `principals`, `ALOW` → `ALLOW`).
/// Ties go to the first in sorted order, so the message is the same on every run.
func didYouMean(_ text: String, among known: some Sequence<String>) -> String? {
    let lowered = text.lowercased()
    let sorted = known.sorted()
    if let close = sorted.first(where: { $0.lowercased() == lowered || $0.lowercased() == lowered + "s" || $0.lowercased() + "s" == lowered }) {
        return close
    }
    var best: (name: String, distance: Int)?
    for name in sorted {
        let distance = ResourceKind.editDistance(lowered, name.lowercased(), limit: ResourceKind.nearDistance)
        if distance <= ResourceKind.nearDistance && distance < (best?.distance ?? Int.max) { best = (name, distance) }
    }
    // A one- or two-letter name is within distance 2 of every short word: only suggest for longer ones.
    guard let best, text.count > 3 else { return nil }
    return best.name
}
