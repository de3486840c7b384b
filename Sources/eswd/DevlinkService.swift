import ControlProtocol
import Glibc
import ESwitch
import NetLinux
import Netlink
import Representors

/// The esw_devlink family: the device, its eswitch mode, ports, parameters and
/// resources, as `devlink` shows them for a NIC.
final class DevlinkService {
    let sw: ESwitch
    let driver: RepresentorDriver
    /// Runs after the eswitch mode changed (the datapath drops the vports of
    /// representors that went).
    var afterModeChange: () -> Void = {}

    init(sw: ESwitch, driver: RepresentorDriver) {
        self.sw = sw
        self.driver = driver
    }

    func handle(_ m: GenericMessage, _ r: inout ControlServer.Reply) throws(RequestError) {
        let a = try RequestAttributes(m.attributes)
        if let n = try a.string(DevlinkAttr.devName), n != sw.name { throw RequestError(19, "no device \(n) (this is \(sw.name))") }
        let dump = m.header.flags & NetlinkFlags.dump == NetlinkFlags.dump
        func reply(_ cmd: UInt8, _ w: AttributeWriter) throws(RequestError) {
            r.message(.reply(family: Family.devlink, command: cmd, sequence: r.sequence, multi: dump, attributes: try w.replyAttributes()))
        }
        switch m.command {
        case DevlinkCmd.devGet, DevlinkCmd.eswitchGet:
            var w = AttributeWriter()
            w.putString(DevlinkAttr.devName, sw.name)
            w.putString(DevlinkAttr.driver, "esw")
            w.putString(DevlinkAttr.mode, sw.mode.rawValue)
            w.putString(DevlinkAttr.switchID, driver.switchID)
            try reply(m.command, w)
        case DevlinkCmd.eswitchSet:
            guard let modeName = try a.string(DevlinkAttr.mode), let mode = ESwitchMode(rawValue: modeName) else {
                throw RequestError(22, "mode must be legacy or switchdev")
            }
            do { try sw.setMode(mode) } catch { throw RequestError(5, "mode change failed: \(error)") }
            afterModeChange()
        case DevlinkCmd.reload:
            do { try sw.reload() } catch { throw RequestError(error.errno, "reload refused: \(error)") }
        case DevlinkCmd.paramGet:
            for n in DeviceParams.names {
                if let want = try a.string(DevlinkAttr.paramName), want != n { continue }
                var w = AttributeWriter()
                w.putString(DevlinkAttr.devName, sw.name)
                w.putString(DevlinkAttr.paramName, n)
                w.putString(DevlinkAttr.paramValue, sw.params.value(of: n) ?? "")
                try reply(DevlinkCmd.paramGet, w)
            }
            if let want = try a.string(DevlinkAttr.paramName), sw.params.value(of: want) == nil {
                throw RequestError(22, DeviceParams.ParamError.unknown(want).description)
            }
        case DevlinkCmd.paramSet:
            guard let n = try a.string(DevlinkAttr.paramName), let v = try a.string(DevlinkAttr.paramValue) else {
                throw RequestError(22, "param name and value required")
            }
            var p = sw.params
            do { try p.set(n, v) } catch { throw RequestError(22, error.description) }
            sw.params = p
        case DevlinkCmd.portGet:
            let only = try a.u32(DevlinkAttr.portIndex)
            if let only, sw.port(only) == nil { throw RequestError(19, "no port \(only)") }
            for p in sw.ports where only == nil || only == p.index { try reply(DevlinkCmd.portGet, describe(p)) }
        case DevlinkCmd.portFunctionSet:
            guard let idx = try a.u32(DevlinkAttr.portIndex), let p = sw.port(idx) else { throw RequestError(19, "no such port") }
            guard p.vf != nil else { throw RequestError(95, "port \(idx) is the uplink; functions are set on VF ports") }
            do {
                // The whole request is checked before any of it is applied (devlink's
                // devlink_port_function_validate): a refusal changes nothing.
                var mac: UInt64?
                if let bytes = a.bytes(DevlinkAttr.portHWAddr) {
                    guard bytes.count == 6 else { throw RequestError(22, "hw_addr must be 6 bytes") }
                    mac = bytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                }
                let vlan = try a.u16(DevlinkAttr.portVLAN), qos = try a.u16(DevlinkAttr.portQoS) ?? 0
                if let vlan {
                    guard vlan < 4095 else { throw RequestError(22, "vlan must be 0...4094") }
                    guard qos < 8 else { throw RequestError(22, "qos must be 0...7") }
                }
                // A u8 of another length is malformed, never skipped (it was acknowledged as done).
                let linkUp = try a.u8(DevlinkAttr.portLinkUp)
                if let refusal = sw.portFunctionRefusal(idx, mac: mac, vlan: vlan) { throw refusal }
                if let mac { try sw.setVFMAC(idx, mac: mac) }
                if let vlan { try sw.setVFVLAN(idx, vlan: vlan, qos: UInt8(qos)) }
                if let linkUp { try sw.setVFLinkState(idx, up: linkUp != 0) }
            } catch let e as RequestError {
                throw e
            } catch let e as PortFunctionRefusal {
                throw RequestError(e.errno, e.description)
            } catch let e as LegacyMACRefusal {
                throw RequestError(e.errno, e.description)
            } catch {
                throw RequestError(5, "\(error)")
            }
        case DevlinkCmd.portProgramSet:
            guard let idx = try a.u32(DevlinkAttr.portIndex), sw.port(idx) != nil else { throw RequestError(19, "no such port") }
            guard let path = try a.string(DevlinkAttr.portProgramObject) else {
                sw.detachProgram(idx)
                return
            }
            let section = try a.string(DevlinkAttr.portProgramSection)
            do {
                _ = try sw.attachProgram(idx, objectPath: path, section: section)
            } catch {
                switch error {
                case .programRefused(let m): throw RequestError(22, m)
                case .system(let w, let e): throw RequestError(e, "\(w): \(String(cString: strerror(e)))")
                default: throw RequestError(95, error.description)
                }
            }
        case DevlinkCmd.resourceDump:
            var w = AttributeWriter()
            w.putString(DevlinkAttr.devName, sw.name)
            for res in sw.tables.resources { Self.put(res, into: &w) }
            try reply(DevlinkCmd.resourceDump, w)
        case DevlinkCmd.resourceSet:
            guard let path = try a.string(DevlinkAttr.resourcePath), let size = a[DevlinkAttr.resourceSize] else {
                throw RequestError(22, "resource path and size required")
            }
            let n: UInt64
            do { n = try size.u64() } catch { throw RequestError(22, "size: \(error)") }
            // devlink_nl_cmd_resource_set: a path that names no resource is EINVAL.
            guard let res = sw.tables.resource(at: path) else { throw RequestError(22, "no resource \(path.isEmpty ? "(empty path)" : path)") }
            // devlink's size is a u64: one beyond Int's range is outside every resource's
            // range, and the refusal names the size given (clamped, it named Int.max).
            let wanted = Int(exactly: n) ?? Int.max
            do { try res.setPending(wanted) } catch {
                throw RequestError(22, Int(exactly: n) == nil ? "resource \(res.path): size \(n) outside \(res.sizeMin)...\(res.sizeMax)" : error.description)
            }
        case DevlinkCmd.offloadStats:
            let s = sw.offloadStatistics
            var w = AttributeWriter()
            w.putU64(DevlinkAttr.offloadOperations, s.operations)
            w.putU64(DevlinkAttr.offloadHardwareAccesses, s.callerAccesses)
            w.putU64(DevlinkAttr.offloadWaitedNanoseconds, s.callerWaitNanoseconds)
            w.putU64(DevlinkAttr.offloadFirmwareAccesses, s.firmwareAccesses)
            w.putU64(DevlinkAttr.offloadRefills, s.refills)
            w.putU64(DevlinkAttr.offloadProgrammed, s.programmedRules)
            w.putU64(DevlinkAttr.offloadLateFailures, s.lateFailures)
            w.putU64(DevlinkAttr.offloadWrongPredictions, s.wrongPredictions)
            w.putU64(DevlinkAttr.offloadPendingWrites, UInt64(sw.pendingHardwareWrites))
            w.putU64(DevlinkAttr.offloadCoherentAt, s.lastCoherentNanoseconds)
            let burst = sw.lastOffloadBurst
            w.putU64(DevlinkAttr.offloadBurstOperations, burst.operations)
            w.putU64(DevlinkAttr.offloadBurstCallerNanoseconds, burst.callerNanoseconds)
            if let c = burst.coherentNanoseconds { w.putU64(DevlinkAttr.offloadBurstCoherentNanoseconds, c) }
            let refused = sw.connections.refusals, ct = sw.dataPlane.conntrackCounters()
            for (attr, v) in [(DevlinkAttr.ctConnections, UInt64(sw.connections.count)), (DevlinkAttr.ctRefusedFull, refused.full),
                              (DevlinkAttr.ctRefusedUnsupported, refused.unsupported), (DevlinkAttr.ctWriteFailed, refused.writeFailed),
                              (DevlinkAttr.ctRefusedNoRule, refused.noRule),
                              (DevlinkAttr.ctHits, ct.hits), (DevlinkAttr.ctMisses, ct.misses), (DevlinkAttr.ctHandBacks, ct.handBacks),
                              (DevlinkAttr.ctChainMisses, ct.chainMisses), (DevlinkAttr.ctTooDeep, ct.tooDeep)] {
                w.putU64(attr, v)
            }
            try reply(DevlinkCmd.offloadStats, w)
        default:
            throw RequestError(95, "unknown devlink command \(m.command)")
        }
    }

    func describe(_ p: ESwitchPort) -> AttributeWriter {
        var w = AttributeWriter()
        w.putString(DevlinkAttr.devName, sw.name)
        w.putU32(DevlinkAttr.portIndex, p.index)
        w.putString(DevlinkAttr.portNetdev, p.representor?.name ?? p.netdevName)
        w.putString(DevlinkAttr.portFlavour, p.flavour.rawValue)
        w.putU32(DevlinkAttr.portPFNumber, 0)
        if let vf = p.vf { w.putU32(DevlinkAttr.portVFNumber, UInt32(vf)) }
        if let r = p.representor { w.putString(DevlinkAttr.portRepresentor, r.name) }
        w.putString(DevlinkAttr.portPhysName, p.physPortName)
        w.putString(DevlinkAttr.switchID, driver.switchID)
        if p.vf != nil {
            var mac = p.config.mac
            if mac == 0, let m = sw.vfMAC(p.index) { mac = m }
            w.put(DevlinkAttr.portHWAddr, (0..<6).map { UInt8(truncatingIfNeeded: mac >> UInt64(40 - 8 * $0)) })
            w.putU16(DevlinkAttr.portVLAN, p.config.vlan)
            w.putU16(DevlinkAttr.portQoS, UInt16(p.config.qos))
            w.putU8(DevlinkAttr.portLinkUp, p.config.linkUp ? 1 : 0)
        }
        w.putU32(DevlinkAttr.portMTU, UInt32(p.mtu))
        let c = sw.portCounters(p.index)
        w.putU64Array(DevlinkAttr.portStats, [c.rxPackets, c.rxBytes, c.txPackets, c.txBytes, c.rxDropped, c.txDropped,
                                              c.toRepresentor, c.fromRepresentor])
        if let prog = sw.attachedProgram(p.index) {
            w.putString(DevlinkAttr.portProgramObject, prog.objectPath)
            w.putString(DevlinkAttr.portProgramSection, prog.section)
            w.putString(DevlinkAttr.portProgramName, prog.name)
            w.putU32(DevlinkAttr.portProgramID, prog.id)
            w.putU64Array(DevlinkAttr.portProgramStats, sw.programCounters(p.index).values)
        }
        return w
    }

    static func put(_ r: HardwareResource, into w: inout AttributeWriter) {
        w.nested(DevlinkAttr.resource) { n in
            n.putString(DevlinkAttr.resourceName, r.name)
            n.putString(DevlinkAttr.resourcePath, r.path.dropFirstComponent)
            n.putU64(DevlinkAttr.resourceSize, UInt64(r.size))
            if let p = r.pendingSize {
                n.putU64(DevlinkAttr.resourceSizeNew, UInt64(p))
                n.putU8(DevlinkAttr.resourceSizeValid, r.pendingSizeValid ? 1 : 0)
            }
            n.putU64(DevlinkAttr.resourceOccupancy, UInt64(r.occupancy))
            n.putU64(DevlinkAttr.resourceOccupancyProgrammed, UInt64(r.programmed))
            n.putString(DevlinkAttr.resourceUnit, r.unit)
            n.putU64(DevlinkAttr.resourceSizeMin, UInt64(r.sizeMin))
            n.putU64(DevlinkAttr.resourceSizeMax, UInt64(r.sizeMax))
            n.putU64(DevlinkAttr.resourceSizeGranularity, UInt64(r.sizeGranularity))
            for c in r.children { put(c, into: &n) }
        }
    }
}

extension String {
    /// "/esw0/exact/mac" → "/exact/mac".
    var dropFirstComponent: String {
        let parts = split(separator: "/")
        return "/" + parts.dropFirst().joined(separator: "/")
    }
}
