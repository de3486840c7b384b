import ControlProtocol
import ESwitch
import Netlink
import OVSDatapath
import Packet

/// Placeholder until the tunnel tracker lands: tunnel flows stay in software.
final class TunnelService: TunnelOffloadResolver {
    init(daemon: Daemon) throws {}
    var eventFD: Int32? { nil }
    func processEvents() {}
    func tick(now: UInt64) {}
    func handle(_ m: GenericMessage, _ r: inout ControlServer.Reply) throws(RequestError) {
        throw RequestError(95, "tunnel tracker not built yet")
    }
    func encapEntry(for tunnel: TunnelMetadata, vport: Vport) -> Result<EncapEntry, OffloadFailure> {
        .failure(.tunnel("tunnel tracker not built yet"))
    }
    func decapIngress(for remote: TunnelMetadata, vport: Vport) -> Result<PortIndex, OffloadFailure> {
        .failure(.tunnel("tunnel tracker not built yet"))
    }
}
