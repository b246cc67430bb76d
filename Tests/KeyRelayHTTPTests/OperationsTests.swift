import Foundation
import HTTPTypes
import Hummingbird
import KeyRelay
@testable import KeyRelayHTTP
import Testing

/// `/health`, `/ready` and `/metrics` (issue #14 item 3).
@Suite struct OperationsTests {
    @Test func healthAndReadyAnswerWithoutATokenAndWithoutData() async throws {
        try await Harness.run { h in
            for path in ["/health", "/ready"] {
                let reply = try await h.call(.get, path, token: nil, instance: nil)
                #expect(reply.status == .ok, "\(path)")
                #expect(reply.text.isEmpty, "\(path) answers no data")
            }
        }
    }

    @Test func metricsScrapeIsPrometheusTextWithEverySeriesAfterACreateAndASync() async throws {
        try await Harness.run(metrics: .shared) { h in
            let id = try #require(try await h.createKey("scraped")["id"] as? String)
            #expect(try await h.register(id, bucket: "scraped-bucket").status == .created)
            // Creation does not start the sync cooldown: the first sync is accepted, the second refused.
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/sync").status == .noContent)
            #expect(try await h.call(.post, "/api/v2/keys/\(id)/actions/sync").code == "REQ_TOO_EARLY_ERR")
            // No service is subscribed on this bus: the delivery attempt fails (counted by service).
            try await h.api.background.drain()

            let reply = try await h.call(.get, "/metrics", token: nil, instance: nil)
            #expect(reply.status == .ok)
            #expect(reply.contentType?.hasPrefix("text/plain; version=0.0.4") == true)
            let scrape = try PrometheusText(reply.text)

            #expect(scrape.types["keyrelay_http_requests_total"] == "counter")
            #expect(scrape.types["keyrelay_http_request_duration_seconds"] == "histogram")
            #expect(scrape.value("keyrelay_http_requests_total", ["route": "/api/v2/keys", "method": "POST", "status": "201"]) ?? 0 >= 1)
            // Routes are templates, never ids.
            let refusedSync = ["route": "/api/v2/keys/{id}/actions/sync", "method": "POST", "status": "409"]
            #expect(scrape.value("keyrelay_http_requests_total", refusedSync) ?? 0 >= 1)
            #expect(!scrape.samples.contains { $0.labels["route"]?.contains(id) == true })
            let created = ["route": "/api/v2/keys", "method": "POST", "status": "201"]
            #expect(scrape.value("keyrelay_http_request_duration_seconds_count", created) ?? 0 >= 1)

            #expect(scrape.types["keyrelay_lifecycle_commands_total"] == "counter")
            #expect(scrape.value("keyrelay_lifecycle_commands_total", ["action": "create", "outcome": "accepted"]) ?? 0 >= 1)
            #expect(scrape.value("keyrelay_lifecycle_commands_total", ["action": "sync", "outcome": "accepted"]) ?? 0 >= 1)
            #expect(scrape.value("keyrelay_lifecycle_commands_total", ["action": "sync", "outcome": "REQ_TOO_EARLY_ERR"]) ?? 0 >= 1)

            #expect(scrape.types["keyrelay_notifications"] == "gauge")
            for status in ["pending", "sent", "acknowledged", "dead"] {
                #expect(scrape.value("keyrelay_notifications", ["status": status]) != nil, "\(status)")
            }
            #expect(scrape.value("keyrelay_notifications", ["status": "pending"]) == 1, "the failed delivery is due again")
            #expect(scrape.types["keyrelay_drifted_registrations"] == "gauge")
            #expect(scrape.value("keyrelay_drifted_registrations", ["instance": instanceA]) != nil)

            #expect(scrape.value("keyrelay_delivery_attempts_total", ["service": "cloud-object-storage", "outcome": "failed"]) ?? 0 >= 1)
            #expect(scrape.types["keyrelay_dead_letters_total"] == nil || scrape.types["keyrelay_dead_letters_total"] == "counter")
            #expect(scrape.types["keyrelay_group_commit_batch_size"] == "histogram")
            #expect(scrape.value("keyrelay_group_commit_batch_size_count", [:]) ?? 0 >= 1)
        }
    }

    @Test func theLineGrammarCheckRejectsWhatIsNotPrometheusText() {
        #expect(throws: PrometheusText.Malformed.self) { try PrometheusText("metric{label=\"x\" 1") }
        #expect(throws: PrometheusText.Malformed.self) { try PrometheusText("# TYPE m counter\nm one") }
        #expect(throws: PrometheusText.Malformed.self) { try PrometheusText("9metric 1") }
    }
}

/// A strict reading of the Prometheus text exposition format (version 0.0.4) for the tests: every line is a
/// `# TYPE`/`# HELP` comment, blank, or `name{label="value",…} number`; a sample's family has a `# TYPE` before it.
struct PrometheusText {
    struct Sample {
        var name: String
        var labels: [String: String]
        var value: Double
    }
    struct Malformed: Error, CustomStringConvertible {
        var description: String
    }

    var types: [String: String] = [:]
    var samples: [Sample] = []

    init(_ text: String) throws {
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            func bad(_ why: String) -> Malformed { Malformed(description: "line \(number + 1) '\(line)': \(why)") }
            if line.hasPrefix("#") {
                let parts = line.split(separator: " ", maxSplits: 3)
                if parts.count >= 2, parts[1] == "TYPE" {
                    guard parts.count == 4, Self.isName(parts[2]),
                          ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3]) else { throw bad("bad # TYPE") }
                    types[String(parts[2])] = String(parts[3])
                }
                continue
            }
            var rest = Substring(line)
            let name = rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" }
            guard Self.isName(name) else { throw bad("bad metric name") }
            rest = rest.dropFirst(name.count)
            var labels: [String: String] = [:]
            if rest.first == "{" {
                rest = rest.dropFirst()
                while rest.first != "}" {
                    let label = rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" }
                    guard Self.isName(label), !label.contains(":") else { throw bad("bad label name") }
                    rest = rest.dropFirst(label.count)
                    guard rest.hasPrefix("=\"") else { throw bad("label without =\"") }
                    rest = rest.dropFirst(2)
                    var value = ""
                    while let c = rest.first, c != "\"" {
                        if c == "\\" {
                            rest = rest.dropFirst()
                            guard let escaped = rest.first, "\\\"n".contains(escaped) else { throw bad("bad escape") }
                            value.append(escaped == "n" ? "\n" : escaped)
                        } else {
                            value.append(c)
                        }
                        rest = rest.dropFirst()
                    }
                    guard rest.first == "\"" else { throw bad("unterminated label value") }
                    rest = rest.dropFirst()
                    labels[String(label)] = value
                    if rest.first == "," { rest = rest.dropFirst() } else if rest.first != "}" { throw bad("expected , or }") }
                }
                rest = rest.dropFirst()
            }
            guard rest.first == " " else { throw bad("no space before the value") }
            let fields = rest.dropFirst().split(separator: " ")
            guard (1...2).contains(fields.count), let value = Double(fields[0].replacingOccurrences(of: "+Inf", with: "inf")) else {
                throw bad("bad value")
            }
            let family = ["_bucket", "_sum", "_count"].first { name.hasSuffix($0) && types[String(name.dropLast($0.count))] == "histogram" }
                .map { String(name.dropLast($0.count)) } ?? String(name)
            guard types[family] != nil else { throw bad("a sample without a # TYPE line before it") }
            samples.append(Sample(name: String(name), labels: labels, value: value))
        }
    }

    static func isName(_ text: Substring) -> Bool {
        guard let first = text.first, first.isASCII, first.isLetter || first == "_" || first == ":" else { return false }
        return text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ":") }
    }

    /// The value of the sample with exactly these labels.
    func value(_ name: String, _ labels: [String: String]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }
}
