/// The one rule on text that KeyRelay keeps or looks up: it never contains U+0000 (NUL).
///
/// PostgreSQL's `text` cannot hold U+0000 (it refuses the statement with SQLSTATE 22021), and SQLite would keep it,
/// so without a rule the same request would be stored on one backend and fail on the other. The engine refuses such
/// text in every field it writes (`INVALID_FIELD_ERR`, 400, naming the field) and answers a lookup by such a reference
/// as it answers any reference that names nothing (404), on every backend alike.
public enum StoredText {
    /// Whether `text` contains U+0000.
    public static func containsNUL(_ text: String) -> Bool {
        text.utf8.contains(0)
    }

    /// Refuses `text` when it contains U+0000, naming `field` (nil text is allowed).
    public static func check(_ text: String?, field: String, operation: String) throws(KeyRelayError) {
        guard let text, containsNUL(text) else { return }
        throw KeyRelayError(.invalidField, "The field '\(field)' must be: text without the character U+0000 (NUL)",
                            operation: operation, target: ErrorTarget(.field, field))
    }

    /// Refuses every element of `texts` that contains U+0000, naming `field`.
    public static func check(_ texts: [String], field: String, operation: String) throws(KeyRelayError) {
        for text in texts { try check(text, field: field, operation: operation) }
    }
}
