import Testing
@testable import ESwitch

/// What `devlink resource show` and a refused reload say about resources.
@Suite struct ResourceReportTests {
    /// A parent pool with two children that share its memory, as exact/mac and exact/flows.
    func tree() -> (parent: HardwareResource, mac: HardwareResource, flows: HardwareResource) {
        let parent = HardwareResource(name: "exact", size: 10, sizeMax: 100)
        let mac = parent.addChild(HardwareResource(name: "mac", size: nil, sizeMax: 100))
        let flows = parent.addChild(HardwareResource(name: "flows", size: nil, sizeMax: 100))
        return (parent, mac, flows)
    }

    /// devlink's size_valid is about sizes fitting together: a leaf's new size within its
    /// parent's is valid.
    @Test func aLeafsPendingSizeIsValid() throws {
        let t = tree()  // the whole tree: a child's parent is unowned
        try t.mac.setPending(5)
        #expect(t.mac.pendingSize == 5)
        #expect(t.mac.pendingSizeValid)
    }

    /// ... unless it does not fit its parent, which reload refuses.
    @Test func aLeafBiggerThanItsParentIsNotValid() throws {
        let t = tree()
        try t.flows.setPending(40)
        #expect(!t.flows.pendingSizeValid)
        try t.parent.setPending(50)
        #expect(t.flows.pendingSizeValid)
    }

    @Test func aParentsPendingSizeIsValidWhenEveryChildFits() throws {
        let (parent, mac, flows) = tree()
        try mac.setPending(8)
        try flows.setPending(8)  // shared memory: 8 + 8 > 10 is fine, each fits
        #expect(parent.pendingSizeValid)
        try parent.setPending(6)
        #expect(!parent.pendingSizeValid)
        try parent.setPending(20)
        #expect(parent.pendingSizeValid)
    }

    @Test func aRefusedReloadCountsItsEntriesInGoodEnglish() {
        #expect(HardwareResource.SizeError.occupancyDoesNotFit(path: "/masked", size: 0, occupancy: 1).description
            == "resource /masked: 1 entry in use does not fit in size 0")
        #expect(HardwareResource.SizeError.occupancyDoesNotFit(path: "/masked", size: 5, occupancy: 10).description
            == "resource /masked: 10 entries in use do not fit in size 5")
    }
}
