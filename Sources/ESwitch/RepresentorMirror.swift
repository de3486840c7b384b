/// A NIC's representor shows, to a capture on it, the frames the host sends on it as
/// well as those that come up it. Here a frame sent on a representor is redirected at
/// tc egress, before the point where the kernel gives packet sockets their copy; so
/// while someone captures, the hardware sends the port a clone and lets the frame go on
/// through the representor's own transmit (bpf/esw.bpf.c, esw_rep_tx). Whoever turns
/// it on also reads those frames off the TAP, or its queue fills (Representors,
/// RepresentorCapture).
extension ESwitch {
    /// Mirrors the transmit of the representors of `captured`, and of no other port.
    /// Returns the ports whose setting changed; a port whose write failed keeps its
    /// old setting and is left out.
    @discardableResult
    public func mirrorRepresentorTransmit(of captured: Set<PortIndex>) -> [PortIndex] {
        var changed: [PortIndex] = []
        for p in ports {
            let on = captured.contains(p.index) && p.representor != nil
            guard on != p.mirrorsTransmit else { continue }
            p.mirrorsTransmit = on
            do {
                try publish(p)
                changed.append(p.index)
            } catch {
                p.mirrorsTransmit = !on
                logger.warning("representor mirror not changed", metadata: ["port": "\(p.physPortName)", "error": "\(error)"])
            }
        }
        return changed
    }
}
