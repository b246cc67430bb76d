// `import KeyRelay` gives embedders the domain types (keys, states, queries, errors, clocks) without importing the
// lower layers themselves. The store is deliberately not exported: the engine opens it from a `StoreLocation`, and
// every write goes through an engine rule.
@_exported import KeyRelayCore
