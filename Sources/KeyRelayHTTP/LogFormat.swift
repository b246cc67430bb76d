import Foundation
import KeyRelay
import Logging

/// How `keyrelay serve` writes its log lines (`--log-format`).
public enum LogFormat: String, Sendable, CaseIterable {
    /// swift-log's `StreamLogHandler` lines: `<time> <level> <label>: <metadata> <message>`.
    case text
    /// One JSON object per line (``JSONLogHandler``), for log pipelines.
    case json

    /// A handler factory for `LoggingSystem.bootstrap`: lines at `level` and above, to standard error (standard
    /// output is the server's notices and, with `--audit -`, the audit trail).
    public func handlerFactory(level: Logger.Level) -> @Sendable (String) -> any LogHandler {
        switch self {
        case .text:
            return { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        case .json:
            return { label in
                var handler = JSONLogHandler(label: label, write: JSONLogHandler.standardError)
                handler.logLevel = level
                return handler
            }
        }
    }
}

extension Logger.Level {
    /// The names `--log-level` accepts, lowest first.
    public static let names = Logger.Level.allCases.map(\.rawValue)
}

/// A swift-log handler that writes each record as one JSON object on one line: `time` (RFC 3339 with
/// milliseconds), `level`, `label`, `message`, `source`, then the metadata as top-level fields (a metadata key
/// never replaces one of those five).
///
/// ```json
/// {"correlation_id":"…","duration_ms":"1.204","label":"keyrelay.http","level":"info","message":"POST /api/v2/keys 201",…}
/// ```
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let write: @Sendable (String) -> Void

    /// - Parameter write: receives one complete line (with its newline) per record.
    public init(label: String, metadataProvider: Logger.MetadataProvider? = nil, write: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.metadataProvider = metadataProvider
        self.write = write
    }

    /// Writes a line to standard error with one `write(2)`, so concurrent lines never interleave. A failed write
    /// (standard error closed) loses the line rather than stopping the server.
    public static let standardError: @Sendable (String) -> Void = { line in
        try? FileHandle.standardError.write(contentsOf: Data(line.utf8))
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { $1 } }
        if let explicit = event.metadata { fields.merge(explicit) { $1 } }
        let line = Line(time: Timestamp.formatMilliseconds(Date()), level: event.level.rawValue, label: label,
                        message: event.message.description, source: event.source, metadata: fields)
        guard let data = try? Self.encoder.encode(line) else { return }
        write(String(decoding: data, as: UTF8.self) + "\n")
    }


    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// One record: the fixed fields, and the metadata beside them.
    struct Line: Encodable {
        var time: String
        var level: String
        var label: String
        var message: String
        var source: String
        var metadata: Logger.Metadata

        static let fixed: Set<String> = ["time", "level", "label", "message", "source"]

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: FieldKey.self)
            for (key, value) in metadata where !Self.fixed.contains(key) {
                try container.encode(MetadataJSON(value), forKey: FieldKey(key))
            }
            try container.encode(time, forKey: FieldKey("time"))
            try container.encode(level, forKey: FieldKey("level"))
            try container.encode(label, forKey: FieldKey("label"))
            try container.encode(message, forKey: FieldKey("message"))
            try container.encode(source, forKey: FieldKey("source"))
        }
    }

    /// A metadata value as JSON: strings as strings, arrays and dictionaries as themselves.
    struct MetadataJSON: Encodable {
        let value: Logger.Metadata.Value
        init(_ value: Logger.Metadata.Value) { self.value = value }

        func encode(to encoder: any Encoder) throws {
            switch value {
            case .string(let text):
                var container = encoder.singleValueContainer()
                try container.encode(text)
            case .stringConvertible(let convertible):
                var container = encoder.singleValueContainer()
                try container.encode(convertible.description)
            case .array(let values):
                var container = encoder.unkeyedContainer()
                for value in values { try container.encode(MetadataJSON(value)) }
            case .dictionary(let values):
                var container = encoder.container(keyedBy: FieldKey.self)
                for (key, value) in values { try container.encode(MetadataJSON(value), forKey: FieldKey(key)) }
            }
        }
    }

    struct FieldKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ name: String) { stringValue = name }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}
