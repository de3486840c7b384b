import Glibc
import NetLinux

/// The uplink representor (p0) stands for the physical port, as mlx5's uplink
/// representor does: its carrier is the wire's, its MTU the port's, and its MAC is the
/// one remote VTEPs resolve the host's VTEP address to, so the only outer destination
/// MAC the hardware decaps VXLAN for.
extension ESwitch {
    /// Brings p0 and the data plane up to date with the uplink. Cheap; called after
    /// representors are created or destroyed and periodically by the control loop.
    public func syncUplinkRepresentor() {
        let up = ports.first { $0.uplink != nil }
        let rep = up?.representor
        publishVTEPMAC(rep.flatMap { try? $0.tap.hardwareAddress().value } ?? 0)
        guard let up, let uplink = up.uplink, let rep, let c = try? InterfaceControl() else {
            reflectedCarrier = nil
            return
        }
        // A TAP's carrier is set through its fd (TUNSETCARRIER): the kernel then does on
        // p0 what it does on carrier loss (neighbours flushed, routes linkdown), and the
        // tunnel tracker sees it as a link and neighbour change.
        let carrier = c.isRunning(uplink.name)
        if carrier != reflectedCarrier {
            do {
                try rep.tap.setCarrier(carrier)
                reflectedCarrier = carrier
                logger.info("uplink carrier reflected on its representor",
                            metadata: ["netdev": "\(rep.name)", "carrier": "\(carrier ? "up" : "down")"])
            } catch {
                logger.warning("carrier reflection failed", metadata: ["netdev": "\(rep.name)", "error": "\(error)"])
            }
        }
    }

    /// The uplink netdev's MTU was changed directly (not through p0): p0 takes it, as it
    /// reports the port's MTU. Returns whether p0 changed. A change made on p0 goes the
    /// other way (`reflectMTU`); each direction acts only on a value that differs from
    /// the port's recorded MTU, so neither echoes the other.
    public func followUplinkMTU() -> Int? {
        guard let up = ports.first(where: { $0.uplink != nil }), let uplink = up.uplink, let rep = up.representor,
              let c = try? InterfaceControl(), let mtu = try? c.mtu(of: uplink.name), mtu != up.mtu else { return nil }
        do {
            try c.setMTU(rep.name, mtu)
            up.mtu = mtu
            try publish(up)
            logger.info("uplink MTU reflected on its representor", metadata: ["netdev": "\(rep.name)", "mtu": "\(mtu)"])
            return mtu
        } catch {
            logger.warning("uplink MTU reflection failed", metadata: ["netdev": "\(rep.name)", "error": "\(error)"])
            return nil
        }
    }

    private func publishVTEPMAC(_ mac: UInt64) {
        guard mac != publishedVTEPMAC else { return }
        do {
            try dataPlane.setVTEPMAC(mac)
            publishedVTEPMAC = mac
        } catch {
            logger.warning("VTEP MAC not written to the data plane", metadata: ["error": "\(error)"])
        }
    }
}
