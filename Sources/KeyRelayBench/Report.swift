import Foundation
import KeyRelay

/// Every figure of one run, its ratio against the baseline measured in the same run, and the target.
struct Report {
    /// One target of a figure: its ratio to `baseline` (or, without one, its value) must satisfy `meets`.
    struct Comparison: Sendable {
        /// The baseline the ratio is taken against (nil: the value is compared with an absolute bound).
        let baseline: String?
        /// Human-readable target.
        let target: String
        /// Whether a value meets the target, given its ratio (or the value itself without a baseline).
        let meets: (@Sendable (Double) -> Bool)?
    }

    struct Figure: Sendable {
        let name: String
        let unit: String
        /// The first comparison is the figure's main one (the table's row, `ratios` in the JSON); a figure may be held
        /// to several baselines (issue #16: the concurrent lifecycle against the one-row durable commit and against
        /// the same rows written raw), each printed and written with its own ratio and verdict.
        let comparisons: [Comparison]

        init(name: String, unit: String, baseline: String?, target: String, meets: (@Sendable (Double) -> Bool)?) {
            self.init(name: name, unit: unit, [Comparison(baseline: baseline, target: target, meets: meets)])
        }

        init(name: String, unit: String, _ comparisons: [Comparison]) {
            self.name = name
            self.unit = unit
            self.comparisons = comparisons
        }

        var baseline: String? { comparisons.first?.baseline }
        var target: String { comparisons.first?.target ?? "" }
        var meets: (@Sendable (Double) -> Bool)? { comparisons.first?.meets }
    }

    static let figures: [Figure] = [
        Figure(name: "sqlite_durable_commit_per_s", unit: "commits/s", baseline: nil, target: "baseline", meets: nil),
        Figure(name: "lifecycle_ops_per_s", unit: "ops/s", baseline: "sqlite_durable_commit_per_s", target: ">= 0.8x", meets: { $0 >= 0.8 }),
        Figure(name: "sqlite_same_rows_batched_per_s", unit: "commands/s", baseline: "sqlite_durable_commit_per_s", target: "baseline", meets: nil),
        Figure(name: "lifecycle_ops_per_s_concurrent", unit: "ops/s", [
            Comparison(baseline: "sqlite_durable_commit_per_s", target: ">= 10x", meets: { $0 >= 10 }),
            Comparison(baseline: "sqlite_same_rows_batched_per_s", target: ">= 0.5x", meets: { $0 >= 0.5 }),
        ]),
        Figure(name: "sqlite_insert_100k_s", unit: "s", baseline: nil, target: "baseline", meets: nil),
        Figure(name: "sync_fanout_100k_s", unit: "s", baseline: "sqlite_insert_100k_s", target: "<= 1.3x", meets: { $0 <= 1.3 }),
        // Bytes written to storage (WAL and checkpoints, /proc/self/io): they do not move with the disk's noise.
        Figure(name: "sqlite_insert_100k_written_mib", unit: "MiB", baseline: nil, target: "baseline", meets: nil),
        Figure(name: "sync_fanout_100k_written_mib", unit: "MiB", baseline: "sqlite_insert_100k_written_mib", target: "<= 1.3x", meets: { $0 <= 1.3 }),
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
        // PostgreSQL (issue #12, `--postgres URL`): baselines taken with plain postgres-nio on the same server.
        Figure(name: "pg_durable_commit_per_s", unit: "commits/s", baseline: nil, target: "baseline", meets: nil),
        Figure(name: "pg_lifecycle_ops_per_s", unit: "ops/s", baseline: "pg_durable_commit_per_s", target: ">= 0.8x", meets: { $0 >= 0.8 }),
        Figure(name: "pg_lifecycle_ops_per_s_64_on_1", unit: "ops/s", baseline: "pg_durable_commit_per_s", target: "(none)", meets: nil),
        Figure(name: "pg_lifecycle_ops_per_s_64_on_2", unit: "ops/s", baseline: "pg_lifecycle_ops_per_s_64_on_1", target: ">= 0.9x", meets: { $0 >= 0.9 }),
        Figure(name: "pg_insert_100k_s", unit: "s", baseline: nil, target: "baseline", meets: nil),
        Figure(name: "pg_sync_fanout_100k_s", unit: "s", baseline: "pg_insert_100k_s", target: "<= 1.5x", meets: { $0 <= 1.5 }),
    ]

    let quick: Bool
    let directory: String
    let date = Date()
    /// `/proc/loadavg` when the run started: the machine is shared, and the ratios move with what else runs.
    let loadAverage = Report.currentLoadAverage()
    var values: [String: Double] = [:]
    var pending: [String: String] = [:]
    /// The PostgreSQL server's URL without its password (`--postgres`), nil without one.
    var postgres: String?
    var details: [String: Double] = [:]
    var notes: [String] = []

    init(quick: Bool, directory: String) {
        self.quick = quick
        self.directory = directory
    }

    /// Bytes written to storage per unit of a figure (per commit, operation, command or row), beside it in the table.
    var written: [String: (kib: Double, per: String)] = [:]

    mutating func set(_ name: String, _ value: Double) { values[name] = value }

    func ratio(_ figure: Figure) -> Double? {
        figure.comparisons.first.flatMap { ratio(figure, $0) }
    }

    func ratio(_ figure: Figure, _ comparison: Comparison) -> Double? {
        guard let baseline = comparison.baseline, let value = values[figure.name], let base = values[baseline], base > 0 else { return nil }
        return value / base
    }

    /// nil when there is no target or no value.
    func verdict(_ figure: Figure) -> Bool? {
        figure.comparisons.first.flatMap { verdict(figure, $0) }
    }

    func verdict(_ figure: Figure, _ comparison: Comparison) -> Bool? {
        guard let meets = comparison.meets, let value = values[figure.name] else { return nil }
        if comparison.baseline == nil { return meets(value) }
        return ratio(figure, comparison).map(meets)
    }

    static func currentLoadAverage() -> String {
        ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "unknown")
            .split(separator: " ").prefix(3).joined(separator: " ")
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
        var lines: [String] = [
            "KeyRelayBench — \(quick ? "quick" : "full") run, \(Timestamp.format(date)), \(Self.machine), load average \(loadAverage) at start, \(Self.currentLoadAverage()) at end",
        ] + (postgres.map { ["PostgreSQL figures (pg_*) on \($0)"] } ?? []) + [
            "",
            "figure                          value         unit           vs baseline             target       verdict   written",
            String(repeating: "-", count: 124),
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
            for (index, comparison) in figure.comparisons.enumerated() {
                let ratioText = ratio(figure, comparison).map {
                    "\(format($0))x \(comparison.baseline!.replacingOccurrences(of: "_per_s", with: "").replacingOccurrences(of: "_rps", with: "").replacingOccurrences(of: "sqlite_", with: "").replacingOccurrences(of: "pg_lifecycle_ops", with: "pg_ops").prefix(comparison.baseline!.hasPrefix("pg_") ? 16 : 13))"
                } ?? ""
                let verdict = verdict(figure, comparison).map { $0 ? "met" : "MISSED" } ?? (comparison.meets == nil ? "" : "n/a")
                let written = index == 0 ? self.written[figure.name].map { "\(format($0.kib)) KiB/\($0.per)" } ?? "" : ""
                lines.append((index == 0 ? figure.name : "").padding(toLength: 32, withPad: " ", startingAt: 0)
                             + (index == 0 ? value : "").padding(toLength: 14, withPad: " ", startingAt: 0)
                             + (index == 0 ? figure.unit : "").padding(toLength: 15, withPad: " ", startingAt: 0)
                             + ratioText.padding(toLength: 24, withPad: " ", startingAt: 0)
                             + comparison.target.padding(toLength: 13, withPad: " ", startingAt: 0)
                             + verdict.padding(toLength: 10, withPad: " ", startingAt: 0)
                             + written)
            }
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
        // Every comparison of every figure, the main one included: figure, baseline, ratio, target, verdict.
        var comparisons: [[String: Any]] = []
        for figure in Self.figures {
            if let ratio = ratio(figure) { ratios[figure.name] = ratio }
            if figure.meets != nil { targets[figure.name] = figure.target }
            if let verdict = verdict(figure) { verdicts[figure.name] = verdict }
            for comparison in figure.comparisons where values[figure.name] != nil {
                var entry: [String: Any] = ["figure": figure.name, "target": comparison.target]
                if let baseline = comparison.baseline {
                    entry["baseline"] = baseline
                    if let value = values[baseline] { entry["baseline_value"] = value }
                }
                if let ratio = ratio(figure, comparison) { entry["ratio"] = ratio }
                if let verdict = verdict(figure, comparison) { entry["met"] = verdict }
                comparisons.append(entry)
            }
        }
        let object: [String: Any] = [
            "date": Timestamp.format(date), "machine": Self.machine, "mode": quick ? "quick" : "full",
            "load_average_start": loadAverage, "load_average_end": Self.currentLoadAverage(),
            "figures": values, "ratios": ratios, "targets": targets, "met": verdicts, "pending": pending,
            "comparisons": comparisons, "postgres": postgres ?? NSNull(),
            "written_kib": written.mapValues { ["kib": $0.kib, "per": $0.per] as [String: Any] },
            "details": details, "notes": notes,
        ]
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }
}
