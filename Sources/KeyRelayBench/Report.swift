import Foundation
import KeyRelay

/// Every figure of one run, its ratio against the baseline measured in the same run, and the target.
struct Report {
    struct Figure: Sendable {
        let name: String
        let unit: String
        /// The baseline the ratio is taken against (nil: compared with an absolute bound).
        let baseline: String?
        /// Human-readable target.
        let target: String
        /// Whether a value meets the target, given its ratio (or the value itself without a baseline).
        let meets: (@Sendable (Double) -> Bool)?
    }

    static let figures: [Figure] = [
        Figure(name: "sqlite_durable_commit_per_s", unit: "commits/s", baseline: nil, target: "baseline", meets: nil),
        Figure(name: "lifecycle_ops_per_s", unit: "ops/s", baseline: "sqlite_durable_commit_per_s", target: ">= 0.8x", meets: { $0 >= 0.8 }),
        Figure(name: "lifecycle_ops_per_s_concurrent", unit: "ops/s", baseline: "sqlite_durable_commit_per_s", target: ">= 10x", meets: { $0 >= 10 }),
        Figure(name: "sqlite_insert_100k_s", unit: "s", baseline: nil, target: "baseline", meets: nil),
        Figure(name: "sync_fanout_100k_s", unit: "s", baseline: "sqlite_insert_100k_s", target: "<= 1.5x", meets: { $0 <= 1.5 }),
        Figure(name: "delivery_per_s", unit: "deliveries/s", baseline: "sqlite_durable_commit_per_s", target: ">= 5x", meets: { $0 >= 5 }),
        Figure(name: "webhook_bare_post_per_s", unit: "posts/s", baseline: nil, target: "baseline", meets: nil),
        Figure(name: "webhook_delivery_per_s", unit: "deliveries/s", baseline: "webhook_bare_post_per_s", target: ">= 0.5x", meets: { $0 >= 0.5 }),
        Figure(name: "http_baseline_rps", unit: "req/s", baseline: nil, target: "baseline", meets: nil),
        Figure(name: "http_get_key_rps", unit: "req/s", baseline: "http_baseline_rps", target: ">= 0.5x", meets: { $0 >= 0.5 }),
        Figure(name: "http_wrap_rps", unit: "req/s", baseline: "http_baseline_rps", target: ">= 0.5x", meets: { $0 >= 0.5 }),
        Figure(name: "http_unwrap_rps", unit: "req/s", baseline: "http_baseline_rps", target: ">= 0.5x", meets: { $0 >= 0.5 }),
        Figure(name: "http_sync_rps", unit: "req/s", baseline: "http_baseline_rps", target: "(none)", meets: nil),
        // Process CPU per request (server + load generator): steadier than rates when other builds share the cores.
        Figure(name: "http_baseline_cpu_us", unit: "us/req", baseline: nil, target: "baseline", meets: nil),
        Figure(name: "http_get_key_cpu_us", unit: "us/req", baseline: "http_baseline_cpu_us", target: "(none)", meets: nil),
        Figure(name: "engine_get_key_cpu_us", unit: "us/read", baseline: "http_get_key_cpu_us", target: "(none)", meets: nil),
        Figure(name: "http_wrap_cpu_us", unit: "us/req", baseline: "http_baseline_cpu_us", target: "(none)", meets: nil),
        Figure(name: "http_unwrap_cpu_us", unit: "us/req", baseline: "http_baseline_cpu_us", target: "(none)", meets: nil),
        Figure(name: "http_sync_cpu_us", unit: "us/req", baseline: "http_baseline_cpu_us", target: "(none)", meets: nil),
        Figure(name: "peak_rss_mb", unit: "MiB", baseline: nil, target: "<= 150 MiB", meets: { $0 <= 150 }),
    ]

    let quick: Bool
    let directory: String
    let date = Date()
    var values: [String: Double] = [:]
    var pending: [String: String] = [:]
    var details: [String: Double] = [:]
    var notes: [String] = []

    init(quick: Bool, directory: String) {
        self.quick = quick
        self.directory = directory
    }

    mutating func set(_ name: String, _ value: Double) { values[name] = value }

    func ratio(_ figure: Figure) -> Double? {
        guard let baseline = figure.baseline, let value = values[figure.name], let base = values[baseline], base > 0 else { return nil }
        return value / base
    }

    /// nil when there is no target or no value.
    func verdict(_ figure: Figure) -> Bool? {
        guard let meets = figure.meets, let value = values[figure.name] else { return nil }
        if figure.baseline == nil { return meets(value) }
        return ratio(figure).map(meets)
    }

    static var machine: String {
        var uts = utsname()
        uname(&uts)
        let release = withUnsafeBytes(of: &uts.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } } ?? "unknown CPU"
        return "\(ProcessInfo.processInfo.activeProcessorCount) cores, \(cpu), Linux \(release)"
    }

    func table() -> String {
        func format(_ value: Double) -> String {
            value >= 100 ? String(format: "%.0f", value) : value >= 1 ? String(format: "%.2f", value) : String(format: "%.3f", value)
        }
        var lines = [
            "KeyRelayBench — \(quick ? "quick" : "full") run, \(Timestamp.format(date)), \(Self.machine)",
            "",
            "figure                          value         unit           vs baseline        target       verdict",
            String(repeating: "-", count: 104),
        ]
        for figure in Self.figures {
            let value: String
            if let v = values[figure.name] {
                value = format(v)
            } else if pending[figure.name] != nil {
                value = "pending"
            } else {
                value = "-"
            }
            let ratioText = ratio(figure).map { "\(format($0))x \(figure.baseline!.replacingOccurrences(of: "_per_s", with: "").replacingOccurrences(of: "_rps", with: "").prefix(8))" } ?? ""
            let verdict = verdict(figure).map { $0 ? "met" : "MISSED" } ?? (figure.meets == nil ? "" : "n/a")
            lines.append(figure.name.padding(toLength: 32, withPad: " ", startingAt: 0)
                         + value.padding(toLength: 14, withPad: " ", startingAt: 0)
                         + figure.unit.padding(toLength: 15, withPad: " ", startingAt: 0)
                         + ratioText.padding(toLength: 19, withPad: " ", startingAt: 0)
                         + figure.target.padding(toLength: 13, withPad: " ", startingAt: 0)
                         + verdict)
        }
        if !details.isEmpty {
            lines.append("")
            for (name, value) in details.sorted(by: { $0.key < $1.key }) { lines.append("  \(name) = \(format(value))") }
        }
        for (name, why) in pending.sorted(by: { $0.key < $1.key }) { lines.append("  pending \(name): \(why)") }
        for note in notes { lines.append("  note: \(note)") }
        return lines.joined(separator: "\n")
    }

    func json() throws -> Data {
        var ratios: [String: Double] = [:]
        var targets: [String: String] = [:]
        var verdicts: [String: Bool] = [:]
        for figure in Self.figures {
            if let ratio = ratio(figure) { ratios[figure.name] = ratio }
            if figure.meets != nil { targets[figure.name] = figure.target }
            if let verdict = verdict(figure) { verdicts[figure.name] = verdict }
        }
        let object: [String: Any] = [
            "date": Timestamp.format(date), "machine": Self.machine, "mode": quick ? "quick" : "full",
            "figures": values, "ratios": ratios, "targets": targets, "met": verdicts, "pending": pending,
            "details": details, "notes": notes,
        ]
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }
}
