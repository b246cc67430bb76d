import Hummingbird
import KeyRelay

/// `GET /health` (the process is alive and serving) and `GET /ready` (the store answers a read): for load
/// balancers and orchestrators, so unauthenticated, and answering no data — only a status and an empty body.
enum HealthRoutes {
    static func add(to router: Router<KeyRelayRequestContext>, engine: KeyRelayEngine) {
        router.get("/health") { _, _ -> HTTPResponse.Status in .ok }
        router.head("/health") { _, _ -> HTTPResponse.Status in .ok }
        router.get("/ready") { _, _ in await ready(engine) }
        router.head("/ready") { _, _ in await ready(engine) }
    }

    private static func ready(_ engine: KeyRelayEngine) async -> HTTPResponse.Status {
        await engine.isStoreReachable() ? .ok : .serviceUnavailable
    }
}
