/// The last-level cache one CPU can use, from sysfs.
///
/// Not `sysconf(_SC_LEVEL3_CACHE_SIZE)`: on AMD glibc reports the whole package's L3
/// there (384 MiB for this VM's EPYC), while a core shares only its complex's (32 MiB,
/// as sysfs and lscpu say). A threshold taken from the package's total never came.
public enum CPUCache {
    /// Bytes of the highest cache level CPU 0 has; nil when sysfs does not say.
    public static let lastLevelBytes: Int? = lastLevel(under: "/sys/devices/system/cpu/cpu0/cache")

    /// The size of the highest-level data or unified cache described under `directory`
    /// (its `index*/level`, `type` and `size` files).
    public static func lastLevel(under directory: String) -> Int? {
        var best: (level: Int, bytes: Int)?
        // Caches are listed as index0, index1, ...: the first gap ends them.
        for i in 0..<16 {
            let dir = "\(directory)/index\(i)"
            guard let levelText = try? ProcFile.read("\(dir)/level") else { break }
            guard let level = Int(levelText.trimmed),
                  let type = try? ProcFile.read("\(dir)/type"), type.trimmed != "Instruction",
                  let sizeText = try? ProcFile.read("\(dir)/size"), let bytes = parseSize(sizeText) else { continue }
            if level > best?.level ?? 0 { best = (level, bytes) }
        }
        return best?.bytes
    }

    /// sysfs's cache size: a number of bytes, or of KiB, MiB or GiB ("32768K").
    public static func parseSize(_ text: String) -> Int? {
        var digits = text.trimmed
        var unit = 1
        switch digits.last {
        case "K": unit = 1 << 10
        case "M": unit = 1 << 20
        case "G": unit = 1 << 30
        default: break
        }
        if unit != 1 { digits.removeLast() }
        guard let n = Int(digits), n > 0 else { return nil }
        return n * unit
    }
}

private extension String {
    var trimmed: String { String(filter { !$0.isWhitespace }) }
}
