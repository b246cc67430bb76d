import Foundation
import Hummingbird
import KeyRelay
import Metrics
import Prometheus

/// The server's metrics in Prometheus text format (`GET /metrics`), through swift-metrics with swift-prometheus as
/// its backend. Every layer records through the swift-metrics API (the engine, the dispatcher, group commit), so an
/// embedder who bootstraps another backend gets the same series there:
///
/// | series | type | labels | recorded by |
/// |---|---|---|---|
/// | `keyrelay_http_requests_total` | counter | `route` (the route template), `method`, `status` | Hummingbird's `MetricsMiddleware` |
/// | `keyrelay_http_request_duration_seconds` | histogram | `route`, `method`, `status` | the same |
/// | `keyrelay_lifecycle_commands_total` | counter | `action`, `outcome` (`accepted` or the reason code) | the engine |
/// | `keyrelay_notifications` | gauge | `status` | read from the outbox at each scrape |
/// | `keyrelay_drifted_registrations` | gauge | `instance` | read from the store at each scrape |
/// | `keyrelay_delivery_attempts_total` | counter | `service`, `outcome` | the dispatcher |
/// | `keyrelay_dead_letters_total` | counter | `service` | the dispatcher |
/// | `keyrelay_group_commit_batch_size` | histogram | | SQLite group commit |
///
/// `/metrics` is unauthenticated, like `/health`: it carries counts, route templates and instance ids, never a key,
/// a token or a resource. Keep the listener off the public internet, or put the scrape behind your proxy.
public final class ServerMetrics: Sendable {
    /// The registry `/metrics` renders.
    public let registry: PrometheusCollectorRegistry

    /// The process's metrics: the first use bootstraps swift-metrics' `MetricsSystem` with a Prometheus factory over
    /// a registry of its own (a process bootstraps once; `keyrelay serve` and the tests go through this).
    public static let shared: ServerMetrics = {
        let metrics = ServerMetrics(registry: PrometheusCollectorRegistry())
        MetricsSystem.bootstrap(metrics.factory)
        return metrics
    }()

    /// Metrics over `registry`, for a process that has bootstrapped `MetricsSystem` with ``factory`` itself.
    public init(registry: PrometheusCollectorRegistry) { self.registry = registry }

    /// A Prometheus factory over ``registry`` that gives Hummingbird's OpenTelemetry-style names Prometheus ones and
    /// sizes the group-commit histogram's buckets for batch sizes.
    public var factory: PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.valueHistogramBuckets["keyrelay_group_commit_batch_size"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
        factory.nameAndLabelSanitizer = { name, labels in
            (Self.names[name] ?? name, labels.map { (Self.labelNames[$0.0] ?? $0.0, $0.1) })
        }
        return factory
    }

    static let names = [
        "hb.requests": "keyrelay_http_requests_total",
        "http.server.request.duration": "keyrelay_http_request_duration_seconds",
        "hb.request.errors": "keyrelay_http_request_errors_total",
        "http.server.active_requests": "keyrelay_http_active_requests",
    ]
    static let labelNames = [
        "http.route": "route", "http.request.method": "method", "http.response.status_code": "status", "error.type": "status",
    ]

    /// Counts every request by route template and status, and times it (outermost, so errors count as rendered).
    func addRequestMetrics(to router: Router<KeyRelayRequestContext>) {
        router.add(middleware: MetricsMiddleware<KeyRelayRequestContext>())
    }

    /// `GET /metrics`: reads the gauges from the store, then renders the registry.
    func addRoute(to router: Router<KeyRelayRequestContext>, engine: KeyRelayEngine) {
        router.get("/metrics") { _, _ in try await self.scrape(engine) }
    }

    func scrape(_ engine: KeyRelayEngine) async throws -> Response {
        let snapshot = try await engine.operationalSnapshot()
        for status in NotificationStatus.allCases {
            Gauge(label: "keyrelay_notifications", dimensions: [("status", status.rawValue)]).record(snapshot.notifications[status])
        }
        for (instance, count) in snapshot.driftedRegistrations {
            Gauge(label: "keyrelay_drifted_registrations", dimensions: [("instance", instance)]).record(count)
        }
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
    }
}
