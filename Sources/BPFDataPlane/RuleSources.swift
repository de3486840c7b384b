import Classifier
import ESwitch
import Packet

/// A rule to queue for the tables, in the form the driver hands it over: a
/// `DataPlaneRule` (full key and mask), or the driver rule's classifier entry, whose
/// significant words fill the table key directly (`EntryRule`: no 224-byte key rebuilt
/// and copied for a rule of four words).
protocol RuleSource {
    var table: HardwareTable { get }
    var actions: [HardwareAction] { get }
    var counter: UInt32 { get }
    /// The table key (mask id left 0) and the mask's words, into zeroed ones (an entry
    /// writes only its significant words); false, and partly filled, when the match asks
    /// for bits outside the hardware key (`Layout.fitsHardwareKey`).
    func fill(_ tableKey: inout TableKey, _ maskWords: inout MaskWords) -> Bool
    /// The rule with its full key and mask (the paths that write at once).
    var rule: DataPlaneRule { get }
}

extension DataPlaneRule: RuleSource {
    func fill(_ tableKey: inout TableKey, _ maskWords: inout MaskWords) -> Bool {
        var k = key, m = mask
        return Layout.fill(&tableKey, &maskWords, key: &k, mask: &m)
    }

    var rule: DataPlaneRule { self }
}

struct EntryRule: RuleSource {
    let table: HardwareTable
    let match: ClassifierEntry
    let actions: [HardwareAction]
    let counter: UInt32

    func fill(_ tableKey: inout TableKey, _ maskWords: inout MaskWords) -> Bool {
        var o = tableKey.words.mutableSpan, mw = maskWords.words.mutableSpan
        for j in 0..<match.significantWordCount {
            let (i, m, v) = match.significantWord(j)
            let s = Layout.hardwareSlot(ofKeyWord: i)
            // Outside the hardware key only a zero may be asked for.
            guard s >= 0 else {
                if v != 0 { return false }
                continue
            }
            mw[s] = m
            o[s + 1] = v
        }
        return true
    }

    var rule: DataPlaneRule {
        DataPlaneRule(table: table, key: match.key, mask: match.mask.bits, actions: actions, counter: counter)
    }
}

extension Layout {
    /// A FlowKey word's place among the hardware key's words (`hardwareWordSource`
    /// inverted; LayoutTests checks both agree), -1 for a word outside it.
    @inline(__always)
    static func hardwareSlot(ofKeyWord i: Int) -> Int {
        switch i {
        case 0...6: i
        case 9: 7
        case 13...22: i - 5
        default: -1
        }
    }
}
