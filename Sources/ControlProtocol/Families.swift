/// The control protocol: netlink messages over a UNIX socket (docs/ARCHITECTURE.md §5). The OVS
/// families use openvswitch.h's commands and attributes; esw adds a devlink-like and a
/// tunnel family, and a few attributes numbered from 100 so they never collide.
public enum Family {
    public static let datapath: UInt16 = 0x20
    public static let vport: UInt16 = 0x21
    public static let flow: UInt16 = 0x22
    public static let packet: UInt16 = 0x23
    public static let devlink: UInt16 = 0x24
    public static let tunnel: UInt16 = 0x25
    public static let conntrack: UInt16 = 0x26
}

public enum DatapathCmd {
    public static let new: UInt8 = 1, del: UInt8 = 2, get: UInt8 = 3, set: UInt8 = 4
}

public enum DatapathAttr {
    public static let name: UInt16 = 1
    public static let upcallPID: UInt16 = 2
    /// struct ovs_dp_stats { n_hit, n_missed, n_lost, n_flows } (u64 each).
    public static let stats: UInt16 = 3
    /// struct ovs_dp_megaflow_stats { n_mask_hit u64, n_masks u32, pad u32, n_cache_hit u64, pad u64 }.
    public static let megaflowStats: UInt16 = 4
    public static let userFeatures: UInt16 = 5
    // esw
    public static let policy: UInt16 = 100
    public static let missMode: UInt16 = 101
    public static let offloadedFlows: UInt16 = 102
    public static let maxIdle: UInt16 = 103
    public static let eswitch: UInt16 = 104
    /// Flows whose hardware rule waits for the firmware, and flows whose rule the
    /// hardware refused after the add had succeeded.
    public static let pendingFlows: UInt16 = 105
    public static let failedFlows: UInt16 = 106
    /// Packets of skip_sw flows that reached the software path (no fallback there): lost.
    public static let hardwareOnlyDrops: UInt16 = 107
    /// u8: partial offload (hinting) on (1) or off (0); settable.
    public static let partialOffload: UInt16 = 108
    /// Partially offloaded flows, and packets whose mark named no flow any more.
    public static let partialFlows: UInt16 = 109
    public static let staleMarks: UInt16 = 110
    /// Failed flows installed under skip_sw (no software fallback: blackholed).
    public static let blackholedFlows: UInt16 = 111
}

public enum VportCmd {
    public static let new: UInt8 = 1, del: UInt8 = 2, get: UInt8 = 3, set: UInt8 = 4
}

public enum VportAttr {
    public static let portNumber: UInt16 = 1
    public static let type: UInt16 = 2
    public static let name: UInt16 = 3
    public static let options: UInt16 = 4
    public static let upcallPID: UInt16 = 5
    /// struct ovs_vport_stats (8 × u64).
    public static let stats: UInt16 = 6
    public static let ifindex: UInt16 = 8
    // esw
    public static let eswitchPort: UInt16 = 100
    /// u64 × 3, a representor's received packets as OVS counts them: rx_offload_full
    /// (the hardware ran the flow), rx_offload_partial (the hardware marked it, software
    /// found the flow by mark), rx_offload_miss (software classified it).
    public static let offloadCounters: UInt16 = 101
}

/// OVS_TUNNEL_ATTR_* inside OVS_VPORT_ATTR_OPTIONS.
public enum TunnelOptionAttr {
    public static let dstPort: UInt16 = 1
}

public enum FlowCmd {
    public static let new: UInt8 = 1, del: UInt8 = 2, get: UInt8 = 3, set: UInt8 = 4
}

public enum FlowAttr {
    public static let key: UInt16 = 1
    public static let actions: UInt16 = 2
    /// struct ovs_flow_stats { n_packets u64, n_bytes u64 }.
    public static let stats: UInt16 = 3
    public static let tcpFlags: UInt16 = 4
    /// u64 milliseconds of CLOCK_MONOTONIC at the last use.
    public static let used: UInt16 = 5
    public static let clear: UInt16 = 6
    public static let mask: UInt16 = 7
    public static let probe: UInt16 = 8
    /// OVS_FLOW_ATTR_UFID and OVS_FLOW_ATTR_UFID_FLAGS (11 is OVS_FLOW_ATTR_PAD).
    public static let ufid: UInt16 = 9
    public static let ufidFlags: UInt16 = 10
    // esw
    /// u8: 0 software, 1 in hardware, 2 pending (the firmware has not written it yet),
    /// 3 failed (the hardware refused it after the add had succeeded), 4 partial (the
    /// hardware matches and marks, software runs the actions).
    public static let offloaded: UInt16 = 100
    public static let offloadReason: UInt16 = 101
    /// A transaction: every NEW of one batch carries the same id; the last one also `batchEnd`.
    public static let batch: UInt16 = 102
    public static let batchEnd: UInt16 = 103
    public static let dumpType: UInt16 = 104
    public static let origin: UInt16 = 105
    /// CLOCK_MONOTONIC milliseconds "now" in the daemon, for `used:` ages.
    public static let now: UInt16 = 106
    public static let mayCreate: UInt16 = 107
    /// With `batch` on a GET that names no flow: the client gives the batch up, every
    /// change it made is undone (any policy). Without it such a GET commits the batch.
    public static let batchAbort: UInt16 = 108
}

public enum PacketCmd {
    public static let miss: UInt8 = 1, action: UInt8 = 2, execute: UInt8 = 3
    /// esw: subscribe this connection to upcalls.
    public static let subscribe: UInt8 = 10
    /// esw: what the hardware and the datapath would do with a packet (changes nothing).
    public static let trace: UInt8 = 11
}

public enum PacketAttr {
    public static let packet: UInt16 = 1
    public static let key: UInt16 = 2
    public static let actions: UInt16 = 3
    public static let userdata: UInt16 = 4
    // esw (trace)
    /// The port a traced packet enters on: a datapath port's name or number, or a representor.
    public static let inPortName: UInt16 = 100
    /// The mask of a flow-description packet: which fields it gave (the rest take defaults).
    public static let mask: UInt16 = 101
    /// The trace: one `TraceAttr` value (a record).
    public static let trace: UInt16 = 102
}

/// A trace is a tree of values; each is one of these attributes.
public enum TraceAttr {
    public static let text: UInt16 = 1
    public static let number: UInt16 = 2
    public static let flag: UInt16 = 3
    /// Nested `field`s in order.
    public static let record: UInt16 = 4
    /// Nested: `name` and one value.
    public static let field: UInt16 = 5
    public static let name: UInt16 = 6
    /// Nested values in order.
    public static let list: UInt16 = 7
}

public enum DevlinkCmd {
    public static let devGet: UInt8 = 1
    public static let eswitchGet: UInt8 = 2
    public static let eswitchSet: UInt8 = 3
    public static let reload: UInt8 = 4
    public static let paramGet: UInt8 = 5
    public static let paramSet: UInt8 = 6
    public static let portGet: UInt8 = 7
    public static let portFunctionSet: UInt8 = 8
    public static let resourceDump: UInt8 = 9
    public static let resourceSet: UInt8 = 10
    public static let offloadStats: UInt8 = 11
    /// Offloads a program to a port (portProgramObject, portProgramSection), or detaches
    /// it (no object).
    public static let portProgramSet: UInt8 = 12
}

public enum DevlinkAttr {
    public static let devName: UInt16 = 1
    public static let driver: UInt16 = 2
    public static let mode: UInt16 = 3
    public static let switchID: UInt16 = 4
    public static let portIndex: UInt16 = 10
    public static let portNetdev: UInt16 = 11
    public static let portFlavour: UInt16 = 12
    public static let portPFNumber: UInt16 = 13
    public static let portVFNumber: UInt16 = 14
    public static let portRepresentor: UInt16 = 15
    public static let portPhysName: UInt16 = 16
    public static let portHWAddr: UInt16 = 17
    public static let portVLAN: UInt16 = 18
    public static let portQoS: UInt16 = 19
    public static let portLinkUp: UInt16 = 20
    public static let portMTU: UInt16 = 21
    /// 8 × u64: rx packets, rx bytes, tx packets, tx bytes, rx dropped, tx dropped, to representor, from representor.
    public static let portStats: UInt16 = 22
    public static let resource: UInt16 = 30
    public static let resourceName: UInt16 = 31
    public static let resourcePath: UInt16 = 32
    public static let resourceSize: UInt16 = 33
    public static let resourceSizeNew: UInt16 = 34
    public static let resourceOccupancy: UInt16 = 35
    public static let resourceUnit: UInt16 = 36
    public static let resourceSizeMin: UInt16 = 37
    public static let resourceSizeMax: UInt16 = 38
    public static let resourceSizeGranularity: UInt16 = 39
    /// Of the occupancy: units held by rules in the data plane (the rest is reserved:
    /// rules waiting for the firmware, and the driver's stock of credits).
    public static let resourceOccupancyProgrammed: UInt16 = 42
    /// u8, with resourceSizeNew: whether the children's sizes fit the new size (devlink's
    /// DEVLINK_ATTR_RESOURCE_SIZE_VALID; always 1 for a leaf).
    public static let resourceSizeValid: UInt16 = 43
    public static let paramName: UInt16 = 40
    public static let paramValue: UInt16 = 41
    public static let offloadOperations: UInt16 = 50
    public static let offloadHardwareAccesses: UInt16 = 51
    public static let offloadWaitedNanoseconds: UInt16 = 52
    public static let offloadFirmwareAccesses: UInt16 = 53
    public static let offloadProgrammed: UInt16 = 54
    public static let offloadLateFailures: UInt16 = 55
    public static let offloadWrongPredictions: UInt16 = 56
    public static let offloadPendingWrites: UInt16 = 57
    /// CLOCK_MONOTONIC ns when the firmware last ran out of work.
    public static let offloadCoherentAt: UInt16 = 58
    public static let offloadRefills: UInt16 = 59
    /// The last burst of operations (a batch): count, the caller's latency and the
    /// coherent one, in ns (the coherent one absent while rules still wait).
    public static let offloadBurstOperations: UInt16 = 60
    public static let offloadBurstCallerNanoseconds: UInt16 = 61
    public static let offloadBurstCoherentNanoseconds: UInt16 = 62
    /// The CT table (connection-tracking offload): connections held, refusals by reason
    /// (table or counters full, not trackable, write failed), and what the pipeline's CT
    /// stage did with frames (hits, misses, hand-backs, chain misses, recirculations too deep).
    public static let ctConnections: UInt16 = 80
    public static let ctRefusedFull: UInt16 = 81
    public static let ctRefusedUnsupported: UInt16 = 82
    public static let ctWriteFailed: UInt16 = 83
    public static let ctHits: UInt16 = 84
    public static let ctMisses: UInt16 = 85
    public static let ctHandBacks: UInt16 = 86
    public static let ctChainMisses: UInt16 = 87
    public static let ctTooDeep: UInt16 = 88
    public static let ctRefusedNoRule: UInt16 = 89
    /// A port's offloaded program: object file path, section, function name, kernel id.
    public static let portProgramObject: UInt16 = 70
    public static let portProgramSection: UInt16 = 71
    public static let portProgramName: UInt16 = 72
    public static let portProgramID: UInt16 = 73
    /// 6 × u64: runs, pass, drop, tx, redirect, invalid.
    public static let portProgramStats: UInt16 = 74
}

public enum TunnelCmd {
    public static let encapDump: UInt8 = 1
    public static let statsGet: UInt8 = 2
}

public enum TunnelAttr {
    public static let entry: UInt16 = 1
    public static let endpoint: UInt16 = 2
    public static let vni: UInt16 = 3
    public static let udpPort: UInt16 = 4
    public static let egress: UInt16 = 5
    public static let neighbourMAC: UInt16 = 6
    public static let neighbourState: UInt16 = 7
    public static let flows: UInt16 = 8
    public static let valid: UInt16 = 9
    public static let source: UInt16 = 10
    public static let reason: UInt16 = 11
    public static let entryID: UInt16 = 12
    public static let neighbour: UInt16 = 13
    /// u64 array: events, malformed, resyncs, encap rewrites, re-evaluations, keepalives,
    /// solicitations, last rewrite entries, last rewrite nanoseconds.
    public static let statistics: UInt16 = 14
}

/// The connection tracker's management (ovs-dpctl's dump-conntrack, flush-conntrack and
/// ct-* commands). Entries and reports come back as the text OVS prints: the tracker
/// formats them where it keeps them.
public enum ConntrackCmd {
    /// One reply per connection (a dump), each one `line`.
    public static let dump: UInt8 = 1
    /// Removes connections (all, a zone's, or one tuple's); replies with `count`.
    public static let flush: UInt8 = 2
    /// ct-stats-show: replies with `text`.
    public static let statsGet: UInt8 = 3
    public static let maxConnectionsSet: UInt8 = 4
    /// Replies with `count`.
    public static let maxConnectionsGet: UInt8 = 5
    /// Nested `limit`s: per zone (or the default when it names no zone).
    public static let limitsSet: UInt8 = 6
    /// Replies with `text`; `zone` attributes restrict it to those zones.
    public static let limitsGet: UInt8 = 7
    /// Removes the limits of the `zone`s given.
    public static let limitsDel: UInt8 = 8
}

public enum ConntrackAttr {
    /// u16; may repeat where a command takes several zones.
    public static let zone: UInt16 = 1
    public static let verbose: UInt16 = 2
    public static let statistics: UInt16 = 3
    /// An original-direction tuple as flush-conntrack takes it (ct_nw_src=…,ct_tp_dst=…).
    public static let tuple: UInt16 = 4
    /// A formatted entry (dump) or report.
    public static let line: UInt16 = 5
    public static let text: UInt16 = 6
    /// u32: connections flushed, or the maximum number of connections.
    public static let count: UInt16 = 7
    /// Nested: `zone` (absent: the default limit) and `limitValue`.
    public static let limit: UInt16 = 8
    /// u32
    public static let limitValue: UInt16 = 9
    /// A reply-direction tuple (flush-conntrack's second tuple), same syntax as `tuple`.
    public static let replyTuple: UInt16 = 10
}

/// The default control socket of an eSwitch.
public func defaultControlPath(_ name: String) -> String { "/run/esw/\(name).sock" }
