import Foundation
import Testing
@testable import KeyRelayCore

/// `UUIDText.format` writes its 36 characters by hand (identifiers and correlation ids are drawn on every command
/// and request): it must be Foundation's text for the same v4 UUID, lower-cased.
@Suite("UUID text")
struct UUIDTextTests {
    /// Foundation's lower-cased text of the v4 UUID that `format` makes of these 128 bits.
    func foundationText(high: UInt64, low: UInt64) -> String {
        let hi = (high & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000
        let lo = (low & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<8 {
            bytes[i] = UInt8(truncatingIfNeeded: hi >> UInt64(56 - 8 * i))
            bytes[8 + i] = UInt8(truncatingIfNeeded: lo >> UInt64(56 - 8 * i))
        }
        let uuid = UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                               bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
        return uuid.uuidString.lowercased()
    }

    @Test func equalsFoundationsLowercasedText() {
        var generator = SystemRandomNumberGenerator()
        var inputs: [(UInt64, UInt64)] = [(0, 0), (.max, .max), (0, .max), (.max, 0), (0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210)]
        for _ in 0..<5000 { inputs.append((generator.next(), generator.next())) }
        for (high, low) in inputs {
            let text = UUIDText.format(high: high, low: low)
            #expect(text == foundationText(high: high, low: low))
            #expect(Array(text)[14] == "4" && "89ab".contains(Array(text)[19]))
        }
    }
}
