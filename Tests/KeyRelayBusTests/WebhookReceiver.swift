import Foundation
import KeyRelay
import KeyRelayBus
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// One request a ``WebhookReceiver`` got.
struct ReceivedRequest: Sendable {
    var method: String
    var path: String
    /// Header names in lower case.
    var headers: [String: String]
    var body: Data
}

/// A tiny HTTP/1.1 server on 127.0.0.1 and a free port, on NIO, for the webhook tests: it records every request
/// and answers as told (a status, a redirect, or never).
final class WebhookReceiver: Sendable {
    enum Answer: Sendable {
        case status(Int, body: String = "")
        case redirect(to: String)
        /// Read the request, never answer (the client's timeout must end it).
        case never
    }

    final class Shared: Sendable {
        struct State {
            var answer: Answer
            var received: [ReceivedRequest] = []
            var children: [any Channel] = []
        }
        let state: Mutex<State>
        init(answer: Answer) { state = Mutex(State(answer: answer)) }
        func record(_ request: ReceivedRequest) -> Answer {
            state.withLock {
                $0.received.append(request)
                return $0.answer
            }
        }
    }

    private let shared: Shared
    private let channel: any Channel
    let port: Int

    private init(shared: Shared, channel: any Channel, port: Int) {
        self.shared = shared
        self.channel = channel
        self.port = port
    }

    /// Listens on 127.0.0.1, on a port the system picks.
    static func start(answer: Answer = .status(204)) async throws -> WebhookReceiver {
        let shared = Shared(answer: answer)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                shared.state.withLock { $0.children.append(child) }
                return child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.configureHTTPServerPipeline()
                    try child.pipeline.syncOperations.addHandler(RequestHandler(shared: shared))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        guard let port = channel.localAddress?.port else { throw ReceiverError.noPort }
        return WebhookReceiver(shared: shared, channel: channel, port: port)
    }

    /// A port on 127.0.0.1 that nothing listens on (bound, then closed): connecting to it is refused.
    static func closedPort() async throws -> Int {
        let receiver = try await start()
        let port = receiver.port
        try await receiver.close()
        return port
    }

    var url: URL { URL(string: "http://127.0.0.1:\(port)/hooks/kms?tenant=t1")! }

    var received: [ReceivedRequest] { shared.state.withLock { $0.received } }

    func answer(_ answer: Answer) { shared.state.withLock { $0.answer = answer } }

    /// Stops listening and closes every connection still open.
    func close() async throws {
        let children = shared.state.withLock { s -> [any Channel] in
            defer { s.children = [] }
            return s.children
        }
        for child in children { try? await child.close() }
        try await channel.close()
    }

    enum ReceiverError: Error { case noPort }
}

private final class RequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let shared: WebhookReceiver.Shared
    private var head: HTTPRequestHead?
    private var body = Data()

    init(shared: WebhookReceiver.Shared) { self.shared = shared }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = Data()
        case .body(let buffer):
            body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard let head else { return }
            var headers: [String: String] = [:]
            for (name, value) in head.headers { headers[name.lowercased()] = value }
            let answer = shared.record(ReceivedRequest(method: "\(head.method)", path: head.uri, headers: headers, body: body))
            switch answer {
            case .never:
                break
            case .status(let code, let text):
                respond(context, code, [:], text)
            case .redirect(let location):
                respond(context, 302, ["location": location], "")
            }
        }
    }

    private func respond(_ context: ChannelHandlerContext, _ code: Int, _ extra: [String: String], _ text: String) {
        var headers = HTTPHeaders()
        headers.add(name: "content-length", value: String(text.utf8.count))
        for (name, value) in extra { headers.add(name: name, value: value) }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: code), headers: headers))),
                      promise: nil)
        if !text.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}
