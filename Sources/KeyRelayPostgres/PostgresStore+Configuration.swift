import Foundation
import KeyRelayCore
import NIOSSL
import PostgresNIO

extension PostgresStore {
    /// Where a PostgreSQL store connects, and how many connections it keeps.
    ///
    /// Read from a URL as libpq writes one (``init(url:)``): `postgres://user[:password]@host[:port]/database`, or
    /// `postgresql://…`, with the query parameters `sslmode`, `host` (a Unix-socket directory, as libpq's) and
    /// `pool_size`. The ``description`` never shows the password.
    public struct Configuration: Sendable, Equatable, CustomStringConvertible, CustomReflectable {
        /// How the connection is secured, as libpq's `sslmode` says it.
        public enum TLSMode: String, Sendable, Equatable {
            /// Plain TCP (`sslmode=disable`).
            case disable
            /// TLS when the server offers it, without verifying its certificate (`allow`, `prefer`: libpq's default).
            case prefer
            /// TLS or no connection, the certificate not verified (`require`).
            case require
            /// TLS with the certificate verified against the system's roots (`verify-ca`: not the host name;
            /// `verify-full`: the host name too).
            case verifyCA = "verify-ca"
            case verifyFull = "verify-full"
        }

        public var host: String
        public var port: Int
        /// A Unix-domain socket directory (libpq's `host=/path`): when set, the store connects to
        /// `<directory>/.s.PGSQL.<port>` instead of TCP.
        public var socketDirectory: String?
        public var username: String
        public var password: String?
        public var database: String
        public var tls: TLSMode
        /// The most connections the store holds at once (its pool), and so the most `read`/`write` closures that run
        /// at the same time; one more is held for LISTEN. Default 8.
        public var maximumConnections: Int

        public init(host: String, port: Int = 5432, username: String, password: String? = nil, database: String,
                    tls: TLSMode = .prefer, maximumConnections: Int = 8) {
            self.host = host
            self.port = port
            self.username = username
            self.password = password
            self.database = database
            self.tls = tls
            self.maximumConnections = maximumConnections
        }

        /// Reads a `postgres://` or `postgresql://` URL.
        /// - Throws: `KeyRelayError` (`.invalidField`) naming what is wrong: another scheme, no host, no user, no
        ///   database, a port or `pool_size` that is not a number in range, an unknown `sslmode` or query parameter.
        ///   The message never contains the password.
        public init(url text: String) throws(KeyRelayError) {
            func refuse(_ reason: String) -> KeyRelayError {
                KeyRelayError(.invalidField, "The PostgreSQL URL '\(Self.redacted(text))' \(reason)",
                              operation: "Database could not be opened")
            }
            guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
                  scheme == "postgres" || scheme == "postgresql" else {
                throw refuse("is not a valid URL: write postgres://user[:password]@host[:port]/database")
            }
            guard let user = components.user, !user.isEmpty else {
                throw refuse("names no user: write postgres://user@host/database")
            }
            var database = components.path
            if database.hasPrefix("/") { database.removeFirst() }
            guard !database.isEmpty, !database.contains("/") else {
                throw refuse("names no database (or more than one path segment): write postgres://user@host/database")
            }
            var socketDirectory: String?
            var tls = TLSMode.prefer
            var maximumConnections = 8
            for item in components.queryItems ?? [] {
                let value = item.value ?? ""
                switch item.name {
                case "sslmode":
                    switch value {
                    case "allow", "prefer": tls = .prefer
                    default:
                        guard let mode = TLSMode(rawValue: value) else {
                            throw refuse("has sslmode '\(value)': use disable, allow, prefer, require, verify-ca or verify-full")
                        }
                        tls = mode
                    }
                case "host":
                    guard value.hasPrefix("/") else {
                        throw refuse("has host '\(value)' in its query: that parameter names a Unix-socket directory (an absolute path)")
                    }
                    socketDirectory = value
                case "pool_size":
                    guard let size = Int(value), (1...1000).contains(size) else {
                        throw refuse("has pool_size '\(value)': give a number of connections from 1 to 1000")
                    }
                    maximumConnections = size
                default:
                    throw refuse("has the query parameter '\(item.name)', which KeyRelay does not read (it reads sslmode, host and pool_size)")
                }
            }
            let host = components.host ?? ""
            guard !host.isEmpty || socketDirectory != nil else {
                throw refuse("names no host: write postgres://user@host/database (or ?host=/socket/directory)")
            }
            if let port = components.port, !(1...65535).contains(port) {
                throw refuse("has port \(port): give a port from 1 to 65535")
            }
            self.init(host: host.isEmpty ? "localhost" : host, port: components.port ?? 5432, username: user,
                      password: components.password, database: database, tls: tls, maximumConnections: maximumConnections)
            self.socketDirectory = socketDirectory
        }

        /// The URL text with any password replaced by `***`, for messages about a URL that may not parse.
        static func redacted(_ text: String) -> String {
            guard let schemeEnd = text.range(of: "://"),
                  let at = text[schemeEnd.upperBound...].lastIndex(of: "@") else { return text }
            let userInfo = text[schemeEnd.upperBound..<at]
            guard let colon = userInfo.firstIndex(of: ":") else { return text }
            return String(text[..<colon]) + ":***" + String(text[at...])
        }

        /// `postgres://user[:***]@host:port/database`, with the query parameters that are not the default.
        public var description: String {
            var text = "postgres://\(username)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)"
            var parameters: [String] = []
            if tls != .prefer { parameters.append("sslmode=\(tls.rawValue)") }
            if let socketDirectory { parameters.append("host=\(socketDirectory)") }
            if maximumConnections != 8 { parameters.append("pool_size=\(maximumConnections)") }
            if !parameters.isEmpty { text += "?" + parameters.joined(separator: "&") }
            return text
        }

        /// What `dump` and debuggers show: the fields, the password as `***`.
        public var customMirror: Mirror {
            Mirror(self, children: [
                "host": host, "port": port, "socketDirectory": socketDirectory as Any, "username": username,
                "password": password == nil ? "nil" : "***", "database": database, "tls": tls,
                "maximumConnections": maximumConnections,
            ])
        }

        /// The same server and credentials, another database (tests make one per store).
        package func database(_ name: String) -> Configuration {
            var configuration = self
            configuration.database = name
            return configuration
        }

        /// NIO's TLS settings for `tls`: certificates verified only for `verify-ca` (not the host name) and `verify-full`.
        private func tlsConfiguration() -> TLSConfiguration {
            var configuration = TLSConfiguration.makeClientConfiguration()
            switch tls {
            case .disable, .prefer, .require: configuration.certificateVerification = .none
            case .verifyCA: configuration.certificateVerification = .noHostnameVerification
            case .verifyFull: configuration.certificateVerification = .fullVerification
            }
            return configuration
        }

        var socketPath: String? { socketDirectory.map { "\($0)/.s.PGSQL.\(port)" } }

        func connectionConfiguration() throws -> PostgresConnection.Configuration {
            if let socketPath {
                return PostgresConnection.Configuration(unixSocketPath: socketPath, username: username, password: password,
                                                        database: database)
            }
            let connectionTLS: PostgresConnection.Configuration.TLS
            switch tls {
            case .disable: connectionTLS = .disable
            case .prefer: connectionTLS = .prefer(try NIOSSLContext(configuration: tlsConfiguration()))
            case .require, .verifyCA, .verifyFull: connectionTLS = .require(try NIOSSLContext(configuration: tlsConfiguration()))
            }
            return PostgresConnection.Configuration(host: host, port: port, username: username, password: password,
                                                    database: database, tls: connectionTLS)
        }

        func clientConfiguration() -> PostgresClient.Configuration {
            var configuration: PostgresClient.Configuration
            if let socketPath {
                configuration = PostgresClient.Configuration(unixSocketPath: socketPath, username: username, password: password,
                                                             database: database)
            } else {
                let clientTLS: PostgresClient.Configuration.TLS
                switch tls {
                case .disable: clientTLS = .disable
                case .prefer: clientTLS = .prefer(tlsConfiguration())
                case .require, .verifyCA, .verifyFull: clientTLS = .require(tlsConfiguration())
                }
                configuration = PostgresClient.Configuration(host: host, port: port, username: username, password: password,
                                                             database: database, tls: clientTLS)
            }
            configuration.options.maximumConnections = maximumConnections
            return configuration
        }
    }
}
