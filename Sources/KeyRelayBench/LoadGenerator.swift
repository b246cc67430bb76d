import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A small closed-loop HTTP/1.1 load generator: `connections` keep-alive connections over loopback, one thread
/// each, every connection sending its next request as soon as the previous response is read. Blocking sockets,
/// no dependency: the same client measures the bare Hummingbird route and KeyRelay's routes.
enum LoadGenerator {
    struct Result: Sendable {
        var requests = 0
        var seconds = 0.0
        var statuses: [Int: Int] = [:]
        var errors = 0
        /// CPU time (user + system) the whole process spent meanwhile: server, load generator and background.
        var cpuSeconds = 0.0
        var rate: Double { seconds > 0 ? Double(requests) / seconds : 0 }
        /// Process CPU per answered request, in microseconds. Unlike the rate, it hardly moves when other processes
        /// compete for the cores, so it compares routes on a busy machine.
        var cpuMicrosecondsPerRequest: Double { requests > 0 ? cpuSeconds / Double(requests) * 1e6 : 0 }
    }

    /// User + system CPU time of this process so far.
    static func processCPUSeconds() -> Double {
        var usage = rusage()
        #if canImport(Glibc)
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// A request as raw bytes, e.g. `GET /x HTTP/1.1\r\nHost: …\r\n\r\n`.
    static func request(_ method: String, _ path: String, headers: [(String, String)] = [], body: Data = Data()) -> Data {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if !body.isEmpty || method == "POST" { text += "Content-Length: \(body.count)\r\n" }
        text += "\r\n"
        return Data(text.utf8) + body
    }

    /// Runs the load for `seconds` and returns what was answered. `requests` is cycled per connection.
    static func run(port: Int, requests: [Data], connections: Int, seconds: Double) -> Result {
        let total = Totals()
        let group = DispatchGroup()
        let start = now()
        let cpuStart = processCPUSeconds()
        let deadline = start + seconds
        for index in 0..<connections {
            group.enter()
            let thread = Thread {
                let result = connection(port: port, requests: requests, offset: index, deadline: deadline)
                total.add(result)
                group.leave()
            }
            thread.start()
        }
        group.wait()
        var sum = total.result
        sum.seconds = now() - start
        sum.cpuSeconds = processCPUSeconds() - cpuStart
        return sum
    }

    /// The connections' results, added up under a lock.
    private final class Totals: @unchecked Sendable {
        private let lock = NSLock()
        private var sum = Result()
        func add(_ result: Result) {
            lock.lock()
            defer { lock.unlock() }
            sum.requests += result.requests
            sum.errors += result.errors
            for (status, count) in result.statuses { sum.statuses[status, default: 0] += count }
        }
        var result: Result {
            lock.lock()
            defer { lock.unlock() }
            return sum
        }
    }

    private static func connection(port: Int, requests: [Data], offset: Int, deadline: Double) -> Result {
        var result = Result()
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return Result(errors: 1) }
        defer { close(fd) }
        var yes: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return Result(errors: 1) }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var pending: [UInt8] = []
        var n = offset
        while now() < deadline {
            let request = requests[n % requests.count]
            n += 1
            let sent = request.withUnsafeBytes { raw -> Bool in
                var done = 0
                while done < raw.count {
                    let w = send(fd, raw.baseAddress! + done, raw.count - done, 0)
                    if w <= 0 { return false }
                    done += w
                }
                return true
            }
            guard sent else { result.errors += 1; return result }
            // Read one response: headers, then Content-Length bytes (or a chunked body).
            var status = 0
            while true {
                if let (responseStatus, length) = parse(pending) {
                    status = responseStatus
                    pending.removeFirst(length)
                    break
                }
                let r = recv(fd, &buffer, buffer.count, 0)
                if r <= 0 { result.errors += 1; return result }
                pending.append(contentsOf: buffer[0..<r])
            }
            result.requests += 1
            result.statuses[status, default: 0] += 1
        }
        return result
    }

    /// If `bytes` starts with a whole response, its status and total length.
    private static func parse(_ bytes: [UInt8]) -> (Int, Int)? {
        guard bytes.count >= 16 else { return nil }
        // Find the end of the headers.
        var end = -1
        var i = 3
        while i < bytes.count {
            if bytes[i] == 10, bytes[i - 1] == 13, bytes[i - 2] == 10, bytes[i - 3] == 13 { end = i + 1; break }
            i += 1
        }
        guard end > 0 else { return nil }
        // Status and the two headers that frame the body, read from the bytes: the parser is part of every measured
        // request, and converting header lines to Strings cost more for answers with more headers than for the
        // baseline's.
        let status = bytes.count > 12 ? bytes[9..<12].reduce(0) { $0 * 10 + Int($1) - 48 } : 0
        var contentLength = 0
        var chunked = false
        var line = indexOfCRLF(bytes, from: 0).map { $0 + 2 } ?? end
        while line < end - 2 {
            let lineEnd = indexOfCRLF(bytes, from: line) ?? end
            if hasPrefix(bytes, line, "content-length:") {
                contentLength = bytes[(line + 15)..<lineEnd].reduce(0) { (48...57).contains($1) ? $0 * 10 + Int($1) - 48 : $0 }
            } else if hasPrefix(bytes, line, "transfer-encoding:") {
                chunked = String(decoding: bytes[(line + 18)..<lineEnd], as: UTF8.self).lowercased().contains("chunked")
            }
            line = lineEnd + 2
        }
        if !chunked {
            return bytes.count >= end + contentLength ? (status, end + contentLength) : nil
        }
        // Chunked: walk the chunks up to the last (zero-length) one.
        var position = end
        while true {
            guard let lineEnd = indexOfCRLF(bytes, from: position) else { return nil }
            let sizeText = String(decoding: bytes[position..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { return nil }
            position = lineEnd + 2
            if size == 0 {
                guard let trailerEnd = indexOfCRLF(bytes, from: position) else { return nil }
                return (status, trailerEnd + 2)
            }
            position += size + 2
            guard position <= bytes.count else { return nil }
        }
    }

    /// Whether the header line at `start` begins with `name` (lower-case ASCII), case-insensitively.
    private static func hasPrefix(_ bytes: [UInt8], _ start: Int, _ name: StaticString) -> Bool {
        let count = name.utf8CodeUnitCount
        guard start + count <= bytes.count else { return false }
        let pointer = name.utf8Start
        for offset in 0..<count where bytes[start + offset] | 0x20 != pointer[offset] {
            return false
        }
        return true
    }

    private static func indexOfCRLF(_ bytes: [UInt8], from start: Int) -> Int? {
        var i = start
        while i + 1 < bytes.count {
            if bytes[i] == 13, bytes[i + 1] == 10 { return i }
            i += 1
        }
        return nil
    }
}
