import Classifier
import ESwitch
import Synchronization

/// Flow marks to flows, for packet threads (OVS's mark_to_flow): a packet the hardware
/// marked for a partially offloaded flow is given to that flow without classifying it.
///
/// One slot per mark slot (FlowMark.slot), three words each: a sequence number, the tag
/// (mark | in_port << 32) and the flow. The control thread makes the sequence odd, writes
/// the tag and the flow, and makes it even again (a seqlock with one writer); a packet
/// reaches a flow only if its mark and port equal the tag and the sequence, read before
/// and after, is the same even number. Re-reading the tag instead would not do: a slot
/// can hold the same tag again after another flow held it (a generation wraps at 2^16),
/// and a reader stalled across that would pair the tag with the other flow. A mark
/// withdrawn or given to another flow, or a packet on another port, falls back to the
/// classifier. A mark's generation changes whenever its slot is reused, so a packet
/// carrying an old mark never matches the slot's next holder. Flows stay alive for
/// readers through RCU.
final class FlowMarkTable: @unchecked Sendable {
    static let capacity = 0xffff
    /// A slot's words: sequence, tag, flow.
    private static let wordsPerSlot = 3
    private let words: UnsafeMutablePointer<Atomic<UInt64>>
    private let rcu: QuiescentState
    /// Control thread: what each slot holds (keeps the flows alive).
    private var held: [Int: (mark: UInt32, flow: DatapathFlow)] = [:]

    init(rcu: QuiescentState) {
        self.rcu = rcu
        words = .allocate(capacity: FlowMarkTable.wordsPerSlot * FlowMarkTable.capacity)
        for i in 0..<(FlowMarkTable.wordsPerSlot * FlowMarkTable.capacity) { (words + i).initialize(to: Atomic(0)) }
    }

    deinit {
        words.deinitialize(count: FlowMarkTable.wordsPerSlot * FlowMarkTable.capacity)
        words.deallocate()
    }

    /// Marks published now.
    var count: Int { held.count }

    @inline(__always)
    private static func tag(_ mark: UInt32, _ port: UInt32) -> UInt64 { UInt64(mark) | UInt64(port) << 32 }

    /// The flow `mark` names for a packet received on datapath port `port`, or nil
    /// (then classify). Packet threads, inside an RCU read section.
    @inline(__always)
    func flow(mark: UInt32, port: UInt32) -> DatapathFlow? {
        guard let s = FlowMark.slot(of: mark), s < FlowMarkTable.capacity else { return nil }
        let w = words + FlowMarkTable.wordsPerSlot * s
        let sequence = w[0].load(ordering: .acquiring)
        guard sequence & 1 == 0, w[1].load(ordering: .acquiring) == FlowMarkTable.tag(mark, port) else { return nil }
        let bits = w[2].load(ordering: .acquiring)
        guard bits != 0, w[0].load(ordering: .acquiring) == sequence,
              let p = UnsafeRawPointer(bitPattern: UInt(truncatingIfNeeded: bits)) else { return nil }
        return Unmanaged<DatapathFlow>.fromOpaque(p).takeUnretainedValue()
    }

    /// Control thread: `mark` now names `flow` for packets arriving on `port` (replacing
    /// whatever the slot held: a modified flow keeps its predecessor's mark).
    func publish(mark: UInt32, port: UInt32, flow: DatapathFlow) {
        guard let s = FlowMark.slot(of: mark), s < FlowMarkTable.capacity else { return }
        write(slot: s, tag: FlowMarkTable.tag(mark, port),
              flow: UInt64(UInt(bitPattern: Unmanaged.passUnretained(flow).toOpaque())))
        if let old = held[s], old.flow !== flow { retire(old.flow) }
        held[s] = (mark, flow)
    }

    /// Control thread: `mark` no longer names `flow` (if it still does).
    func withdraw(mark: UInt32, flow: DatapathFlow) {
        guard let s = FlowMark.slot(of: mark), let h = held[s], h.mark == mark, h.flow === flow else { return }
        write(slot: s, tag: 0, flow: 0)
        held[s] = nil
        retire(flow)
    }

    /// Control thread: one slot's seqlock write. The odd sequence is seen before either
    /// word by any reader that sees a word (their stores release), the even one after both.
    private func write(slot s: Int, tag: UInt64, flow: UInt64) {
        let w = words + FlowMarkTable.wordsPerSlot * s
        w[0].wrappingAdd(1, ordering: .relaxed)
        w[1].store(tag, ordering: .releasing)
        w[2].store(flow, ordering: .releasing)
        w[0].wrappingAdd(1, ordering: .releasing)
    }

    /// What `mark` names, for the control thread (tests, dumps).
    func holder(of mark: UInt32) -> DatapathFlow? {
        guard let s = FlowMark.slot(of: mark), let h = held[s], h.mark == mark else { return nil }
        return h.flow
    }

    /// A reader may still run the flow it found: release it after a grace period.
    private func retire(_ flow: DatapathFlow) {
        rcu.retire { withExtendedLifetime(flow) {} }
    }
}
