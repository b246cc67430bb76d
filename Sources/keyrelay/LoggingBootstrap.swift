import ArgumentParser
import KeyRelayHTTP
import Logging

extension KeyRelayCommand {
    /// Parses the command line, bootstraps the logging system once (before any logger exists), then runs the
    /// command, as `AsyncParsableCommand.main()` does.
    ///
    /// `serve` logs at `--log-level` in `--log-format` on standard error. Every other command reports through its
    /// own output, so its engine and bus log nothing (a scenario transcript or a JSON answer on standard output
    /// must stay exactly that).
    static func main() async {
        do {
            var command = try parseAsRoot()
            bootstrapLogging(for: command)
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }

    static func bootstrapLogging(for command: any ParsableCommand) {
        if let serve = command as? Serve {
            LoggingSystem.bootstrap(serve.format.handlerFactory(level: serve.level))
        } else {
            LoggingSystem.bootstrap { _ in SwiftLogNoOpLogHandler() }
        }
    }
}
