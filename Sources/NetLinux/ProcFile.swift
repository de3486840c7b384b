/// Small /proc and /sys files (sysctls): read whole, written whole.
public enum ProcFile {
    public static func read(_ path: String) throws(SystemError) -> String {
        let fd = try syscall("open \(path)") { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = try syscall("read \(path)") { Glibc.read(fd, &buf, buf.count) }
        return String(decoding: buf[0..<n], as: UTF8.self)
    }

    public static func write(_ path: String, _ value: String) throws(SystemError) {
        let fd = try syscall("open \(path)") { open(path, O_WRONLY | O_CLOEXEC) }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        _ = try syscall("write \(path)") { Glibc.write(fd, bytes, bytes.count) }
    }
}
