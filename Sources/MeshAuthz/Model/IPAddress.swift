/// An IPv4 or IPv6 address kept as 16 bytes (IPv4 as ::ffff:a.b.c.d) so one CIDR test serves both.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    public let high: UInt64
    public let low: UInt64
    public let isV4: Bool

    public init(high: UInt64, low: UInt64, isV4: Bool) {
        self.high = high
        self.low = low
        self.isV4 = isV4
    }

    /// Parses dotted IPv4 or RFC 4291 IPv6 text; nil when it is neither.
    public init?(_ text: Substring) {
        if text.utf8.contains(UInt8(ascii: ":")) {
            guard let v6 = IPAddress.parseV6(text) else { return nil }
            self = v6
        } else {
            guard let v4 = IPAddress.parseV4(text) else { return nil }
            self.init(high: 0, low: 0x0000_FFFF_0000_0000 | UInt64(v4), isV4: true)
        }
    }

    public init?(_ text: String) { self.init(text[...]) }

    static func parseV4(_ text: Substring) -> UInt32? {
        var value: UInt32 = 0
        var octets = 0
        var current: UInt32 = 0
        var digits = 0
        for byte in text.utf8 {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, octets < 3 else { return nil }
                value = value << 8 | current
                octets += 1
                current = 0
                digits = 0
            } else if byte >= 48 && byte <= 57 {
                // Leading zeros are ambiguous (octal in some parsers): Go's net.ParseIP rejects them.
                if digits > 0 && current == 0 { return nil }
                current = current * 10 + UInt32(byte - 48)
                digits += 1
                guard current <= 255 else { return nil }
            } else {
                return nil
            }
        }
        guard digits > 0, octets == 3 else { return nil }
        return value << 8 | current
    }

    static func parseV6(_ text: Substring) -> IPAddress? {
        var groups: [UInt16] = []
        var gapIndex: Int? = nil
        var rest = text
        if rest.hasPrefix("::") {
            gapIndex = 0
            rest = rest.dropFirst(2)
            if rest.isEmpty { return IPAddress(high: 0, low: 0, isV4: false) }
        }
        var parts = rest.split(separator: ":", omittingEmptySubsequences: false)
        if parts.last?.isEmpty == true && rest.hasSuffix("::") {
            parts.removeLast()
        }
        var tailV4: UInt32? = nil
        for (index, part) in parts.enumerated() {
            if part.isEmpty {
                guard gapIndex == nil else { return nil }
                gapIndex = groups.count
                continue
            }
            if index == parts.count - 1 && part.contains(".") {
                guard let v4 = parseV4(part) else { return nil }
                tailV4 = v4
                continue
            }
            guard part.utf8.count <= 4, let group = UInt16(part, radix: 16) else { return nil }
            groups.append(group)
        }
        if let v4 = tailV4 {
            groups.append(UInt16(v4 >> 16))
            groups.append(UInt16(v4 & 0xFFFF))
        }
        if let gap = gapIndex {
            guard groups.count < 8 else { return nil }
            groups.insert(contentsOf: Array(repeating: 0, count: 8 - groups.count), at: gap)
        }
        guard groups.count == 8 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for i in 0..<4 { high = high << 16 | UInt64(groups[i]) }
        for i in 4..<8 { low = low << 16 | UInt64(groups[i]) }
        let mapped = high == 0 && (low >> 32) == 0xFFFF
        return IPAddress(high: high, low: low, isV4: mapped)
    }

    public var description: String {
        if isV4 {
            let v = UInt32(truncatingIfNeeded: low)
            return "\(v >> 24).\((v >> 16) & 0xFF).\((v >> 8) & 0xFF).\(v & 0xFF)"
        }
        var groups: [String] = []
        for i in (0..<4).reversed() { groups.append(String((high >> (UInt64(i) * 16)) & 0xFFFF, radix: 16)) }
        for i in (0..<4).reversed() { groups.append(String((low >> (UInt64(i) * 16)) & 0xFFFF, radix: 16)) }
        return groups.joined(separator: ":")
    }
}

/// An address block as written in `ipBlocks` and IP conditions: a single address is /32 or /128.
public struct CIDR: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    /// Prefix length counted over the 128-bit form (IPv4 /24 is stored as 96 + 24).
    public let prefixLength: Int
    public let text: String

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else { return nil }
        let maxLength = address.isV4 ? 32 : 128
        var length = maxLength
        if parts.count == 2 {
            guard let parsed = Int(parts[1]), parsed >= 0, parsed <= maxLength,
                  parts[1].allSatisfy(\.isASCII) else { return nil }
            length = parsed
        }
        self.address = address
        self.prefixLength = address.isV4 ? 96 + length : length
        self.text = text
    }

    public func contains(_ ip: IPAddress) -> Bool {
        // An IPv4 block never matches an IPv6 peer and vice versa, as in Envoy's CidrRange.
        guard ip.isV4 == address.isV4 else { return false }
        let (maskHigh, maskLow) = CIDR.mask(prefixLength)
        return (ip.high & maskHigh) == (address.high & maskHigh) && (ip.low & maskLow) == (address.low & maskLow)
    }

    static func mask(_ length: Int) -> (UInt64, UInt64) {
        if length <= 0 { return (0, 0) }
        if length >= 128 { return (.max, .max) }
        if length <= 64 { return (length == 64 ? .max : ~(UInt64.max >> UInt64(length)), 0) }
        let lowBits = length - 64
        return (.max, lowBits == 64 ? .max : ~(UInt64.max >> UInt64(lowBits)))
    }

    public var description: String { text }
}
