/// The version of this KeyRelay build, in one place: `keyrelay --version` prints it.
public enum KeyRelayVersion {
    /// Semantic version of the package.
    public static let current = "0.9.0"
}
