import Testing

@testable import fastmcpauth_host

/// The host's connection timers as a state machine: which timer runs in each phase.
@Suite struct ConnectionTimerTests {
    @Test func eachPhaseRunsItsOwnTimer() {
        var machine = ConnectionTimerMachine()
        #expect(machine.opened() == .idle, "a fresh connection may idle")
        #expect(machine.bytesArrived() == .header, "the first byte of a head starts the header timer")
        #expect(machine.bytesArrived() == nil, "later bytes of the same head do not restart it")
        #expect(machine.headReceived() == .body)
        #expect(machine.bytesArrived() == nil, "body bytes do not restart the body timer")
        #expect(machine.requestEnded() == .none, "no timer while the response is produced or streamed")
        #expect(machine.bytesArrived() == nil && machine.phase == .responding, "a pipelined request waits its turn")
        #expect(machine.responseEnded() == .idle, "between requests: the idle timer only")
        #expect(machine.bytesArrived() == .header, "the next request's head")
    }
}
