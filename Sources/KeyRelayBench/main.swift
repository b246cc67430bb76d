import Foundation
import KeyRelayBus

// KeyRelayBench (issue #6): KeyRelay measured against SQLite's own limits, in the same run. See docs/performance.md.
//
//   KeyRelayBench [--quick] [--json FILE] [--only NAME,…] [--dir DIR] [--delivery-concurrency N]
//                 [--delivery-scheduling continuous|rounds] [--postgres URL]
//   KeyRelayBench --rss-child DB --registrations N  (measures peak RSS of one sync, in a fresh process)

let arguments = Array(CommandLine.arguments.dropFirst())

func value(after flag: String) -> String? {
    guard let index = arguments.firstIndex(of: flag), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

if let path = value(after: "--rss-child") {
    let count = Int(value(after: "--registrations") ?? "1000000") ?? 1_000_000
    do {
        try await RSSChild.run(path: path, registrations: count)
        exit(0)
    } catch {
        FileHandle.standardError.write(Data("rss child failed: \(error)\n".utf8))
        exit(1)
    }
}

if arguments.contains("--help") || arguments.contains("-h") {
    print("""
        usage: KeyRelayBench [--quick] [--json FILE] [--only NAME,...] [--dir DIR] [--delivery-concurrency N]
                             [--delivery-scheduling continuous|rounds] [--postgres URL]
          --quick      smaller counts and shorter runs (under a minute), for smoke runs
          --json FILE  write every figure, ratio and target to FILE
          --only LIST  run only these benchmarks (durable,lifecycle,same_rows,concurrent,insert,fanout,delivery,webhook,http,rss)
          --dir DIR    where the temporary databases go (default: the system temporary directory)
          --delivery-concurrency N  hand-overs at once in delivery and webhook (default: the dispatcher's, 64)
          --delivery-scheduling S   continuous (default: what serve runs) or rounds (what a manual clock runs)
          --postgres URL  also run the PostgreSQL figures (pg_durable,pg_lifecycle,pg_concurrent,pg_insert,pg_fanout) on
                       this server, each on a fresh database (the URL's user needs CREATEDB); see scripts/bench-postgres
        """)
    exit(0)
}

var options = BenchOptions(
    quick: arguments.contains("--quick"),
    jsonPath: value(after: "--json"),
    only: value(after: "--only").map { Set($0.split(separator: ",").map(String.init)) },
    directory: value(after: "--dir"),
    postgres: value(after: "--postgres"))
if let text = value(after: "--delivery-concurrency") {
    guard let n = Int(text), (1...1024).contains(n) else {
        FileHandle.standardError.write(Data("--delivery-concurrency must be from 1 to 1024, not '\(text)'\n".utf8))
        exit(64)
    }
    options.deliveryConcurrency = n
}
if let text = value(after: "--delivery-scheduling") {
    guard let scheduling = DeliveryPolicy.Scheduling(rawValue: text), scheduling != .automatic else {
        FileHandle.standardError.write(Data("--delivery-scheduling must be continuous or rounds, not '\(text)'\n".utf8))
        exit(64)
    }
    options.deliveryScheduling = scheduling
}

do {
    let report = try await Bench(options: options).run()
    print(report.table())
    if let path = options.jsonPath {
        try report.json().write(to: URL(fileURLWithPath: path))
        print("wrote \(path)")
    }
} catch {
    FileHandle.standardError.write(Data("KeyRelayBench failed: \(error)\n".utf8))
    exit(1)
}
