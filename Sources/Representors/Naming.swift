import ESwitch

/// Netdev names, as the kernel and mlx5 name them: VF netdevs `<name>v<N>`,
/// representors `pf0vf<N>` and `p0`, optionally prefixed so that two eSwitches can
/// share a namespace.
public struct NetdevNaming: Sendable, Equatable {
    public let switchName: String
    public let representorPrefix: String

    public init(switchName: String, representorPrefix: String = "") {
        self.switchName = switchName
        self.representorPrefix = representorPrefix
    }

    public func vf(_ n: Int) -> String { "\(switchName)v\(n)" }

    /// The switch-side end of VF n's veth pair (it carries the eSwitch's program).
    public func vfSwitchSide(_ n: Int) -> String { "\(switchName)sw\(n)" }

    public func representor(for port: ESwitchPort) -> String { representorPrefix + port.physPortName }

    public func representor(vf n: Int?) -> String { representorPrefix + (n.map { "pf0vf\($0)" } ?? "p0") }

    /// N when `name` is exactly `<name>v<N>` or `<name>sw<N>` (not another eSwitch's
    /// netdev that merely shares the prefix).
    public func vfIndex(ofVFOrSwitchSide name: String) -> Int? {
        for (make, infix) in [(vf, "v"), (vfSwitchSide, "sw")] {
            if let n = trailingIndex(of: name, after: switchName + infix), make(n) == name { return n }
        }
        return nil
    }

    /// N when `name` is exactly this eSwitch's representor name for VF N.
    public func vfIndex(ofRepresentor name: String) -> Int? {
        guard let n = trailingIndex(of: name, after: representorPrefix + "pf0vf"), representor(vf: n) == name else { return nil }
        return n
    }

    /// The decimal number that follows `prefix` to the end of `name` (compared back by
    /// the callers, so "01" or "+1" do not pass for 1).
    private func trailingIndex(of name: String, after prefix: String) -> Int? {
        guard name.hasPrefix(prefix) else { return nil }
        let digits = name.dropFirst(prefix.count)
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber) else { return nil }
        return Int(digits)
    }

    /// Every name this eSwitch may create (for stale-netdev cleanup).
    public func allNames(vfs: Int) -> [String] {
        (0..<vfs).map(vf) + (0..<vfs).map(vfSwitchSide) + (0..<vfs).map { representor(vf: $0) } + [representor(vf: nil)]
    }

    /// Names longer than IFNAMSIZ-1 are refused by the kernel; check up front.
    public func validate(vfs: Int) -> String? {
        for n in allNames(vfs: vfs) where n.utf8.count > 15 {
            return "netdev name \"\(n)\" is longer than 15 characters"
        }
        return nil
    }

    /// A stable locally administered MAC for a netdev we create, from its name.
    public static func mac(for name: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return 0x02e5_0000_0000 | (h & 0xffff_ffff)
    }
}
