import Foundation
import KeyRelay
import KeyRelayBus

extension KeyRelayServer {
    /// The webhook settings of `serve`: subscriptions from the options or `KEYRELAY_WEBHOOKS`, the secret from
    /// `--webhook-secret-file` or `KEYRELAY_WEBHOOK_SECRET`, the timeout from the options or
    /// `KEYRELAY_WEBHOOK_TIMEOUT` (default 10 s). Nil when no service is subscribed. Webhooks without a secret, a
    /// bad entry, a bad secret or a bad timeout are startup errors that say what to fix (never showing the secret).
    static func webhookSettings(_ options: ServeOptions, environment: [String: String], operation op: String) throws
        -> (WebhookSubscriptions, WebhookSecret, TimeInterval)?
    {
        func configurationError(_ error: WebhookConfigurationError) -> KeyRelayError {
            KeyRelayError(.badBody, error.message, operation: op)
        }
        var subscriptions = options.webhooks
        if subscriptions.isEmpty, let value = environment["KEYRELAY_WEBHOOKS"] {
            do throws(WebhookConfigurationError) { subscriptions = try WebhookSubscriptions(environmentValue: value) } catch { throw configurationError(error) }
        }
        guard !subscriptions.isEmpty else { return nil }
        let secretText: String
        if let file = options.webhookSecretFile {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw KeyRelayError(.badBody, "The webhook secret file \(file) could not be read", operation: op)
            }
            secretText = text
        } else if let text = environment["KEYRELAY_WEBHOOK_SECRET"], !text.isEmpty {
            secretText = text
        } else {
            throw KeyRelayError(.badBody, "Webhooks are configured (\(subscriptions)) but no webhook secret is given: pass --webhook-secret-file FILE or set KEYRELAY_WEBHOOK_SECRET (whsec_ + base64, e.g. printf 'whsec_%s\\n' \"$(head -c 32 /dev/urandom | base64)\" > FILE)",
                                operation: op)
        }
        let secret: WebhookSecret
        do throws(WebhookConfigurationError) { secret = try WebhookSecret(parsing: secretText) } catch { throw configurationError(error) }
        var timeout = options.webhookTimeout
        if timeout == nil, let text = environment["KEYRELAY_WEBHOOK_TIMEOUT"] {
            guard let parsed = DurationText.parse(text) else {
                throw KeyRelayError(.badBody, "KEYRELAY_WEBHOOK_TIMEOUT must be a duration such as 10s or 500ms, not '\(text.prefix(64))'", operation: op)
            }
            timeout = parsed
        }
        let seconds = timeout ?? 10
        guard seconds >= 0.001, seconds <= 3600 else {
            throw KeyRelayError(.badBody, "The webhook timeout must be from 1ms to 1h", operation: op)
        }
        return (subscriptions, secret, seconds)
    }
}
