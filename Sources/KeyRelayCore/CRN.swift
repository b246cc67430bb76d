/// A Cloud Resource Name: `crn:v1:<cname>:<ctype>:<service-name>:<location>:<scope>:<service-instance>:<resource-type>:<resource>`.
///
/// Every segment is validated. The resource segment may itself contain `:` (Cloud Databases uses
/// `crn:…:<instance>::/agentid=1234`-style resources), so everything after the ninth `:` is the resource.
public struct CRN: Sendable, Hashable, Codable, CustomStringConvertible {
    public let cname: String
    public let ctype: String
    public let serviceName: String
    public let location: String
    public let scope: String
    public let serviceInstance: String
    public let resourceType: String
    public let resource: String

    /// The CRN as text.
    public var description: String {
        "crn:v1:\(cname):\(ctype):\(serviceName):\(location):\(scope):\(serviceInstance):\(resourceType):\(resource)"
    }

    /// Parses and validates a CRN. The error names the segment that is wrong.
    public init(parsing text: String) throws(KeyRelayError) {
        func bad(_ why: String) -> KeyRelayError {
            KeyRelayError(.invalidField, "The resource CRN '\(text)' is not valid: \(why)",
                          operation: "Registration could not be processed", target: ErrorTarget(.field, "resourceCrn"))
        }
        // ASCII text (every CRN a service sends) is checked on its bytes: the Character checks below break the text
        // into grapheme clusters and look each one's Unicode properties up, which made parsing the CRN of every
        // acknowledgement a noticeable part of a delivery's CPU (issue 11). For ASCII the answers are the same: one
        // character per byte, and the whitespace (and newline) characters are U+0009–U+000D and U+0020.
        let ascii = text.utf8.allSatisfy { $0 < 0x80 }
        guard (ascii ? text.utf8.count : text.count) <= 512 else { throw bad("it is longer than 512 characters") }
        let whitespace = ascii ? text.utf8.contains { $0 == 0x20 || (0x09...0x0D).contains($0) }
                               : text.contains { $0.isWhitespace || $0.isNewline }
        guard !whitespace else { throw bad("it contains whitespace") }
        guard !StoredText.containsNUL(text) else { throw bad("it contains the character U+0000 (NUL)") }
        // Split on bytes too when ASCII (a `Character` split was ≈ 39,000 of the ≈ 55,000 instructions of parsing an
        // acknowledgement's CRN). Not otherwise: a ':' followed by a combining mark is one Character, not a separator.
        let parts = ascii
            ? text.utf8.split(separator: UInt8(ascii: ":"), maxSplits: 9, omittingEmptySubsequences: false).map { String(Substring($0)) }
            : text.split(separator: ":", maxSplits: 9, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 10 else {
            throw bad("a CRN has 10 segments separated by ':' (crn:v1:cname:ctype:service-name:location:scope:service-instance:resource-type:resource), found \(parts.count)")
        }
        guard parts[0] == "crn" else { throw bad("it must start with 'crn'") }
        guard parts[1] == "v1" else { throw bad("the version segment must be 'v1'") }
        guard !parts[2].isEmpty else { throw bad("the cname segment (e.g. 'bluemix') is empty") }
        guard !parts[3].isEmpty else { throw bad("the ctype segment (e.g. 'public') is empty") }
        guard !parts[4].isEmpty else { throw bad("the service-name segment (e.g. 'cloud-object-storage') is empty") }
        let allowedService = parts[4].utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
        }
        guard allowedService else { throw bad("the service-name segment must be lowercase letters, digits, '-', '_' or '.'") }
        let scope = parts[6]
        if !scope.isEmpty {
            let pieces = ascii
                ? scope.utf8.split(separator: UInt8(ascii: "/"), maxSplits: 1, omittingEmptySubsequences: false).map { Substring($0) }
                : scope.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard pieces.count == 2, ["a", "o", "p", "s"].contains(pieces[0]), !pieces[1].isEmpty else {
                throw bad("the scope segment must be empty or '<a|o|p|s>/<id>', e.g. 'a/<account id>'")
            }
        }
        if parts[4] == "cloud-object-storage", parts[8] == "bucket" {
            guard !parts[9].isEmpty else { throw bad("a bucket CRN must name the bucket") }
            guard !parts[7].isEmpty else { throw bad("a bucket CRN must name its service instance") }
        }
        cname = parts[2]
        ctype = parts[3]
        serviceName = parts[4]
        location = parts[5]
        self.scope = scope
        serviceInstance = parts[7]
        resourceType = parts[8]
        resource = parts[9]
    }

    /// A Cloud Object Storage bucket CRN.
    public static func bucket(account: String, serviceInstance: String, bucket: String) -> String {
        "crn:v1:bluemix:public:cloud-object-storage:global:a/\(account):\(serviceInstance):bucket:\(bucket)"
    }

    /// A Cloud Databases deployment CRN (`databases-for-postgresql` etc.).
    public static func deployment(service: String = "databases-for-postgresql", region: String = "us-south",
                                  account: String, deployment: String) -> String {
        "crn:v1:bluemix:public:\(service):\(region):a/\(account):\(deployment)::"
    }

    /// Whether `text` matches a CRN query: exact, or a prefix when the query ends with `*`.
    public static func matches(_ text: String, query: String) -> Bool {
        if query.hasSuffix("*") { return text.hasPrefix(String(query.dropLast())) }
        return text == query
    }
}
