import Glibc
import NetLinux
import Testing

/// The last-level cache a core uses, read from a sysfs-shaped tree: the highest level's
/// size, not the package's total that glibc's sysconf gives on AMD.
struct CPUCacheTests {
    /// A cache directory as sysfs lays it out, in a fresh temporary directory.
    static func cacheTree(_ caches: [(level: Int, type: String, size: String)]) throws -> String {
        var template = Array("/tmp/esw-cpucache.XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        let root = try #require(made.map { String(cString: $0) })
        for (i, c) in caches.enumerated() {
            let dir = "\(root)/index\(i)"
            mkdir(dir, 0o755)
            for (name, value) in [("level", "\(c.level)\n"), ("type", c.type + "\n"), ("size", c.size + "\n")] {
                let fd = open("\(dir)/\(name)", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
                try #require(fd >= 0)
                _ = value.withCString { write(fd, $0, strlen($0)) }
                close(fd)
            }
        }
        return root
    }

    static func remove(_ root: String) {
        _ = "rm -rf '\(root)'".withCString { system($0) }
    }

    @Test func sizesAreReadInTheirUnits() {
        #expect(CPUCache.parseSize("32768K\n") == 32 << 20)
        #expect(CPUCache.parseSize("1M") == 1 << 20)
        #expect(CPUCache.parseSize("2G") == 2 << 30)
        #expect(CPUCache.parseSize("4096") == 4096)
        #expect(CPUCache.parseSize("") == nil)
        #expect(CPUCache.parseSize("K") == nil)
        #expect(CPUCache.parseSize("12Q") == nil)
    }

    @Test func theHighestDataOrUnifiedLevelIsTheLastLevel() throws {
        let root = try Self.cacheTree([(1, "Data", "48K"), (1, "Instruction", "32K"),
                                       (2, "Unified", "1024K"), (3, "Unified", "32768K")])
        defer { Self.remove(root) }
        #expect(CPUCache.lastLevel(under: root) == 32 << 20)
    }

    @Test func anInstructionCacheIsNotTheLastLevel() throws {
        let root = try Self.cacheTree([(1, "Data", "32K"), (2, "Unified", "512K"), (3, "Instruction", "64M")])
        defer { Self.remove(root) }
        #expect(CPUCache.lastLevel(under: root) == 512 << 10)
    }

    @Test func noCachesListedIsNoSize() throws {
        let root = try Self.cacheTree([])
        defer { Self.remove(root) }
        #expect(CPUCache.lastLevel(under: root) == nil)
    }
}
