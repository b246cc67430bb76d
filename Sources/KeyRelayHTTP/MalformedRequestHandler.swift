import HTTPTypes
import Hummingbird
import HummingbirdCore
import KeyRelay
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

extension HTTPServerBuilder {
    /// Hummingbird's HTTP/1.1 server, plus Key Protect's error envelope for the requests refused below the router
    /// (by NIO's HTTP/1 parser: an unknown method, both `Content-Length` and `Transfer-Encoding`, an odd
    /// `Transfer-Encoding`, oversized headers, a body cut short…) and a clean close after them. See
    /// ``MalformedRequestHandler``. `keyrelay serve` runs it (``KeyRelayServer/makeApplication(api:host:port:logger:onServerRunning:)``).
    public static func keyRelayHTTP1() -> HTTPServerBuilder {
        .init { responder in KeyRelayHTTP1Channel(responder: responder) }
    }
}

/// Hummingbird's `HTTP1Channel`, with ``MalformedRequestHandler`` between the HTTP codec and Hummingbird's
/// connection handler, and its ``RawResponseWriter`` at the socket end of the pipeline.
struct KeyRelayHTTP1Channel: ServerChildChannel, HTTPChannelHandler {
    typealias Value = HTTP1Channel.Value
    let http1: HTTP1Channel
    var responder: HTTPChannelHandler.Responder { http1.responder }

    init(responder: @escaping HTTPChannelHandler.Responder) {
        http1 = HTTP1Channel(responder: responder)
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        http1.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            let raw = RawResponseWriter()
            try pipeline.addHandler(raw, position: .first)
            let connection = try pipeline.handler(type: HTTPConnectionStateHandler.self)
            try pipeline.addHandler(MalformedRequestHandler(raw: raw, logger: logger), position: .before(connection))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await http1.handle(value: value, logger: logger)
    }
}

/// Answers, with Key Protect's error envelope, the requests that never reach the router, and closes cleanly.
///
/// Hummingbird answers an `HTTPParserError` with an empty `400`; and after an answer with `Connection: close` it
/// stops reading (its async channel's back-pressure), so a client still uploading a body the router did not read
/// stalls until its own timeout. This handler sits after the HTTP codec and, when the bytes on the wire are refused
/// (an error from the decoder or the codec that is not an I/O error), either
/// - answers `400 BAD_BODY_ERR` itself, when no answer is owed (between requests, or a request whose head the parser
///   refused) — after the router's owed answers when requests were pipelined; or
/// - lets the router answer, when the request whose body broke is being handled: its body read fails with the
///   parser error, which ``ErrorRenderingMiddleware`` renders as the same `400`; the answer gets `Connection: close`.
///
/// Its own answer is written as bytes below NIO's HTTP encoder (``RawResponseWriter``): the encoder frames any
/// answer to `CONNECT` without a body, and after a refused head it has no request to answer. `CONNECT` is not served
/// (no route takes it) and is answered here with the `404` envelope other unknown methods get.
///
/// After the answer (or any half-close of the output, as Hummingbird does after `Connection: close`) the handler
/// *lingers*: it closes its output, keeps reading and discarding what the client still sends, and closes when the
/// client does, after ``lingerTimeout`` without input, or after ``maximumLinger`` in all. Closing at once with unread
/// input would reset the connection and can destroy the answer before the client reads it; closing while the client
/// is still sending (a large refused upload on a busy machine) would fail its upload.
final class MalformedRequestHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// How long a refused client may go without sending anything before the connection is closed under it: nginx's
    /// `lingering_timeout` (5 s; 2 s was too short for a client starved of CPU on a loaded machine, whose upload
    /// then failed).
    static let lingerTimeout = TimeAmount.seconds(5)
    /// How long a refused client may keep sending in all: a client that never stops is cut off then.
    static let maximumLinger = TimeAmount.seconds(30)

    private enum Phase {
        /// Requests pass.
        case open
        /// A request was refused while the router still owes answers to earlier ones: answer after them.
        case answerAfterOwed(KeyRelayError)
        /// The router answers the request whose body broke; close after that answer.
        case closeAfterAnswer
        /// This handler's answer is being written.
        case answering
        /// Answered: the output is closed, input is read and discarded until the client closes or the timeout.
        case lingering
    }

    private var phase = Phase.open
    /// Request heads passed on minus answers ended.
    private var owed = 0
    /// A request head was passed on and its end was not.
    private var readingBody = false
    private var inputClosed = false
    private var outputClosed = false
    /// The promise of a half-close asked for while this handler's answer is still being written (linger does it).
    private var deferredOutputClose: EventLoopPromise<Void>?
    private var lingerTimer: Scheduled<Void>?
    /// When lingering began, and whether input arrived since the linger timer was last set.
    private var lingerStart: NIODeadline?
    private var readWhileLingering = false
    private let raw: RawResponseWriter
    private let logger: Logger

    init(raw: RawResponseWriter, logger: Logger) {
        self.raw = raw
        self.logger = logger
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        lingerTimer?.cancel()
        lingerTimer = nil
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // After a refusal, what follows on the connection means nothing (while lingering, it keeps the linger going).
        guard case .open = phase else {
            if case .lingering = phase { readWhileLingering = true }
            return
        }
        switch unwrapInboundIn(data) {
        case .head(let head):
            if head.method == .connect {
                refuse(Self.connectRefusal, context: context)
                return
            }
            owed += 1
            readingBody = true
        case .body:
            break
        case .end:
            readingBody = false
        }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        switch phase {
        case .lingering, .answering: context.read()  // drain, whatever the async channel's back-pressure says
        default: context.fireChannelReadComplete()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is IOError || error is ChannelError {
            context.fireErrorCaught(error)
            return
        }
        // Only the first refusal counts: later ones are the decoder's complaints about the bytes that follow.
        guard case .open = phase else { return }
        logger.debug("Malformed HTTP request refused", metadata: ["error": "\(error)"])
        switch (readingBody, owed > 0) {
        case (true, true):
            // The router is handling this request: its body read throws this error and it answers.
            phase = .closeAfterAnswer
            context.fireErrorCaught(error)
        case (true, false):
            // Answered already (say 401 before the body); the rest of its body broke: no second answer.
            linger(context: context)
        case (false, _):
            refuse(.malformedRequest(error), context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let event = event as? ChannelEvent, event == .inputClosed else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        inputClosed = true
        switch phase {
        case .open: context.fireUserInboundEventTriggered(event)
        case .lingering: context.close(promise: nil)
        case .answerAfterOwed, .closeAfterAnswer, .answering: break  // closed once the answer is out
        }
    }

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch phase {
        case .answering, .lingering:
            // Answered: what the router writes now (Hummingbird's empty 400 for the same error) is not sent.
            promise?.succeed(())
            return
        case .open, .answerAfterOwed, .closeAfterAnswer:
            break
        }
        switch unwrapOutboundIn(data) {
        case .head(var response):
            if case .closeAfterAnswer = phase {
                response.headerFields[.connection] = "close"
                context.write(wrapOutboundOut(.head(response)), promise: promise)
                return
            }
            context.write(data, promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            owed = max(0, owed - 1)
            guard owed == 0 else {
                context.write(data, promise: promise)
                return
            }
            switch phase {
            case .answerAfterOwed(let refusal):
                context.write(data, promise: promise)
                answer(refusal, context: context)
            case .closeAfterAnswer:
                phase = .answering
                let written = context.eventLoop.makePromise(of: Void.self)
                context.write(data, promise: written)
                written.futureResult.assumeIsolated().whenComplete { result in
                    promise?.completeWith(result)
                    self.linger(context: context)
                }
            default:
                context.write(data, promise: promise)
            }
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .output else {
            context.close(mode: mode, promise: promise)
            return
        }
        if outputClosed {
            promise?.succeed(())
            return
        }
        if case .answering = phase {
            // Not before the answer is on the wire: shutting the output down fails the writes still pending.
            deferredOutputClose = promise
            return
        }
        // Hummingbird half-closes after an answer with `Connection: close`: drain what the client still sends (a
        // body the router did not read) rather than stall it.
        outputClosed = true
        context.close(mode: .output, promise: promise)
        if case .open = phase { linger(context: context) }
    }

    // MARK: Answering and lingering

    private func refuse(_ refusal: KeyRelayError, context: ChannelHandlerContext) {
        if owed > 0 {
            phase = .answerAfterOwed(refusal)
        } else {
            answer(refusal, context: context)
        }
    }

    private func answer(_ refusal: KeyRelayError, context: ChannelHandlerContext) {
        phase = .answering
        let written = context.eventLoop.makePromise(of: Void.self)
        raw.write(refusal.http1Response(), promise: written)
        written.futureResult.assumeIsolated().whenComplete { _ in
            self.linger(context: context)
        }
    }

    private func linger(context: ChannelHandlerContext) {
        phase = .lingering
        readingBody = false
        if !outputClosed {
            outputClosed = true
            context.close(mode: .output, promise: deferredOutputClose)
            deferredOutputClose = nil
        }
        if inputClosed {
            context.close(promise: nil)
            return
        }
        context.read()
        if lingerTimer == nil {
            lingerStart = .now()
            scheduleLingerCheck(context: context)
        }
    }

    /// Closes the connection once the client has sent nothing for ``lingerTimeout``, or ``maximumLinger`` after the
    /// linger began.
    private func scheduleLingerCheck(context: ChannelHandlerContext) {
        readWhileLingering = false
        lingerTimer = context.eventLoop.assumeIsolated().scheduleTask(in: Self.lingerTimeout) { [self] in
            let started = lingerStart ?? .now()
            if readWhileLingering, NIODeadline.now() < started + Self.maximumLinger {
                scheduleLingerCheck(context: context)
            } else {
                context.close(promise: nil)
            }
        }
    }

    /// `CONNECT` is not served: the `404` other unknown methods get from the router.
    static let connectRefusal = KeyRelayError.noEndpoint(matching: "CONNECT")
}

/// Writes bytes straight to the socket, below NIO's HTTP encoder (``MalformedRequestHandler``'s answers).
/// Every other write passes unchanged.
final class RawResponseWriter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func write(_ bytes: ByteBuffer, promise: EventLoopPromise<Void>) {
        guard let context else { return promise.fail(ChannelError.ioOnClosedChannel) }
        context.writeAndFlush(NIOAny(bytes), promise: promise)
    }
}

extension KeyRelayError {
    /// The refusal of a request that is not HTTP/1.1 as NIO's parser reads it: `400 BAD_BODY_ERR`, with NIO's
    /// own short description (never the request's bytes).
    static func malformedRequest(_ error: any Error) -> KeyRelayError {
        let why = (error as? HTTPParserError)?.debugDescription ?? String(describing: type(of: error))
        return KeyRelayError(.badBody, "The request is not valid HTTP/1.1 (\(why))", operation: "Request could not be processed")
    }

    /// The whole HTTP/1.1 answer as bytes, for ``RawResponseWriter``: the status line, `Content-Type`,
    /// `Content-Length`, `Connection: close`, and the envelope ``wireBody``.
    func http1Response() -> ByteBuffer {
        let body = wireBody
        var bytes = ByteBuffer()
        bytes.writeString("HTTP/1.1 \(statusCode) \(HTTPStatusPhrase.phrase(for: statusCode))\r\n")
        bytes.writeString("Content-Type: \(MediaTypes.json)\r\nContent-Length: \(body.readableBytes)\r\nConnection: close\r\n\r\n")
        bytes.writeImmutableBuffer(body)
        return bytes
    }
}
