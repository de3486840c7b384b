import ESwitch
import Glibc
import Logging
import ODP
@testable import OVSDatapath
import Packet
import Testing

/// Bytes the heap gives each per-flow object (printed; ESW_MEMORY_PROBE=1 only).
struct FlowMemoryProbe {
    @Test(.enabled(if: getenv("ESW_MEMORY_PROBE") != nil)) func sizes() throws {
        let (d, sw, _) = try OffloadPathTests.datapath()
        let f = try OffloadPathTests.put(d, "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no)", "2")
        typealias Usable = @convention(c) (UnsafeMutableRawPointer?) -> Int
        let usable = unsafeBitCast(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_usable_size"), to: Usable.self)
        func heap(_ o: AnyObject) -> Int { usable(Unmanaged.passUnretained(o).toOpaque()) }
        var line = "memory-probe DatapathFlow=\(heap(f)) actionBytes=\(f.actionBytes.capacity) actions=\(f.actions.count) compiled=\(f.compiled.count)"
        if case .hardware(let h) = f.offload, let r = sw.rule(h) {
            line += " HardwareRule=\(heap(r)) hwActions=\(r.spec.actions.count)"
        }
        line += " FlowKey=\(MemoryLayout<FlowKey>.size) FlowMatch=\(MemoryLayout<FlowMatch>.size)"
        print(line)
    }
}
