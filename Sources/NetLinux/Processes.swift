/// Who holds what, as /proc shows it: the processes holding a BPF program open, and a
/// process's name and command line (to name the owner of a netdev in an error).
public enum Processes {
    /// The entries of a directory, without "." and "..".
    public static func entries(of path: String) -> [String] {
        guard let d = opendir(path) else { return [] }
        defer { closedir(d) }
        var out: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { out.append(name) }
        }
        return out
    }

    /// The processes (other than this one) holding a file descriptor of one of the BPF
    /// programs `programIDs`, as /proc/<pid>/fdinfo shows them (`prog_id:`). A tc filter
    /// holds its program too, so a program nobody else holds is one a dead process left.
    /// Processes of other PID namespaces are not seen.
    public static func holding(bpfPrograms programIDs: Set<UInt32>) -> [Int32] {
        guard !programIDs.isEmpty else { return [] }
        let me = getpid()
        var pids: [Int32] = []
        for entry in entries(of: "/proc") {
            guard let pid = Int32(entry), pid != me else { continue }
            for fd in entries(of: "/proc/\(pid)/fd") where link(at: "/proc/\(pid)/fd/\(fd)") == "anon_inode:bpf-prog" {
                guard let info = try? ProcFile.read("/proc/\(pid)/fdinfo/\(fd)"),
                      let id = field("prog_id", in: info).flatMap(UInt32.init), programIDs.contains(id) else { continue }
                pids.append(pid)
                break
            }
        }
        return pids
    }

    /// "eswd eswp (pid 1234)" for an eswd (its `--name`, default esw0), else
    /// "<comm> (pid 1234)".
    public static func describe(_ pid: Int32) -> String {
        let comm = ((try? ProcFile.read("/proc/\(pid)/comm")) ?? "?").filter { $0 != "\n" }
        guard comm == "eswd" else { return "\(comm) (pid \(pid))" }
        let args = ((try? ProcFile.read("/proc/\(pid)/cmdline")) ?? "").split(separator: "\0", omittingEmptySubsequences: false)
        var name = "esw0"
        for (i, a) in args.enumerated() {
            if a == "--name", i + 1 < args.count { name = String(args[i + 1]) }
            if a.hasPrefix("--name=") { name = String(a.dropFirst("--name=".count)) }
        }
        return "eswd \(name) (pid \(pid))"
    }

    /// The inodes of this process's sockets (/proc/self/fd links `socket:[INODE]`),
    /// as /proc/net/packet and the like name them.
    public static func ownSocketInodes() -> Set<UInt64> {
        var out: Set<UInt64> = []
        for fd in entries(of: "/proc/self/fd") {
            guard let l = link(at: "/proc/self/fd/\(fd)"), l.hasPrefix("socket:["), l.hasSuffix("]"),
                  let inode = UInt64(l.dropFirst("socket:[".count).dropLast()) else { continue }
            out.insert(inode)
        }
        return out
    }

    private static func link(at path: String) -> String? {
        var buf = [CChar](repeating: 0, count: 256)
        let n = readlink(path, &buf, buf.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func field(_ key: String, in text: String) -> String? {
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            return line.dropFirst(key.count + 1).trimmingPrefix { $0 == " " || $0 == "\t" }.description
        }
        return nil
    }
}

extension InterfaceControl {
    /// The names of every netdev in this namespace.
    public func allNames() -> [String] {
        guard let list = if_nameindex() else { return [] }
        defer { if_freenameindex(list) }
        var names: [String] = []
        var entry = list
        while entry.pointee.if_index != 0, let name = entry.pointee.if_name {
            names.append(String(cString: name))
            entry += 1
        }
        return names
    }
}
