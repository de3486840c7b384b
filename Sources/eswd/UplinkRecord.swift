import CNetLinux
import Logging
import NetLinux

/// The uplink's own settings (ARP on or off, IPv6 on or off) as they were before eswd
/// took it, kept in a file next to the control socket until a clean stop has given
/// them back. The driver records them again at every start; after a SIGKILL it would
/// record its own changes (NOARP, IPv6 disabled) as the originals, so a restart first
/// puts back what the file says. It also says whether the uplink had a clsact qdisc
/// before eswd (else the qdisc is eswd's to remove at a clean stop, even one after a
/// restart that found the qdisc a killed run had created).
struct UplinkRecord {
    let path: String
    let uplink: String

    /// `<run directory>/<name>.uplink`, the run directory being the control socket's.
    init(controlPath: String, name: String, uplink: String) {
        let dir = controlPath.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        path = (dir.isEmpty ? "." : dir) + "/\(name).uplink"
        self.uplink = uplink
    }

    struct Settings: Equatable {
        var noARP: Bool
        /// The disable_ipv6 sysctl's text; nil where the kernel has no IPv6.
        var disableIPv6: String?
        /// Whether the uplink had a clsact qdisc before eswd; nil until the driver has
        /// looked (and in files of older versions).
        var hadClsact: Bool? = nil
    }

    private var ipv6Sysctl: String { "/proc/sys/net/ipv6/conf/\(uplink)/disable_ipv6" }

    func current() throws(SystemError) -> Settings {
        let c = try InterfaceControl()
        let noARP = try c.flags(of: uplink) & Int32(IFF_NOARP) != 0
        return Settings(noARP: noARP, disableIPv6: (try? ProcFile.read(ipv6Sysctl))?.filter { !$0.isWhitespace })
    }

    /// Before the driver binds the uplink: after a crash, puts back the settings the
    /// file holds; otherwise writes the current ones to it. A failure costs only the
    /// protection against a crash: logged, not fatal.
    func prepare(logger: Logger) {
        do {
            if let saved = read() {
                try InterfaceControl().setFlag(uplink, Int32(IFF_NOARP), saved.noARP)
                if let v = saved.disableIPv6 { try ProcFile.write(ipv6Sysctl, v) }
                logger.notice("uplink settings restored from a run that did not stop cleanly",
                              metadata: ["uplink": "\(uplink)", "file": "\(path)"])
                return
            }
            let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
            if !dir.isEmpty { _ = mkdir(dir, 0o700) }
            try write(try current())
        } catch {
            logger.warning("uplink settings not recorded: \(error)", metadata: ["file": "\(path)"])
        }
    }

    /// After the driver made sure the uplink has a clsact qdisc (`createdNow`: it had
    /// none): whether the qdisc is eswd's, created now or by a run that did not stop
    /// cleanly. Recorded for the next start; if the file cannot be written, only a qdisc
    /// created now is ours.
    func settleClsact(createdNow: Bool, logger: Logger) -> Bool {
        guard var settings = read() else { return createdNow }
        let hadClsact = createdNow ? false : (settings.hadClsact ?? true)
        settings.hadClsact = hadClsact
        do { try write(settings) } catch {
            logger.warning("uplink clsact ownership not recorded: \(error)", metadata: ["file": "\(path)"])
        }
        return !hadClsact
    }

    /// After a clean stop has given the uplink back.
    func remove() { _ = unlink(path) }

    func read() -> Settings? {
        guard let text = try? String(readingFile: path) else { return nil }
        var fields: [Substring: Substring] = [:]
        for line in text.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            fields[line[..<eq]] = line[line.index(after: eq)...]
        }
        // A file for another uplink (the option changed) says nothing about this one.
        guard fields["uplink"].map(String.init) == uplink, let noARP = fields["noarp"] else { return nil }
        return Settings(noARP: noARP == "1", disableIPv6: fields["disable_ipv6"].map(String.init),
                        hadClsact: fields["clsact"].map { $0 == "1" })
    }

    /// Written whole under a temporary name, then renamed: a crash mid-write leaves the
    /// old file or the new one.
    private func write(_ s: Settings) throws(SystemError) {
        var text = "uplink=\(uplink)\nnoarp=\(s.noARP ? 1 : 0)\n"
        if let v = s.disableIPv6 { text += "disable_ipv6=\(v)\n" }
        if let had = s.hadClsact { text += "clsact=\(had ? 1 : 0)\n" }
        let temporary = path + ".tmp"
        let fd = try syscall("open \(temporary)") { open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) }
        let bytes = Array(text.utf8)
        let written = Result { () throws(SystemError) in try syscall("write \(temporary)") { Glibc.write(fd, bytes, bytes.count) } }
        close(fd)
        _ = try written.get()
        _ = try syscall("rename \(temporary)") { rename(temporary, path) }
    }
}
