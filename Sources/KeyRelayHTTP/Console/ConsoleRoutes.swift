import Foundation
import HTTPTypes
import Hummingbird
import Mustache

/// The web console at `/ui`: server-rendered pages (Mustache templates compiled into the binary) and a small
/// vanilla script that calls the same `/api/v2` endpoints, with the same bearer token and access rules, as any
/// client. The pages hold no data: everything shown is fetched by the browser with the operator's token, which
/// lives in `sessionStorage` and travels only in the `Authorization` header (never in a URL).
///
/// ```swift
/// let router = api.makeRouter()          // already calls ConsoleRoutes.add(to:api:)
/// ConsoleRoutes.add(to: router, api: api) // for a router built by hand
/// ```
public enum ConsoleRoutes {
    /// Adds the console pages (`/ui`, `/ui/keys`, `/ui/keys/{id}/resources`, `/ui/keys/{id}/events`), their
    /// assets (`/ui/assets/…`) and the console's KeyRelay-extension endpoints (`/api/v2/_keyrelay/…`, plus
    /// `POST /api/v2/_dev/bus` when the API runs on a dev clock with a bus) to `router`.
    public static func add<Context: Hummingbird.RequestContext>(to router: Router<Context>, api: KeyProtectAPI) {
        api.addConsoleAPIRoutes(to: router)
        let pages = ConsolePages.shared
        router.get("/ui") { _, _ in redirect("/ui/keys") }
        router.get("/ui/keys") { _, _ in pages.page(.keys) }
        router.get("/ui/keys/{id}/resources") { _, context in pages.page(.resources, keyID: try keyID(context)) }
        router.get("/ui/keys/{id}/events") { _, context in pages.page(.events, keyID: try keyID(context)) }
        router.get("/ui/assets/console.js") { _, _ in asset(ConsoleAssets.script, type: "text/javascript; charset=utf-8") }
        router.get("/ui/assets/console.css") { _, _ in asset(ConsoleAssets.stylesheet, type: "text/css; charset=utf-8") }
    }

    /// The `{id}` path parameter, percent-decoded (the template escapes it; the script encodes it again).
    static func keyID<Context: Hummingbird.RequestContext>(_ context: Context) throws -> String {
        let raw = try context.parameters.require("id")
        return raw.removingPercentEncoding ?? raw
    }

    static func redirect(_ location: String) -> Response {
        var headers = HTTPFields()
        headers[.location] = location
        return Response(status: .found, headers: headers)
    }

    static func asset(_ text: String, type: String) -> Response {
        var headers = securityHeaders
        headers[.contentType] = type
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    /// Headers on every console response: no inline script or style, nothing from elsewhere, no framing, no referrer.
    static var securityHeaders: HTTPFields {
        var headers = HTTPFields()
        headers[HTTPField.Name("Content-Security-Policy")!] =
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        return headers
    }
}

/// The console's pages, rendered from the templates in ``ConsoleTemplates``.
struct ConsolePages: Sendable {
    enum Page: String, Sendable {
        case keys, resources, events
    }

    static let shared = ConsolePages()

    let library: MustacheLibrary

    init() {
        var library = MustacheLibrary()
        for (name, text) in ConsoleTemplates.all {
            do {
                try library.register(text, named: name)
            } catch {
                // The templates are compiled into the binary and covered by the tests: a parse error is a bug.
                preconditionFailure("console template '\(name)' does not parse: \(error)")
            }
        }
        self.library = library
    }

    /// Renders `page` (inside the layout) for `keyID`, which is escaped by the template.
    func render(_ page: Page, keyID: String? = nil) -> String {
        let titles: [Page: String] = [.keys: "KMS keys", .resources: "Associated resources", .events: "Key events"]
        var context: [String: Any] = [
            "page": page.rawValue,
            "title": titles[page] ?? "KeyRelay",
            "keysActive": page == .keys,
        ]
        if let keyID {
            context["keyID"] = keyID
            context["hasKey"] = true
        }
        let body = library.render(context, withTemplate: page.rawValue) ?? ""
        context["body"] = body
        return library.render(context, withTemplate: "layout") ?? ""
    }

    func page(_ page: Page, keyID: String? = nil) -> Response {
        var headers = ConsoleRoutes.securityHeaders
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: render(page, keyID: keyID))))
    }
}
