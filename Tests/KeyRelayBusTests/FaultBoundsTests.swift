import Foundation
@testable import KeyRelayBus
import KeyRelayCore
import Testing

@Suite("fault injection bounds")
struct FaultBoundsTests {
    @Test("counters saturate at the documented maximum: two huge injections do not overflow")
    func countersSaturate() {
        let bus = ServiceBus()
        bus.dropNext(Int.max, for: ServiceTopic.objectStorage)
        bus.dropNext(Int.max, for: ServiceTopic.objectStorage)
        bus.failNext(.max, for: ServiceTopic.objectStorage)
        bus.failNext(5, for: ServiceTopic.objectStorage)
        bus.duplicateNext(-3, for: ServiceTopic.objectStorage)
        let faults = bus.faults(for: ServiceTopic.objectStorage)
        #expect(faults.dropNext == FaultInjector.maximumCount)
        #expect(faults.failNext == FaultInjector.maximumCount)
        #expect(faults.duplicateNext == 0)
    }

    @Test("a delay is kept within the longest duration")
    func delayBounded() {
        let bus = ServiceBus()
        bus.delay(1e300, for: ServiceTopic.objectStorage)
        #expect(bus.faults(for: ServiceTopic.objectStorage).delay == DurationText.maximum)
        bus.delay(.nan, for: ServiceTopic.objectStorage)
        #expect(bus.faults(for: ServiceTopic.objectStorage).delay == nil)
    }
}
