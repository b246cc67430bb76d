import Foundation
import PackagePlugin

/// Embeds the web console's files (`console/*.html`, `*.js`, `*.css`: real files, lintable and testable as such)
/// into the target as Swift string literals, so `keyrelay serve` stays one self-contained binary that never looks
/// a file up at run time. The sibling of EmbedSchema.
@main
struct EmbedConsole: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let consoleDir = context.package.directoryURL.appending(path: "console")
        let files = try FileManager.default.contentsOfDirectory(at: consoleDir, includingPropertiesForKeys: nil)
            .filter { ["html", "js", "css"].contains($0.pathExtension) }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedConsole.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(files.count) console file(s)",
                executable: try context.tool(named: "ConsoleEmbedder").url,
                arguments: [output.path] + files.map(\.path),
                inputFiles: files,
                outputFiles: [output]),
        ]
    }
}
