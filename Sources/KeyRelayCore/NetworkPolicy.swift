#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which listener a request arrived on: the public one, or `serve --private-port` (Key Protect's private endpoint).
public enum RequestNetwork: String, Sendable, Equatable, Codable {
    case `public`
    case `private`
}

/// An IPv4 or IPv6 address as its network-order bytes (4 or 16), parsed by the C library's `inet_pton`. An
/// IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is the IPv4 address: a dual-stack listener reports IPv4 clients so.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    /// Parses `text` (`203.0.113.7`, `2001:db8::1`; an IPv6 zone such as `%eth0` is ignored); nil if it is neither.
    public init?(_ text: String) {
        let address = text.split(separator: "%", maxSplits: 1).first.map(String.init) ?? text
        guard !address.isEmpty, address.utf8.count <= 64 else { return nil }
        var v4 = in_addr()
        if inet_pton(AF_INET, address, &v4) == 1 {
            bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, address, &v6) == 1 else { return nil }
        let raw = withUnsafeBytes(of: &v6) { Array($0) }
        if raw.prefix(10).allSatisfy({ $0 == 0 }), raw[10] == 0xff, raw[11] == 0xff {
            bytes = Array(raw.suffix(4))
        } else {
            bytes = raw
        }
    }

    public var description: String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        return stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            .joined(separator: ":")
    }
}

/// A CIDR block (`10.0.0.0/8`, `2001:db8::/32`) or a single address (a /32 or /128), as Key Protect's `allowedIP`
/// policy lists them.
public struct IPAddressRange: Sendable, Hashable, CustomStringConvertible {
    public let network: IPAddress
    public let prefixLength: Int

    /// Parses `a.b.c.d[/n]` (n 0–32) or an IPv6 address with an optional `/n` (n 0–128); nil otherwise.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(String(parts[0])) else { return nil }
        let bits = address.bytes.count * 8
        if parts.count == 2 {
            guard parts[1].count <= 3, parts[1].allSatisfy(\.isASCII), let length = Int(parts[1]), (0...bits).contains(length) else { return nil }
            prefixLength = length
        } else {
            prefixLength = bits
        }
        network = address
    }

    /// Whether `address` is inside the block (an IPv4 address never matches an IPv6 block, nor the reverse).
    public func contains(_ address: IPAddress) -> Bool {
        guard address.bytes.count == network.bytes.count else { return false }
        var remaining = prefixLength
        for (a, b) in zip(address.bytes, network.bytes) where remaining > 0 {
            let bits = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            if a & mask != b & mask { return false }
            remaining -= bits
        }
        return true
    }

    public var description: String { "\(network)/\(prefixLength)" }
}

/// What an instance's `allowedIP` and `allowedNetwork` policies admit: every request to the instance is checked
/// against them before any rule of the request's own.
public struct NetworkAccessPolicy: Sendable, Equatable {
    /// The enabled `allowedIP` policy's blocks; nil when the policy is absent or disabled.
    public var allowedIP: [IPAddressRange]?
    /// The enabled `allowedNetwork` policy says `private-only`.
    public var privateOnly: Bool

    public init(allowedIP: [IPAddressRange]? = nil, privateOnly: Bool = false) {
        self.allowedIP = allowedIP
        self.privateOnly = privateOnly
    }

    /// No policy restricts anything.
    public static let open = NetworkAccessPolicy()

    /// Whether a request from `address` (nil: unknown) on `network` is admitted. An unknown address is refused
    /// when an `allowedIP` policy is enabled: the policy fails closed.
    public func admits(address: IPAddress?, network: RequestNetwork) -> Bool {
        if privateOnly, network != .private { return false }
        guard let allowedIP else { return true }
        guard let address else { return false }
        return allowedIP.contains { $0.contains(address) }
    }
}
