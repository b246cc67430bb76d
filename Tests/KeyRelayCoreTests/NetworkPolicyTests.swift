import Testing
@testable import KeyRelayCore

/// The address rules behind the `allowedIP` and `allowedNetwork` instance policies.
@Suite("Network policies")
struct NetworkPolicyTests {
    @Test func addressesAndBlocksParseAsTheCLibraryReadsThem() throws {
        #expect(IPAddress("203.0.113.7")?.bytes == [203, 0, 113, 7])
        #expect(IPAddress("::ffff:10.1.2.3")?.bytes == [10, 1, 2, 3])            // IPv4-mapped: the IPv4 address
        #expect(IPAddress("2001:db8::1")?.bytes.count == 16)
        #expect(IPAddress("fe80::1%eth0")?.bytes.count == 16)                     // a zone is ignored
        for bad in ["", "1.2.3", "1.2.3.256", "2001:db8:::1", "example.com", "1.2.3.4/8", String(repeating: "1", count: 100)] {
            #expect(IPAddress(bad) == nil, "\(bad)")
        }
        #expect(IPAddressRange("10.0.0.0/8")?.prefixLength == 8)
        #expect(IPAddressRange("192.0.2.1")?.prefixLength == 32)
        #expect(IPAddressRange("2001:db8::/32")?.prefixLength == 32)
        for bad in ["10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/", "2001:db8::/129", "10.0.0.0/8/8", "10.0.0.0/99999999999999999999", "/8"] {
            #expect(IPAddressRange(bad) == nil, "\(bad)")
        }
    }

    @Test func aBlockContainsExactlyItsAddresses() throws {
        let ten = try #require(IPAddressRange("10.0.0.0/8"))
        #expect(ten.contains(try #require(IPAddress("10.255.0.1"))))
        #expect(!ten.contains(try #require(IPAddress("11.0.0.1"))))
        let odd = try #require(IPAddressRange("192.168.4.0/22"))
        #expect(odd.contains(try #require(IPAddress("192.168.7.255"))))
        #expect(!odd.contains(try #require(IPAddress("192.168.8.0"))))
        let v6 = try #require(IPAddressRange("2001:db8::/32"))
        #expect(v6.contains(try #require(IPAddress("2001:db8:ffff::1"))))
        #expect(!v6.contains(try #require(IPAddress("2001:db9::1"))))
        #expect(!v6.contains(try #require(IPAddress("10.0.0.1"))))                // families never mix
        #expect(try #require(IPAddressRange("0.0.0.0/0")).contains(try #require(IPAddress("8.8.8.8"))))
    }

    @Test func aPolicyAdmitsByAddressAndListener() throws {
        let local = try #require(IPAddress("127.0.0.1"))
        let outside = try #require(IPAddress("198.51.100.9"))
        #expect(NetworkAccessPolicy.open.admits(address: nil, network: .public))
        let allowed = NetworkAccessPolicy(allowedIP: [try #require(IPAddressRange("127.0.0.0/8"))])
        #expect(allowed.admits(address: local, network: .public))
        #expect(!allowed.admits(address: outside, network: .public))
        #expect(!allowed.admits(address: nil, network: .public))                 // unknown address: fails closed
        let privateOnly = NetworkAccessPolicy(privateOnly: true)
        #expect(!privateOnly.admits(address: local, network: .public))
        #expect(privateOnly.admits(address: local, network: .private))
    }
}
