import Classifier
import Packet
import Synchronization

/// The outer header bytes of an encap entry, immutable once published.
public final class EncapHeader: @unchecked Sendable {
    public let template: VXLAN.EncapTemplate
    let bytes: UnsafeMutableRawBufferPointer

    init(_ t: VXLAN.EncapTemplate) {
        template = t
        bytes = .allocate(byteCount: t.length, alignment: 8)
        t.bytes.withUnsafeBytes { bytes.copyMemory(from: $0) }
    }

    deinit { bytes.deallocate() }
}

/// What identifies a shared encap entry: every flow with the same tunnel key and
/// egress shares one (as mlx5 shares encap entries).
public struct EncapKey: Sendable, Hashable, CustomStringConvertible {
    public var tunnel: TunnelMetadata
    public var udpPort: UInt16
    public var egress: PortIndex

    public init(tunnel: TunnelMetadata, udpPort: UInt16, egress: PortIndex) {
        self.tunnel = tunnel
        self.udpPort = udpPort
        self.egress = egress
    }

    public var description: String {
        let dst = tunnel.isIPv6 ? AddressText.ipv6(tunnel.ipv6Dst) : AddressText.ipv4(tunnel.ipv4Dst)
        return "vxlan vni \(tunnel.id) dst \(dst):\(udpPort)"
    }
}

/// A shared outer header in the encap table. The tunnel tracker rewrites the header
/// when the neighbour changes; packet threads always see a complete header.
public final class EncapEntry: @unchecked Sendable {
    public let id: UInt32
    public let key: EncapKey
    private let current: Atomic<Unmanaged<EncapHeader>>
    /// Rules that use this entry (writer side).
    public internal(set) var users = 0

    init(id: UInt32, key: EncapKey, header: VXLAN.EncapTemplate) {
        self.id = id
        self.key = key
        current = Atomic(Unmanaged.passRetained(EncapHeader(header)))
    }

    deinit { current.load(ordering: .relaxed).release() }

    public var template: VXLAN.EncapTemplate {
        current.load(ordering: .acquiring).takeUnretainedValue().template
    }

    /// Publishes a new header (e.g. new neighbour MAC); the old one is freed after a grace period.
    func replaceHeader(_ t: VXLAN.EncapTemplate, rcu: QuiescentState) {
        let old = current.exchange(Unmanaged.passRetained(EncapHeader(t)), ordering: .acquiringAndReleasing)
        rcu.retire { old.release() }
    }

    /// Calls `body` with the current header bytes (packet threads).
    @inline(__always)
    func withHeader<T>(_ body: (EncapHeader) -> T) -> T {
        current.load(ordering: .acquiring)._withUnsafeGuaranteedRef(body)
    }
}
