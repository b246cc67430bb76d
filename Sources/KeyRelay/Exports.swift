// `import KeyRelay` gives embedders the domain types (keys, states, errors, clocks) and the store types
// (queries, the SQLite store) without importing the lower layers themselves.
@_exported import KeyRelayCore
@_exported import KeyRelayStore
