/// The names KeyRelay gives lifecycle events when it writes them as CloudEvents 1.0: the one definition shared by
/// `keyrelay events` and the webhook transport, so a receiver sees the same `type` and `source` in both.
public enum CloudEventNames {
    /// The CloudEvents specification version KeyRelay writes.
    public static let specVersion = "1.0"

    /// The prefix of every lifecycle event type: `com.ibm.kms.key.` followed by the event kind.
    public static let typePrefix = "com.ibm.kms.key."

    /// The CloudEvents `type` of a lifecycle event kind: `com.ibm.kms.key.delete`, `com.ibm.kms.key.sync`, …
    /// A sync's re-emission is typed `com.ibm.kms.key.sync`; its data carries the key's current state.
    public static func type(of kind: LifecycleEventKind) -> String { typePrefix + kind.rawValue }

    /// The event kind named by a CloudEvents `type`, or nil when the type is not one of KeyRelay's.
    public static func kind(ofType type: String) -> LifecycleEventKind? {
        guard type.hasPrefix(typePrefix) else { return nil }
        return LifecycleEventKind(rawValue: String(type.dropFirst(typePrefix.count)))
    }

    /// The CRN of a Key Protect instance, the `source` of its events:
    /// `crn:v1:bluemix:public:kms:<region>:a/<account>:<instance>::`.
    public static func kmsInstanceCRN(region: String, account: String, instanceID: String) -> String {
        "crn:v1:bluemix:public:kms:\(region):a/\(account):\(instanceID)::"
    }

    /// The CRN of a key of a Key Protect instance: `crn:v1:bluemix:public:kms:<region>:a/<account>:<instance>:key:<id>`.
    public static func kmsKeyCRN(region: String, account: String, instanceID: String, keyID: String) -> String {
        "crn:v1:bluemix:public:kms:\(region):a/\(account):\(instanceID):key:\(keyID)"
    }
}

extension LifecycleEventKind {
    /// This kind's CloudEvents `type` (``CloudEventNames/type(of:)``).
    public var cloudEventType: String { CloudEventNames.type(of: self) }
}
