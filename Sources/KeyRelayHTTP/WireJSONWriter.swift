import Foundation

/// A wire type that writes its own JSON: byte for byte what Foundation's `JSONEncoder` writes for it with
/// `[.sortedKeys, .withoutEscapingSlashes]` (the answers KeyRelay has always given), at a fraction of the cost.
///
/// Foundation's encoder builds a tree of dictionaries (hashing every key), tracks coding paths and sorts each object
/// through unspecialized generic code: ≈ 190,000 instructions for one key's answer, as much as the store read behind
/// it (docs/performance.md, "HTTP edge: reads on the calling thread, answers that write themselves"). The answers of the hot routes (a key, wrap, unwrap, every error) write
/// their members directly, in sorted order, with Foundation's string escapes. Each conformance names its members in
/// byte order of their keys and leaves out absent optionals, as the synthesized `Encodable` conformance does.
///
/// Nothing can drift unnoticed: `WireJSON.encode` compares both encoders on every answer in debug builds (every test
/// suite, the interop and schemathesis runs), and `WireJSONWriterTests` compares them on awkward values.
protocol JSONWritable {
    func writeJSON(to output: inout WireJSONWriter)
}

/// The output of ``JSONWritable`` values: a byte buffer and whether the current object or array has a member yet.
struct WireJSONWriter {
    private(set) var bytes: [UInt8] = []
    private var empty = true

    init(capacity: Int = 1024) { bytes.reserveCapacity(capacity) }

    /// The JSON of `value`.
    static func encode(_ value: some JSONWritable) -> [UInt8] {
        var writer = WireJSONWriter()
        value.writeJSON(to: &writer)
        return writer.bytes
    }

    // MARK: Containers

    /// `{…}`: `members` writes the object's fields, in byte order of their keys.
    mutating func object(_ members: (inout WireJSONWriter) -> Void) {
        let outer = empty
        bytes.append(UInt8(ascii: "{"))
        empty = true
        members(&self)
        bytes.append(UInt8(ascii: "}"))
        empty = outer
    }

    /// `[…]` of `elements`.
    mutating func array<Element>(_ elements: [Element], _ write: (Element, inout WireJSONWriter) -> Void) {
        bytes.append(UInt8(ascii: "["))
        for (index, element) in elements.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            write(element, &self)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// `"key":` after a comma when the object has a member already. Keys are ASCII identifiers (no escapes).
    private mutating func key(_ key: StaticString) {
        if !empty { bytes.append(UInt8(ascii: ",")) }
        empty = false
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount))
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
    }

    // MARK: Members (an absent optional is left out)

    mutating func field(_ name: StaticString, _ value: String?) {
        guard let value else { return }
        key(name)
        string(value)
    }

    mutating func field(_ name: StaticString, _ value: Bool?) {
        guard let value else { return }
        key(name)
        bytes.append(contentsOf: value ? "true".utf8 : "false".utf8)
    }

    mutating func field(_ name: StaticString, _ value: Int?) {
        guard let value else { return }
        key(name)
        bytes.append(contentsOf: String(value).utf8)
    }

    mutating func field(_ name: StaticString, _ value: [String]) {
        key(name)
        array(value) { element, output in output.string(element) }
    }

    mutating func field(_ name: StaticString, _ value: (some JSONWritable)?) {
        guard let value else { return }
        key(name)
        value.writeJSON(to: &self)
    }

    mutating func field<Element: JSONWritable>(_ name: StaticString, _ value: [Element]) {
        key(name)
        array(value) { element, output in element.writeJSON(to: &output) }
    }

    // MARK: Strings

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// A JSON string with Foundation's escapes: `"`, `\`, `\b \t \n \f \r`, other control characters as `\u00xx`;
    /// nothing else (not `/`, not `DEL`, not any non-ASCII character).
    mutating func string(_ text: String) {
        var text = text
        bytes.append(UInt8(ascii: "\""))
        text.withUTF8 { utf8 in
            var runStart = 0
            for index in 0..<utf8.count {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                if runStart < index { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index])) }
                runStart = index + 1
                bytes.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(byte)
                case 0x08: bytes.append(UInt8(ascii: "b"))
                case 0x09: bytes.append(UInt8(ascii: "t"))
                case 0x0A: bytes.append(UInt8(ascii: "n"))
                case 0x0C: bytes.append(UInt8(ascii: "f"))
                case 0x0D: bytes.append(UInt8(ascii: "r"))
                default:
                    bytes.append(contentsOf: "u00".utf8)
                    bytes.append(Self.hexDigits[Int(byte >> 4)])
                    bytes.append(Self.hexDigits[Int(byte & 0x0F)])
                }
            }
            if runStart < utf8.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...])) }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

// MARK: - The hot answers (members in byte order of their keys)

extension WireCollection: JSONWritable where Resource: JSONWritable {
    func writeJSON(to output: inout WireJSONWriter) {
        output.object { o in
            o.field("metadata", metadata)
            o.field("resources", resources)
        }
    }
}

extension WireCollection.Metadata: JSONWritable {
    func writeJSON(to output: inout WireJSONWriter) {
        output.object { o in
            o.field("collectionTotal", collectionTotal)
            o.field("collectionType", collectionType)
            o.field("totalCount", totalCount)
        }
    }
}

extension KeyRepresentation: JSONWritable {
    func writeJSON(to output: inout WireJSONWriter) {
        output.object { o in
            o.field("algorithmBitSize", algorithmBitSize)
            o.field("algorithmMetadata", algorithmMetadata)
            o.field("algorithmMode", algorithmMode)
            o.field("algorithmType", algorithmType)
            o.field("aliases", aliases)
            o.field("createdBy", createdBy)
            o.field("creationDate", creationDate)
            o.field("crn", crn)
            o.field("deleted", deleted)
            o.field("deletedBy", deletedBy)
            o.field("deletionDate", deletionDate)
            o.field("description", description)
            o.field("dualAuthDelete", dualAuthDelete)
            o.field("expirationDate", expirationDate)
            o.field("extractable", extractable)
            o.field("id", id)
            o.field("imported", imported)
            o.field("keyRingID", keyRingID)
            o.field("keyVersion", keyVersion)
            o.field("lastRotateDate", lastRotateDate)
            o.field("lastUpdateDate", lastUpdateDate)
            o.field("name", name)
            o.field("payload", payload)
            o.field("purgeAllowed", purgeAllowed)
            o.field("purgeAllowedFrom", purgeAllowedFrom)
            o.field("purgeScheduledOn", purgeScheduledOn)
            o.field("restoreAllowed", restoreAllowed)
            o.field("restoreExpirationDate", restoreExpirationDate)
            o.field("rotation", rotation)
            o.field("state", state)
            o.field("tags", tags)
            o.field("type", type)
        }
    }
}

extension KeyRepresentation.AlgorithmMetadata: JSONWritable {
    func writeJSON(to output: inout WireJSONWriter) {
        output.object { o in
            o.field("bitLength", bitLength)
            o.field("mode", mode)
        }
    }
}

extension KeyRepresentation.DualAuthDelete: JSONWritable {
    func writeJSON(to output: inout WireJSONWriter) {
        output.object { o in
            o.field("authExpiration", authExpiration)
            o.field("enabled", enabled)
            o.field("keySetForDeletion", keySetForDeletion)
        }
    }
}

extension KeyRepresentation.Rotation: JSONWritable {
    func writeJSON(to output: inout WireJSONWriter) {
        output.object { o in
            o.field("enabled", enabled)
            o.field("interval_month", intervalMonth)
        }
    }
}

extension KeyVersionRepresentation: JSONWritable {
    func writeJSON(to output: inout WireJSONWriter) {
        output.object { o in
            o.field("creationDate", creationDate)
            o.field("id", id)
        }
    }
}

extension KeyVersionReference: JSONWritable {
    func writeJSON(to output: inout WireJSONWriter) {
        output.object { o in o.field("id", id) }
    }
}

extension WrapResponse: JSONWritable {
    func writeJSON(to output: inout WireJSONWriter) {
        output.object { o in
            o.field("ciphertext", ciphertext)
            o.field("keyVersion", keyVersion)
            o.field("plaintext", plaintext)
        }
    }
}

extension UnwrapResponse: JSONWritable {
    func writeJSON(to output: inout WireJSONWriter) {
        output.object { o in
            o.field("ciphertext", ciphertext)
            o.field("keyVersion", keyVersion)
            o.field("plaintext", plaintext)
            o.field("rewrappedKeyVersion", rewrappedKeyVersion)
        }
    }
}

extension ErrorResource: JSONWritable {
    func writeJSON(to output: inout WireJSONWriter) {
        output.object { o in
            o.field("errorMsg", errorMsg)
            o.field("reasons", reasons)
        }
    }
}

extension ErrorReason: JSONWritable {
    func writeJSON(to output: inout WireJSONWriter) {
        output.object { o in
            o.field("code", code)
            o.field("message", message)
            o.field("moreInfo", moreInfo)
            o.field("status", status)
            o.field("target", target)
        }
    }
}

extension ErrorReason.Target: JSONWritable {
    func writeJSON(to output: inout WireJSONWriter) {
        output.object { o in
            o.field("name", name)
            o.field("type", type)
        }
    }
}

extension UnauthorizedBody: JSONWritable {
    func writeJSON(to output: inout WireJSONWriter) {
        output.object { o in o.field("errorMsg", errorMsg) }
    }
}
