import Foundation

// Usage: SchemaEmbedder OUTPUT.swift MIGRATION.sql...
// Writes `EmbeddedSchema.migrations`: (identifier, sql) pairs in file-name order.
let arguments = CommandLine.arguments.dropFirst()
guard let output = arguments.first else {
    FileHandle.standardError.write(Data("usage: SchemaEmbedder OUTPUT.swift MIGRATION.sql...\n".utf8))
    exit(64)
}
var swift = "// Generated at build time from schema/<backend>/*.sql by the EmbedSchema plugin. Do not edit.\n"
swift += "enum EmbeddedSchema {\n    static let migrations: [(identifier: String, sql: String)] = [\n"
for path in arguments.dropFirst() {
    let url = URL(fileURLWithPath: path)
    let sql = try String(contentsOf: url, encoding: .utf8)
    let identifier = url.deletingPathExtension().lastPathComponent
    precondition(!sql.contains("\"\"\"####"), "schema file contains the literal delimiter")
    swift += "        (\"\(identifier)\", ####\"\"\"\n\(sql)\n\"\"\"####),\n"
}
swift += "    ]\n}\n"
try swift.write(to: URL(fileURLWithPath: output), atomically: true, encoding: .utf8)
