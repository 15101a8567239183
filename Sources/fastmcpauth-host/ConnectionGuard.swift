// Slow clients and connection floods: a connection may take `headerTimeout` from its first byte
// to a complete request head, `bodyTimeout` from the head to the end of the body, and sit idle
// `idleTimeout` between requests; while a response is being produced or streamed no timer runs.
// Past `maxConnections` open connections a new one is closed at once.
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes
import Synchronization

/// The host's limits on connections (all configurable on the command line).
struct ConnectionLimits: Sendable {
    var headerTimeout: TimeAmount = .seconds(10)
    var bodyTimeout: TimeAmount = .seconds(30)
    var idleTimeout: TimeAmount = .seconds(60)
    var maxConnections = 1024
}

/// Which timer a connection runs, as a state machine: events in, the timer to arm out.
struct ConnectionTimerMachine: Equatable {
    enum Phase: Equatable {
        /// Between requests (or before the first): the idle timer.
        case idle
        /// Bytes of a request head have arrived, the head is not complete: the header timer.
        case readingHead
        /// The head is complete, the body is not: the body timer.
        case readingBody
        /// The request is complete; the response is being produced or streamed: no timer.
        case responding
    }

    enum Timer: Equatable {
        case idle
        case header
        case body
        case none
    }

    private(set) var phase = Phase.idle

    /// The connection opened.
    mutating func opened() -> Timer { .idle }

    /// Raw bytes arrived; returns the timer to (re)arm, or nil to keep the one running.
    mutating func bytesArrived() -> Timer? {
        guard phase == .idle else { return nil }
        phase = .readingHead
        return .header
    }

    mutating func headReceived() -> Timer {
        phase = .readingBody
        return .body
    }

    mutating func requestEnded() -> Timer {
        phase = .responding
        return .none
    }

    mutating func responseEnded() -> Timer {
        phase = .idle
        return .idle
    }
}

/// The timers of one connection, shared by its two handlers (both on the channel's event loop).
final class ConnectionTimers: @unchecked Sendable {  // Used only on the connection's event loop.
    let limits: ConnectionLimits
    var machine = ConnectionTimerMachine()
    private var scheduled: Scheduled<Void>?

    init(limits: ConnectionLimits) { self.limits = limits }

    func arm(_ timer: ConnectionTimerMachine.Timer?, _ context: ChannelHandlerContext) {
        guard let timer else { return }
        scheduled?.cancel()
        scheduled = nil
        let delay: TimeAmount
        switch timer {
        case .none: return
        case .idle: delay = limits.idleTimeout
        case .header: delay = limits.headerTimeout
        case .body: delay = limits.bodyTimeout
        }
        let channel = context.channel
        scheduled = context.eventLoop.scheduleTask(in: delay) { channel.close(promise: nil) }
    }

    func cancel() {
        scheduled?.cancel()
        scheduled = nil
    }
}

/// First in the pipeline: sees raw bytes (the header timer starts with the first byte of a head).
final class ConnectionBytesHandler: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked: used only on the connection's event loop.
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    let timers: ConnectionTimers

    init(_ timers: ConnectionTimers) { self.timers = timers }

    func channelActive(context: ChannelHandlerContext) {
        timers.arm(timers.machine.opened(), context)
        context.fireChannelActive()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { timers.arm(timers.machine.opened(), context) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        timers.arm(timers.machine.bytesArrived(), context)
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timers.cancel()
        context.fireChannelInactive()
    }
}

/// After HTTP decoding: sees request heads and ends, and response ends.
final class ConnectionPartsHandler: ChannelDuplexHandler, RemovableChannelHandler, @unchecked Sendable {
    // @unchecked: used only on the connection's event loop.
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart
    let timers: ConnectionTimers

    init(_ timers: ConnectionTimers) { self.timers = timers }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: timers.arm(timers.machine.headReceived(), context)
        case .body: break
        case .end: timers.arm(timers.machine.requestEnded(), context)
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { timers.arm(timers.machine.responseEnded(), context) }
        context.write(data, promise: promise)
    }
}

/// Open connections, process-wide.
final class OpenConnections: Sendable {
    let maximum: Int
    private let count = Atomic(0)

    init(maximum: Int) { self.maximum = maximum }

    /// One more connection, unless the cap is reached.
    func enter() -> Bool {
        let now = count.wrappingAdd(1, ordering: .relaxed).newValue
        if now > maximum {
            count.wrappingSubtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func leave() { count.wrappingSubtract(1, ordering: .relaxed) }
}

extension HTTPServerBuilder {
    /// HTTP/1 with header, body and idle timeouts and a connection cap.
    static func guardedHTTP1(_ limits: ConnectionLimits) -> HTTPServerBuilder {
        let open = OpenConnections(maximum: limits.maxConnections)
        return .init { responder in GuardedHTTP1Channel(responder: responder, limits: limits, open: open) }
    }
}

/// Hummingbird's HTTP/1 channel, guarded: each connection gets its own timers, shared by its
/// bytes handler (first in the pipeline) and its parts handler (after HTTP decoding).
struct GuardedHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let responder: HTTPChannelHandler.Responder
    let limits: ConnectionLimits
    let open: OpenConnections

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        guard open.enter() else {
            return channel.close().flatMapThrowing { throw ChannelError.alreadyClosed }
        }
        channel.closeFuture.whenComplete { _ in open.leave() }
        let timers = ConnectionTimers(limits: limits)
        let inner = HTTP1Channel(
            responder: responder,
            configuration: .init(additionalChannelHandlers: [ConnectionPartsHandler(timers)])
        )
        do {
            try channel.pipeline.syncOperations.addHandler(ConnectionBytesHandler(timers), position: .first)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return inner.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await HTTP1Channel(responder: responder).handle(value: value, logger: logger)
    }
}
