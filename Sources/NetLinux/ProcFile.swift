/// Small /proc and /sys files (sysctls): read whole, written whole.
public enum ProcFile {
    public static func read(_ path: String) throws(SystemError) -> String {
        let fd = try syscall("open \(path)") { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = try syscall("read \(path)") { Glibc.read(fd, &buf, buf.count) }
        return String(decoding: buf[0..<n], as: UTF8.self)
    }

    /// A /proc file of any length (a table such as /proc/net/packet), read to its end.
    public static func readWhole(_ path: String) throws(SystemError) -> String {
        let fd = try syscall("open \(path)") { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = try syscall("read \(path)") { Glibc.read(fd, &buf, buf.count) }
            if n == 0 { break }
            bytes += buf[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    public static func write(_ path: String, _ value: String) throws(SystemError) {
        let fd = try syscall("open \(path)") { open(path, O_WRONLY | O_CLOEXEC) }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        _ = try syscall("write \(path)") { Glibc.write(fd, bytes, bytes.count) }
    }
}
