import CLibBPF
import Glibc
import NetLinux

/// A BPF object loaded into the kernel: its programs and maps live while this value
/// does (tc filters hold their own reference to a program).
public struct BPFObject: ~Copyable {
    private let object: OpaquePointer

    /// Opens an ELF object from memory, sizes maps (`maxEntries` by map name) and loads
    /// it. A verifier refusal throws with libbpf's log (the last lines).
    public init(elf: [UInt8], name: String, maxEntries: [String: UInt32] = [:]) throws(SystemError) {
        // libbpf would print to stderr; the verifier's log comes back in `log` instead.
        libbpf_set_print(nil)
        var opts = bpf_object_open_opts()
        opts.sz = MemoryLayout<bpf_object_open_opts>.size
        let obj: OpaquePointer? = name.withCString { cname in
            opts.object_name = cname
            return elf.withUnsafeBytes { bpf_object__open_mem($0.baseAddress, $0.count, &opts) }
        }
        guard let obj, libbpf_get_error(UnsafeRawPointer(obj)) == 0 else {
            throw SystemError("bpf_object__open_mem(\(name))", errno: errno == 0 ? EINVAL : errno)
        }
        for (map, n) in maxEntries {
            guard let m = bpf_object__find_map_by_name(obj, map) else { continue }
            let err = bpf_map__set_max_entries(m, n)
            if err < 0 {
                bpf_object__close(obj)
                throw SystemError("bpf_map__set_max_entries(\(map), \(n))", errno: -err)
            }
        }
        let logSize = 1 << 20
        let log = UnsafeMutablePointer<CChar>.allocate(capacity: logSize)
        defer { log.deallocate() }
        log[0] = 0
        var prog = bpf_object__next_program(obj, nil)
        while let p = prog {
            _ = bpf_program__set_log_buf(p, log, logSize)
            prog = bpf_object__next_program(obj, p)
        }
        let err = bpf_object__load(obj)
        if err < 0 {
            bpf_object__close(obj)
            let text = String(cString: log).split(separator: "\n").suffix(8).joined(separator: "\n")
            throw SystemError("bpf_object__load(\(name)): \(text)", errno: -err)
        }
        object = obj
    }

    deinit { bpf_object__close(object) }

    public func mapFD(_ name: String) throws(SystemError) -> Int32 {
        guard let m = bpf_object__find_map_by_name(object, name) else { throw SystemError("no map \(name)", errno: ENOENT) }
        return bpf_map__fd(m)
    }

    public func programFD(_ name: String) throws(SystemError) -> Int32 {
        guard let p = bpf_object__find_program_by_name(object, name) else {
            throw SystemError("no program \(name)", errno: ENOENT)
        }
        return bpf_program__fd(p)
    }
}

/// The key and value sizes of every map in an ELF object as the C compiler laid them out
/// (from the object's BTF, without loading it: no privilege needed). A map of maps's
/// template for its inner maps is listed as "<name>.inner".
public func bpfMapSizes(elf: [UInt8]) -> [String: (key: Int, value: Int)] {
    libbpf_set_print(nil)
    var opts = bpf_object_open_opts()
    opts.sz = MemoryLayout<bpf_object_open_opts>.size
    guard let obj = elf.withUnsafeBytes({ bpf_object__open_mem($0.baseAddress, $0.count, &opts) }),
          libbpf_get_error(UnsafeRawPointer(obj)) == 0 else { return [:] }
    defer { bpf_object__close(obj) }
    var out: [String: (key: Int, value: Int)] = [:]
    var m = bpf_object__next_map(obj, nil)
    while let map = m {
        let name = String(cString: bpf_map__name(map))
        out[name] = (Int(bpf_map__key_size(map)), Int(bpf_map__value_size(map)))
        if let inner = bpf_map__inner_map(map) {
            out[name + ".inner"] = (Int(bpf_map__key_size(inner)), Int(bpf_map__value_size(inner)))
        }
        m = bpf_object__next_map(obj, map)
    }
    return out
}

/// Thin wrappers over the map syscalls: keys and values are raw bytes of the layouts
/// in bpf/esw_shared.h.
public enum BPFMap {
    public static func update(_ fd: Int32, key: UnsafeRawPointer, value: UnsafeRawPointer) throws(SystemError) {
        let r = bpf_map_update_elem(fd, key, value, UInt64(BPF_ANY))
        if r < 0 { throw SystemError("bpf_map_update_elem", errno: -r) }
    }

    /// The same, as a negative errno (0 on success), for callers in closures.
    public static func updateResult(_ fd: Int32, key: UnsafeRawPointer, value: UnsafeRawPointer) -> Int32 {
        bpf_map_update_elem(fd, key, value, UInt64(BPF_ANY))
    }

    /// Deletes a key; a missing key is not an error.
    public static func delete(_ fd: Int32, key: UnsafeRawPointer) {
        _ = bpf_map_delete_elem(fd, key)
    }

    public static func lookup(_ fd: Int32, key: UnsafeRawPointer, value: UnsafeMutableRawPointer) -> Bool {
        bpf_map_lookup_elem(fd, key, value) == 0
    }

    /// Per-CPU values come back one per possible CPU, each rounded up to 8 bytes.
    public static let possibleCPUs: Int = max(1, Int(libbpf_num_possible_cpus()))
}

/// A tc (clsact) filter of ours on a netdev: detached when this goes.
public final class TCFilter: @unchecked Sendable {
    public let ifindex: Int32
    public let egress: Bool
    /// The handle and priority every esw filter uses, so that a restart finds (and
    /// replaces) what a killed instance left.
    public static let handle: UInt32 = 0xe5
    public static let priority: UInt32 = 1

    public init(ifindex: Int32, egress: Bool, programFD: Int32) throws(SystemError) {
        self.ifindex = ifindex
        self.egress = egress
        var r = clbpf_tc_hook_create(ifindex)
        if r < 0 { throw SystemError("bpf_tc_hook_create(ifindex \(ifindex))", errno: -r) }
        r = clbpf_tc_attach(ifindex, egress ? 1 : 0, TCFilter.handle, TCFilter.priority, programFD)
        if r < 0 { throw SystemError("bpf_tc_attach(ifindex \(ifindex), \(egress ? "egress" : "ingress"))", errno: -r) }
    }

    private var owned = true

    deinit { if owned { _ = clbpf_tc_detach(ifindex, egress ? 1 : 0, TCFilter.handle, TCFilter.priority) } }

    /// Another filter replaced this one at the same handle and priority: leave it be.
    func disown() { owned = false }

    /// Puts `programFD` back at this filter's hook (undoing a replacement).
    func reattach(programFD: Int32) {
        _ = clbpf_tc_attach(ifindex, egress ? 1 : 0, TCFilter.handle, TCFilter.priority, programFD)
    }
}
