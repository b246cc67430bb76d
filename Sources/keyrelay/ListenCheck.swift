#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whether `serve` can listen on an address, asked of the system before the server has any side effect.
enum ListenCheck {
    /// Binds a socket to `host:port` as the server will (the first address `getaddrinfo` gives, `SO_REUSEADDR`)
    /// and releases it. Returns why it cannot ("address already in use"), or nil.
    static func problem(host: String, port: Int) -> String? {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &result)
        guard status == 0, let info = result?.pointee else {
            return "cannot resolve the host (\(String(cString: gai_strerror(status))))"
        }
        defer { freeaddrinfo(result) }
        let descriptor = socket(info.ai_family, info.ai_socktype, info.ai_protocol)
        guard descriptor >= 0 else { return reason(errno) }
        defer { close(descriptor) }
        var one: Int32 = 1
        _ = setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(descriptor, info.ai_addr, info.ai_addrlen) == 0 else { return reason(errno) }
        guard listen(descriptor, 1) == 0 else { return reason(errno) }
        return nil
    }

    /// `host:port`, with an IPv6 literal in brackets.
    static func display(host: String, port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// The system's message for `code`, as the rest of a sentence ("address already in use").
    private static func reason(_ code: Int32) -> String {
        let text = String(cString: strerror(code))
        return text.prefix(1).lowercased() + text.dropFirst()
    }
}
