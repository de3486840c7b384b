/// Flow marks for partial offload ("hinting"): a rule that matches in hardware but
/// whose actions only software can run marks the packet with a value and sends it up
/// its representor; the software datapath finds the flow by that value instead of
/// classifying the packet (OVS's userspace partial offload, rte_flow's MARK).
///
/// A mark is `generation << 16 | (slot + 1)`: never 0 (no mark), and a slot reused
/// for another rule carries another generation, so a packet marked for the slot's
/// previous rule (still queued in a socket, however long) never matches the new
/// entry. Slots are reused only after SlotAllocator's grace period on top of that.
public final class FlowMark: @unchecked Sendable {
    /// The value the hardware writes into skb->mark.
    public let value: UInt32
    /// Rules using it (a replacement takes its predecessor's mark: same match).
    var users = 0

    init(value: UInt32) { self.value = value }

    /// The slot of a mark value (nil for 0 or a value outside every slot).
    public static func slot(of value: UInt32) -> Int? {
        let low = Int(value & 0xffff)
        return low == 0 ? nil : low - 1
    }
}

/// The marks a data plane can hand out: slots with a grace period and a generation each.
struct FlowMarkAllocator {
    /// Slots are 16 bits of the mark (value 0 is "no mark").
    static let capacity = 0xffff
    private var slots = SlotAllocator(capacity: UInt32(FlowMarkAllocator.capacity))
    private var generations = [UInt16](repeating: 0, count: FlowMarkAllocator.capacity)

    mutating func allocate(now: UInt64) -> FlowMark? {
        guard let s = slots.allocate(now: now) else { return nil }
        generations[Int(s)] &+= 1
        return FlowMark(value: UInt32(generations[Int(s)]) << 16 | (s + 1))
    }

    mutating func release(_ m: FlowMark, now: UInt64) {
        guard let s = FlowMark.slot(of: m.value) else { return }
        slots.release(UInt32(s), now: now)
    }
}
