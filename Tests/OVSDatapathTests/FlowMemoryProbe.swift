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
        // As test-scale's flows, with the action bytes the size the daemon's decoder
        // gives them (the text parser's array has spare capacity).
        let k = try ODPText.parseKey("in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no)")
        guard case .success(let m) = FlowMatch.fromAttributes(key: k.key, mask: k.mask, vlanLimit: ODPConstants.datapathVLANLimit) else {
            throw ODPError(position: nil, "bad key")
        }
        let f = try d.putFlow(match: m, ufid: nil, actions: try ODPText.parseActions("2").withUnsafeBufferPointer { Array($0) }, options: Datapath.PutOptions())
        typealias Usable = @convention(c) (UnsafeMutableRawPointer?) -> Int
        let usable = unsafeBitCast(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_usable_size"), to: Usable.self)
        func heap(_ o: AnyObject) -> Int { usable(Unmanaged.passUnretained(o).toOpaque()) }
        // An array's heap object starts 32 bytes before its first element (header, count, capacity).
        func heap<T>(_ a: [T]) -> Int { a.isEmpty ? 0 : a.withUnsafeBufferPointer { usable(UnsafeMutableRawPointer(mutating: $0.baseAddress!) - 32) } }
        func heap<T>(_ a: ContiguousArray<T>) -> Int { a.isEmpty ? 0 : a.withUnsafeBufferPointer { usable(UnsafeMutableRawPointer(mutating: $0.baseAddress!) - 32) } }
        var line = "memory-probe DatapathFlow=\(heap(f)) CompiledActions=\(heap(f.program)) actionBytes=\(heap(f.actionBytes))"
        line += " actions=\(heap(f.actions)) (stride \(MemoryLayout<ODPAction>.stride)) compiled=\(heap(f.compiled)) (stride \(MemoryLayout<CompiledAction>.stride))"
        if case .hardware(let h) = f.offload, let r = sw.rule(h) {
            line += " HardwareRule=\(heap(r)) hwActions=\(heap(r.actions)) (stride \(MemoryLayout<HardwareAction>.stride))"
        }
        line += " FlowKey=\(MemoryLayout<FlowKey>.size) FlowMatch=\(MemoryLayout<FlowMatch>.size)"
        line += " TunnelDependency?=\(MemoryLayout<TunnelDependency?>.size) OffloadState=\(MemoryLayout<OffloadState>.size)"
        print(line)
    }
}
