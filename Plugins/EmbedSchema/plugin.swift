import Foundation
import PackagePlugin

/// Embeds a backend's migrations, `schema/<backend>/*.sql` (the package's single source of truth for SQL), into the
/// target as Swift string literals, so the binary never looks files up at run time. The backend folder is named
/// after the target: `KeyRelaySQLite` embeds `schema/sqlite/`, `KeyRelayPostgres` embeds `schema/postgres/`.
@main
struct EmbedSchema: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let backend = target.name.hasPrefix("KeyRelay") ? String(target.name.dropFirst("KeyRelay".count)) : target.name
        let schemaDir = context.package.directoryURL.appending(path: "schema").appending(path: backend.lowercased())
        let files = try FileManager.default.contentsOfDirectory(at: schemaDir, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "sql" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedSchema.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(files.count) schema migration(s)",
                executable: try context.tool(named: "SchemaEmbedder").url,
                arguments: [output.path] + files.map(\.path),
                inputFiles: files,
                outputFiles: [output]),
        ]
    }
}
