@testable import BPFDataPlane
import Testing

/// Which program of a user's object `port prog set … sec NAME` loads (UserProgramObject).
struct ProgramChoiceTests {
    static let two: [(section: String, name: String)] = [("tc", "two_pass"), ("tc", "two_drop"), ("drop", "esw_drop_all")]

    /// Two programs in section tc: the first used to be taken silently.
    @Test func aSectionWithTwoProgramsIsAmbiguous() {
        guard case .failure(let r) = UserProgramObject.choose("tc", among: Self.two) else {
            Issue.record("section tc chosen")
            return
        }
        #expect(r.reason.contains("section \"tc\" holds 2 programs (two_pass, two_drop)"))
    }

    @Test func aFunctionNamePicksOne() throws {
        #expect(try UserProgramObject.choose("two_drop", among: Self.two).get() == 1)
        #expect(try UserProgramObject.choose("drop", among: Self.two).get() == 2, "a section of one program")
        #expect(try UserProgramObject.choose(nil, among: Self.two).get() == 0, "no sec: the first")
    }

    @Test func noSuchNameIsNamed() {
        guard case .failure(let r) = UserProgramObject.choose("nope", among: Self.two) else {
            Issue.record("nope chosen")
            return
        }
        #expect(r.reason.contains("no section \"nope\""))
    }
}
