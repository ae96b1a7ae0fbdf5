import MeshAuthz

/// XFCC parsing on an arbitrary header value. Beyond not crashing:
/// - the byte form (`withPrincipal`, the gateway path) and the String forms (`principal(fromHeader:)` on a
///   String and on a shifted Substring) name the same principal, unless the last element names several URI
///   SANs, which the byte form refuses (`hasSeveralURIs`);
/// - when the whole header parses, its `principal` is the one `principal(fromHeader:)` reads;
/// - what a client writes before the last element cannot change the principal: with the input split at
///   its first newline into a prefix P and an element E that parses alone, `P,E` has E's principal
///   (with `APPEND_FORWARD` everything before the nearest proxy's element is the client's to write).
public enum ForwardedClientCertCheck {
    public static func check(_ input: UnsafeBufferPointer<UInt8>) -> [String] {
        var problems: [String] = []
        let fromBytes = principalBytes(input)
        if let text = input.validUTF8 {
            let expected = ForwardedClientCert.principal(fromHeader: text)
            let viaSubstring = ForwardedClientCert.principal(fromHeader: shifted(text))
            if viaSubstring != expected {
                problems.append("Substring form \(viaSubstring ?? "nil") != String form \(expected ?? "nil") for \(show(input))")
            }
            let expectedBytes = ForwardedClientCert.hasSeveralURIs(input)
                ? several : expected.map { Array(CheckRequest.Peer.withSPIFFEScheme($0).utf8) }
            if fromBytes != expectedBytes {
                problems.append("byte form \(fromBytes.map(show) ?? "nil") != String form \(expected ?? "nil") for \(show(input))")
            }
            if let header = ForwardedClientCert(header: text), header.principal != expected {
                problems.append("whole-header principal \(header.principal ?? "nil") != last-element principal \(expected ?? "nil") for \(show(input))")
            }
        }
        if let newline = input.firstIndex(of: UInt8(ascii: "\n")) {
            let prefix = input[..<newline]
            let element = Array(input[(newline + 1)...])
            if let text = String(validating: element, as: UTF8.self),
               let alone = ForwardedClientCert(header: text), alone.elements.count == 1 {
                let joined = Array(prefix) + [UInt8(ascii: ",")] + element
                let principal = joined.withUnsafeBufferPointer { principalBytes($0) }
                let expected = element.withUnsafeBufferPointer(ForwardedClientCert.hasSeveralURIs)
                    ? several : alone.principal.map { Array(CheckRequest.Peer.withSPIFFEScheme($0).utf8) }
                if principal != expected {
                    problems.append("prefix \(show(prefix)) changed the principal of \(show(element)): \(principal.map(show) ?? "nil") instead of \(expected.map(show) ?? "nil")")
                }
            }
        }
        return problems
    }

    /// What the byte form gives when the last element names several URI SANs (the gateway refuses those);
    /// never a principal, which always starts with a scheme.
    static let several = Array("<several URI SANs>".utf8)

    static func principalBytes(_ bytes: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        ForwardedClientCert.withPrincipal(fromHeader: bytes, severalURIs: { several }) { $0.map(Array.init) }
    }
}
