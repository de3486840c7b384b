import Conntrack
import Packet

/// The datapath's two uses of the tracker on a frame, written once for the packet engine
/// and the trace: ct() with the frame's checksum state, and ct_clear.
extension ConnectionTracker {
    /// ct() on a frame: its virtio-net header says whether the L4 checksum is partial
    /// (still to be filled in) or already verified (DATA_VALID).
    @inline(__always)
    func execute(_ action: CTAction, on b: PacketBuffer, offsets: HeaderOffsets, key: inout FlowKey, now: UInt64,
                 dryRun: Bool = false) {
        execute(action, frame: b.data, length: b.length, offsets: offsets, key: &key, now: now,
                l4ChecksumPartial: b.offload.checksumPartial,
                l4ChecksumVerified: b.offload.flags & OffloadInfo.dataValid != 0, dryRun: dryRun)
    }

    /// ct_clear: the packet is untracked again (state, zone, mark, label, original tuple).
    static func clear(_ key: inout FlowKey) {
        key[.ctState] = 0
        key[.ctZone] = 0
        key[.ctMark] = 0
        key[.ctLabel] = 0
        clearOriginalTuple(&key)
    }
}
