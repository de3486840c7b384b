import ESwitch
import Glibc
import NetLinux

/// The rule counters (`esw_rule_counters`, BPF_F_MMAPABLE) mapped into the daemon: one
/// block of `slots` counters per possible CPU, each block written only by its CPU's
/// programs (bpf/maps.h `rule_counter`). Reading a million counters is a walk over this
/// memory, as a NIC's bulk counter query lands in host memory; read through the bpf()
/// syscall each was copied out on its own (80 ns a counter, most of the periodic poll).
///
/// Mapped while in use: the kernel maps every page of the array at once, so a mapping
/// kept for good would put the whole table (48 MiB for a million counters on two CPUs)
/// into the daemon's RSS for its life; `releaseIfIdle` unmaps it when nothing
/// read or zeroed a counter for a while, and the next access maps it again. Owns the
/// mapping: unmapped when dropped.
struct CounterMemory: ~Copyable {
    private let fd: Int32
    private let length: Int
    let slots: Int
    let cpus: Int
    private var base: UnsafeMutablePointer<UInt64>?
    /// Reads and resets so far, as of the last `releaseIfIdle`, and when that look
    /// last saw them change.
    private var accesses: UInt64 = 0
    private var accessesAtLastLook: UInt64 = 0
    private var lastSeenAccess: UInt64 = 0
    /// 64-bit words per counter (struct esw_rule_counter: packets, bytes, last used).
    private static let words = Layout.ruleCounterSize / 8

    /// The map's values hold `slots * cpus` counters (its max_entries). Maps it once to
    /// find out now whether it can be (an old kernel without BPF_F_MMAPABLE fails here).
    init(fd: Int32, slots: Int, cpus: Int) throws(SystemError) {
        self.fd = fd
        let bytes = slots * cpus * Layout.ruleCounterSize
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        length = max(page, (bytes + page - 1) / page * page)
        self.slots = slots
        self.cpus = cpus
        guard let p = Self.map(fd: fd, length: length) else {
            throw SystemError("mmap(esw_rule_counters, \(length) bytes)", errno: errno)
        }
        munmap(p, length)
    }

    deinit { if let base { munmap(base, length) } }

    private static func map(fd: Int32, length: Int) -> UnsafeMutablePointer<UInt64>? {
        guard let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else { return nil }
        return p.assumingMemoryBound(to: UInt64.self)
    }

    /// The mapping, made if needed (nil if the kernel refuses it now).
    private mutating func memory() -> UnsafeMutablePointer<UInt64>? {
        accesses &+= 1
        if let base { return base }
        base = Self.map(fd: fd, length: length)
        return base
    }

    /// Unmaps the counters once no counter was read or zeroed for `idle` nanoseconds (the
    /// driver's housekeeping calls this every second: the mapping goes `idle` to `idle`
    /// + 1 s after the last access; looked at every 3 s, it went 3 to 6 s after).
    mutating func releaseIfIdle(now: UInt64, idle: UInt64) {
        if accesses != accessesAtLastLook {
            accessesAtLastLook = accesses
            lastSeenAccess = now
            return
        }
        guard let b = base, now &- lastSeenAccess >= idle else { return }
        munmap(b, length)
        base = nil
    }

    var isMapped: Bool { base != nil }

    /// Counter `c`, summed over the CPUs (the last use is the latest of theirs).
    mutating func read(_ c: Int) -> RuleCounters {
        var r = RuleCounters()
        guard c >= 0 && c < slots, let base = memory() else { return r }
        for cpu in 0..<cpus {
            let w = base + (cpu * slots + c) * Self.words
            r.packets &+= w[0]
            r.bytes &+= w[1]
            r.lastUsedNanoseconds = max(r.lastUsedNanoseconds, w[2])
        }
        return r
    }

    /// Counters 0..<count.
    mutating func readAll(count: Int) -> [RuleCounters] {
        var out = [RuleCounters](repeating: RuleCounters(), count: count)
        guard let base = memory() else { return out }
        let n = min(count, slots)
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
        return out
    }

    /// Zeroes counter `c` on every CPU.
    mutating func reset(_ c: Int) {
        guard c >= 0 && c < slots else { return }
        guard let base = memory() else {
            // Not mappable now: through the syscall, a CPU's slot at a time.
            var zeros = [UInt64](repeating: 0, count: Self.words)
            for cpu in 0..<cpus {
                var key = UInt32(cpu * slots + c)
                zeros.withUnsafeMutableBytes { _ = try? BPFMap.update(fd, key: &key, value: $0.baseAddress!) }
            }
            return
        }
        for cpu in 0..<cpus { (base + (cpu * slots + c) * Self.words).update(repeating: 0, count: Self.words) }
    }

    /// Sets counter `c` to `value` (on the first CPU; zero on the others): a resize
    /// carries counts over into new maps.
    mutating func set(_ c: Int, to value: RuleCounters) {
        reset(c)
        guard c >= 0 && c < slots, let base else { return }
        let w = base + c * Self.words
        w[0] = value.packets
        w[1] = value.bytes
        w[2] = value.lastUsedNanoseconds
    }
}
