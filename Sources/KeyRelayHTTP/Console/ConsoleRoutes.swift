import Foundation
import HTTPTypes
import Hummingbird

/// The web console at `/ui`: static pages and a small vanilla script (the files of `console/`, embedded at build
/// time by the EmbedConsole plugin) that call the same `/api/v2` endpoints, with the same bearer token and access
/// rules, as any client. The pages hold no data, not even the key id of their path (the script reads it from the
/// location): everything shown is fetched by the browser with the operator's token, which lives in
/// `sessionStorage` and travels only in the `Authorization` header (never in a URL).
///
/// ```swift
/// let router = api.makeRouter()          // already calls ConsoleRoutes.add(to:api:)
/// ConsoleRoutes.add(to: router, api: api) // for a router built by hand
/// ```
public enum ConsoleRoutes {
    /// Adds the console pages (`/ui`, `/ui/keys`, `/ui/keys/{id}/resources`, `/ui/keys/{id}/events`), their
    /// assets (`/ui/assets/…`, by Hummingbird's FileMiddleware over the embedded files) and the console's
    /// KeyRelay-extension endpoints (`/api/v2/_keyrelay/…`, plus `/api/v2/_dev/bus` when the API runs on a dev
    /// clock with a bus) to `router`. Every `/ui` answer carries the console's content security policy. The
    /// endpoints are authenticated by the router's middleware, as the API is (``KeyProtectAPI/makeRouter()``).
    public static func add(to router: Router<KeyRelayRequestContext>, api: KeyProtectAPI) {
        api.addConsoleAPIRoutes(to: router)
        router.addMiddleware { ConsoleMiddleware<KeyRelayRequestContext>() }
        let pages = ConsolePages.shared
        router.get("/ui") { _, _ in Response.redirect(to: "/ui/keys", type: .found) }
        router.get("/ui/keys") { _, _ in pages.response(.keys) }
        router.get("/ui/keys/{id}/resources") { _, _ in pages.response(.resources) }
        router.get("/ui/keys/{id}/events") { _, _ in pages.response(.events) }
    }

    /// The console's policy: its own script, style and API only; no inline code, no framing, no form posts, no
    /// base element, nothing from elsewhere.
    static let contentSecurityPolicy: ContentSecurityPolicy = [
        .defaultSrc(.none), .scriptSrc(.self), .styleSrc(.self), .connectSrc(.self), .imgSrc(.self),
        .formAction(.none), .frameAncestors(.none), .baseURI(.none),
    ]
}

/// The console's security headers and asset files, for `/ui` paths only (the Key Protect API keeps its own).
struct ConsoleMiddleware<Context: Hummingbird.RequestContext>: RouterMiddleware {
    let security = ContentSecurityMiddleware<Context>(contentSecurityPolicy: ConsoleRoutes.contentSecurityPolicy)
    /// Assets revalidate on every use (`no-cache`): a new binary's script is picked up at once, and an unchanged
    /// one costs a 304 by its ETag.
    let files = FileMiddleware<Context, EmbeddedConsoleFiles>(
        fileProvider: EmbeddedConsoleFiles.assets, urlBasePath: "/ui/assets",
        cacheControl: CacheControl([(MediaType(type: .text), [.noCache]), (MediaType(type: .application), [.noCache])]))
        .withAdditionalMediaTypes(forFileExtensions: [
            "js": MediaType(type: .text, subType: "javascript", parameter: ("charset", "utf-8")),
            "css": MediaType(type: .text, subType: "css", parameter: ("charset", "utf-8")),
        ])

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.uri.path == "/ui" || request.uri.path.hasPrefix("/ui/") else { return try await next(request, context) }
        return try await security.handle(request, context: context) { request, context in
            try await files.handle(request, context: context, next: next)
        }
    }
}

/// The console's pages: `layout.html` around each page's body, put together once from the embedded files. Only
/// constant text is substituted (the page's title and name); nothing from a request ever enters a page.
struct ConsolePages: Sendable {
    enum Page: String, Sendable, CaseIterable {
        case keys, resources, events

        var title: String {
            switch self {
            case .keys: "KMS keys"
            case .resources: "Associated resources"
            case .events: "Key events"
            }
        }
    }

    static let shared = ConsolePages(files: EmbeddedConsoleFiles.pages)

    let html: [Page: String]

    init(files: EmbeddedConsoleFiles) {
        let layout = files.text("layout.html")
        var html: [Page: String] = [:]
        for page in Page.allCases {
            html[page] = layout
                .replacingOccurrences(of: "{{title}}", with: page.title)
                .replacingOccurrences(of: "{{page}}", with: page.rawValue)
                .replacingOccurrences(of: "{{keysCurrent}}", with: page == .keys ? #" aria-current="page""# : "")
                // Last, so that nothing in a body is taken for a placeholder.
                .replacingOccurrences(of: "{{body}}", with: files.text("\(page.rawValue).html"))
        }
        self.html = html
    }

    /// The page, never cached (it is small, and names the script that must match this binary).
    func response(_ page: Page) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: html[page] ?? "")))
    }
}

/// The embedded console files as a Hummingbird `FileProvider`, so that FileMiddleware answers content types,
/// ETags, `If-None-Match` and ranges as it does for files on disk.
struct EmbeddedConsoleFiles: FileProvider {
    struct File: Sendable {
        var bytes: ByteBuffer
        var modified: Date
    }

    struct FileAttributes: FileMiddlewareFileAttributes, Sendable {
        var isFolder: Bool { false }
        var size: Int
        var modificationDate: Date
    }

    /// `/console.js` → the file.
    let files: [String: File]

    /// The script and stylesheet, served under `/ui/assets/`.
    static let assets = EmbeddedConsoleFiles(extensions: ["js", "css"])
    /// The HTML layout and page bodies (served only through ``ConsolePages``).
    static let pages = EmbeddedConsoleFiles(extensions: ["html"])

    init(extensions: Set<String>) {
        var files: [String: File] = [:]
        for file in EmbeddedConsole.files where extensions.contains(String(file.name.split(separator: ".").last ?? "")) {
            files["/" + file.name] = File(bytes: ByteBuffer(string: file.text), modified: Date(timeIntervalSince1970: file.modified))
        }
        self.files = files
    }

    /// The text of an embedded file; every file named here is in `console/` (the tests load every page).
    func text(_ name: String) -> String {
        files["/" + name].map { String(buffer: $0.bytes) } ?? ""
    }

    func getFileIdentifier(_ path: String) -> String? { files[path] == nil ? nil : path }

    func getAttributes(id: String) async throws -> FileAttributes? {
        files[id].map { FileAttributes(size: $0.bytes.readableBytes, modificationDate: $0.modified) }
    }

    func loadFile(id: String, context: some RequestContext) async throws -> ResponseBody {
        guard let file = files[id] else { throw HTTPError(.notFound) }
        return ResponseBody(byteBuffer: file.bytes)
    }

    func loadFile(id: String, range: ClosedRange<Int>, context: some RequestContext) async throws -> ResponseBody {
        guard let file = files[id] else { throw HTTPError(.notFound) }
        let lower = max(0, range.lowerBound)
        let upper = min(file.bytes.readableBytes - 1, range.upperBound)
        guard lower <= upper, let slice = file.bytes.getSlice(at: file.bytes.readerIndex + lower, length: upper - lower + 1) else {
            throw HTTPError(.rangeNotSatisfiable)
        }
        return ResponseBody(byteBuffer: slice)
    }
}
