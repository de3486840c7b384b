@testable import ESwitch
import Foundation
import Testing

/// The paper's utilisation question, as an experiment on the driver's accounting: a
/// masked table filled with IPv4 (one unit) and IPv6 (double width) rules in turn, and
/// an exact-match memory shared with legacy MAC entries filled with 5-tuples, each until
/// its first refusal, under `predictive flat`, `predictive complex` and `credit`, beside
/// `lockstep` (which asks the hardware every time: the real capacity). Sizes from
/// ESW_UTILISATION_MASKED / _EXACT (default 1024 / 2048, MAC entries an eighth of the
/// exact memory); ESW_EXPERIMENT_OUT appends the Markdown table to that file.
struct UtilisationExperimentTests {
    struct Row {
        var model: String
        var maskedAdmitted = 0, maskedUnits = 0, exactAdmitted = 0, wrong: UInt64 = 0
        var maskedCapacity = 0, exactCapacity = 0
        var maskedShare: Double { Double(maskedUnits) / Double(maskedCapacity) }
        var exactShare: Double { Double(exactAdmitted) / Double(exactCapacity) }
    }

    static func size(_ name: String, _ fallback: Int) -> Int {
        ProcessInfo.processInfo.environment[name].flatMap { Int($0) } ?? fallback
    }

    static func run(_ label: String, _ model: OffloadModel, _ predictive: PredictiveModel = .complex) throws -> Row {
        let masked = size("ESW_UTILISATION_MASKED", 1024), exact = size("ESW_UTILISATION_EXACT", 2048)
        let (sw, _, _) = try OffloadModelTests.device(model, masked: masked, exact: exact, latency: 0, query: 0,
                                                      predictive: predictive)
        let macs = exact / 8
        for _ in 0..<macs { #expect(sw.tables.reserveMACEntry()) }
        var row = Row(model: label, maskedCapacity: masked, exactCapacity: exact - macs)
        var n = 0
        while true {
            let spec = n % 2 == 0 ? OffloadModelTests.ipv4(n) : OffloadModelTests.ipv6(n)
            guard case .success = sw.addRule(spec) else { break }
            n += 1
        }
        row.maskedAdmitted = n
        n = 0
        while case .success = sw.addRule(OffloadModelTests.fiveTuple(n)) { n += 1 }
        row.exactAdmitted = n
        sw.drainHardware()
        row.maskedUnits = sw.tables.maskedPool.programmed
        row.wrong = sw.offloadStatistics.wrongPredictions + sw.offloadStatistics.lateFailures
        #expect(sw.tables.exactFlows.programmed == row.exactAdmitted, "every admitted rule reached the hardware")
        return row
    }

    @Test func predictionsAgainstTheRealCapacity() throws {
        let rows = [try Self.run("lockstep (asks the hardware)", .lockstep),
                    try Self.run("credit", .credit),
                    try Self.run("predictive flat", .predictive, .flat),
                    try Self.run("predictive complex", .predictive, .complex)]
        let real = rows[0], credit = rows[1], flat = rows[2], complex = rows[3]
        #expect(real.maskedShare >= 0.99 && real.exactShare == 1.0)
        for r in [credit, complex] {
            #expect(r.maskedShare >= 0.99, "\(r.model) masked \(r.maskedShare)")
            #expect(r.exactShare >= 0.99, "\(r.model) exact \(r.exactShare)")
            #expect(r.wrong == 0)
        }
        #expect(flat.wrong == 0)
        #expect(flat.maskedShare < complex.maskedShare && flat.exactShare < complex.exactShare)
        if let out = ProcessInfo.processInfo.environment["ESW_EXPERIMENT_OUT"] {
            var md = "| model | masked rules admitted | masked units used / capacity | exact 5-tuples admitted / capacity | wrong predictions |\n"
            md += "|---|---:|---:|---:|---:|\n"
            for r in rows {
                md += "| \(r.model) | \(r.maskedAdmitted) | \(r.maskedUnits) / \(r.maskedCapacity) (\(Self.percent(r.maskedShare))) "
                md += "| \(r.exactAdmitted) / \(r.exactCapacity) (\(Self.percent(r.exactShare))) | \(r.wrong) |\n"
            }
            let existing = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
            try (existing + md).write(toFile: out, atomically: true, encoding: .utf8)
        }
    }

    static func percent(_ x: Double) -> String { String(format: "%.1f %%", x * 100) }
}
