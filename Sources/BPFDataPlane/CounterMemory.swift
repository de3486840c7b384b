import ESwitch
import Glibc
import NetLinux

/// The rule counters (`esw_rule_counters`, BPF_F_MMAPABLE) mapped into the daemon: one
/// block of `slots` counters per possible CPU, each block written only by its CPU's
/// programs (bpf/maps.h `rule_counter`). Reading a million counters is a walk over this
/// memory, as a NIC's bulk counter query lands in host memory; read through the bpf()
/// syscall each was copied out on its own (80 ns a counter, most of the periodic poll).
/// Owns the mapping: unmapped when dropped.
struct CounterMemory: ~Copyable {
    private let base: UnsafeMutablePointer<UInt64>
    private let length: Int
    let slots: Int
    let cpus: Int
    /// 64-bit words per counter (struct esw_rule_counter: packets, bytes, last used).
    private static let words = Layout.ruleCounterSize / 8

    /// The map's values hold `slots * cpus` counters (its max_entries).
    init(fd: Int32, slots: Int, cpus: Int) throws(SystemError) {
        let bytes = slots * cpus * Layout.ruleCounterSize
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        length = max(page, (bytes + page - 1) / page * page)
        guard let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            throw SystemError("mmap(esw_rule_counters, \(length) bytes)", errno: errno)
        }
        base = p.assumingMemoryBound(to: UInt64.self)
        self.slots = slots
        self.cpus = cpus
    }

    deinit { munmap(base, length) }

    /// Counter `c`, summed over the CPUs (the last use is the latest of theirs).
    func read(_ c: Int) -> RuleCounters {
        var r = RuleCounters()
        guard c >= 0 && c < slots else { return r }
        for cpu in 0..<cpus {
            let w = base + (cpu * slots + c) * Self.words
            r.packets &+= w[0]
            r.bytes &+= w[1]
            r.lastUsedNanoseconds = max(r.lastUsedNanoseconds, w[2])
        }
        return r
    }

    /// Counters 0..<count.
    func readAll(count: Int) -> [RuleCounters] {
        let n = min(count, slots)
        var out = [RuleCounters](repeating: RuleCounters(), count: n)
        out.withUnsafeMutableBufferPointer { o in
            // CPU by CPU: each block is read in sequence.
            for cpu in 0..<cpus {
                var w = base + cpu * slots * Self.words
                for c in 0..<n {
                    o[c].packets &+= w[0]
                    o[c].bytes &+= w[1]
                    o[c].lastUsedNanoseconds = max(o[c].lastUsedNanoseconds, w[2])
                    w += Self.words
                }
            }
        }
        if count > n { out += [RuleCounters](repeating: RuleCounters(), count: count - n) }
        return out
    }

    /// Zeroes counter `c` on every CPU.
    func reset(_ c: Int) {
        guard c >= 0 && c < slots else { return }
        for cpu in 0..<cpus { (base + (cpu * slots + c) * Self.words).update(repeating: 0, count: Self.words) }
    }

    /// Sets counter `c` to `value` (on the first CPU; zero on the others): a resize
    /// carries counts over into new maps.
    func set(_ c: Int, to value: RuleCounters) {
        guard c >= 0 && c < slots else { return }
        reset(c)
        let w = base + c * Self.words
        w[0] = value.packets
        w[1] = value.bytes
        w[2] = value.lastUsedNanoseconds
    }
}
