import Foundation

// Usage: ConsoleEmbedder OUTPUT.swift FILE...
// Writes `EmbeddedConsole.files`: (name, modified, text) for each file, in argument order. `modified` is the file's
// modification time, so an edited file gets a new ETag from Hummingbird's FileMiddleware.
let arguments = CommandLine.arguments.dropFirst()
guard let output = arguments.first else {
    FileHandle.standardError.write(Data("usage: ConsoleEmbedder OUTPUT.swift FILE...\n".utf8))
    exit(64)
}
let delimiter = "####"
var swift = "// Generated at build time from console/ by the EmbedConsole plugin. Do not edit.\n"
swift += "import Foundation\n\n"
swift += "enum EmbeddedConsole {\n    static let files: [(name: String, modified: TimeInterval, text: String)] = [\n"
for path in arguments.dropFirst() {
    let url = URL(fileURLWithPath: path)
    let text = try String(contentsOf: url, encoding: .utf8)
    let modified = (try FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? Date(timeIntervalSince1970: 0)
    precondition(!text.contains("\"\"\"\(delimiter)"), "\(path) contains the literal delimiter")
    let literal = "\(delimiter)\"\"\"\n\(text)\n\"\"\"\(delimiter)"
    swift += "        (\"\(url.lastPathComponent)\", \(modified.timeIntervalSince1970.rounded(.down)), \(literal)),\n"
}
swift += "    ]\n}\n"
try swift.write(to: URL(fileURLWithPath: output), atomically: true, encoding: .utf8)
