import MicroHTTPD
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized) struct TerminationSignalsTests {
    /// The signal is sent to this thread only (pthread_kill), where it is blocked, so no other thread of
    /// the test process can take the default action (termination).
    @Test(arguments: [SIGTERM, SIGINT])
    func waitReturnsTheBlockedSignal(signal: Int32) {
        var old = sigset_t()
        pthread_sigmask(SIG_SETMASK, nil, &old)
        defer { pthread_sigmask(SIG_SETMASK, &old, nil) }
        TerminationSignals.block()
        #expect(pthread_kill(pthread_self(), signal) == 0)
        #expect(TerminationSignals.wait() == signal)
    }
}
