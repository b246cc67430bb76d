/// Key alias rules: 2–90 characters of `[A-Za-z0-9_-]`, not a UUID, not a reserved word, at most 5 per key.
public enum Alias {
    /// Names Key Protect reserves for its own paths.
    public static let reserved: Set<String> = [
        "allowed_ip", "key", "keys", "metadata", "policy", "policies", "registration", "registrations", "ring",
        "rings", "rotate", "wrap", "unwrap", "rewrap", "version", "versions",
    ]

    /// Validates an alias, throwing `INVALID_FIELD_ERR` with the rule it breaks.
    public static func validate(_ alias: String) throws(KeyRelayError) {
        func bad(_ why: String) -> KeyRelayError {
            KeyRelayError(.invalidField, "The alias '\(alias)' is not valid: \(why)",
                          operation: "Key alias could not be created", target: ErrorTarget(.field, "alias"))
        }
        guard (2...90).contains(alias.count) else { throw bad("an alias is 2 to 90 characters long") }
        guard alias.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }) else {
            throw bad("an alias may contain only letters, digits, '_' and '-'")
        }
        guard !reserved.contains(alias.lowercased()) else { throw bad("'\(alias)' is a reserved name") }
        guard !isUUID(alias) else { throw bad("an alias must not be a UUID") }
    }

    /// Whether `text` has the shape of a UUID (8-4-4-4-12 hex digits).
    public static func isUUID(_ text: String) -> Bool {
        let groups = text.split(separator: "-", omittingEmptySubsequences: false)
        guard groups.map(\.count) == [8, 4, 4, 4, 12] else { return false }
        return groups.allSatisfy { $0.allSatisfy(\.isHexDigit) }
    }
}
