/* esw_shared.h — the one contract between the eSwitch's eBPF data plane (the bpf directory) and
 * the Swift driver (Sources/BPFDataPlane): map value and key layouts, limits, flags.
 * Every struct has a fixed size, checked here with _Static_assert and in Swift by a
 * test of sizes and offsets (Tests/BPFDataPlaneTests/LayoutTests.swift). */
#ifndef ESW_SHARED_H
#define ESW_SHARED_H

#ifndef __u64
#include <linux/types.h>
#endif

#define ESW_KEY_WORDS     18   /* the hardware's flow key: 18 of the datapath key's 28 words */
#define ESW_MAX_MASKS     64   /* masks (tuple-space subtables) per table */
#define ESW_MAX_ACTIONS   16   /* actions per rule */
#define ESW_MAX_PORTS     64   /* eSwitch ports: uplink (0) and VFs */
#define ESW_RULE_TABLES   2    /* esw_rule_tables: the exact-match table, then the masked one */
#define ESW_TABLE_EXACT   0
#define ESW_TABLE_MASKED  1
#define ESW_ENCAP_MAX     72   /* outer header bytes (Ethernet + IPv6 + UDP + VXLAN = 70) */
#define ESW_PORT_STATS    8    /* counters per port, see ESW_STAT_* */

/* The key: words of the datapath's FlowKey (Sources/Packet/FlowKey.swift), same bit
 * positions, host-order values. Word i here is FlowKey word esw_key_word[i]:
 *   0 tun_id | 1 tun_src, tun_dst<<32 | 2-5 tun_ipv6 src, dst (high word first)
 *   6 tun_tos, ttl<<8, flags<<16, tp_src<<32, tp_dst<<48 | 7 in_port
 *   8 eth_src, vlan_tci<<48 | 9 eth_dst, eth_type<<48
 *   10 cvlan_tci, vlan_tpid<<16, cvlan_tpid<<32, ip_proto<<48, ip_frag<<56
 *   11 ip_tos, ttl<<8, tp_src<<16, tp_dst<<32, tcp_flags<<48 | 12 ipv4_src, ipv4_dst<<32
 *   13-14 ipv6_src | 15-16 ipv6_dst | 17 ipv6_label */
struct esw_key {
    __u64 w[ESW_KEY_WORDS];
};

/* Key of both flow tables: the mask's id and the key masked by it. */
struct esw_table_key {
    __u32 mask_id;
    __u32 pad;
    struct esw_key key;
};

/* Masks in use by each table, in lookup order (the driver ranks them by hits). Both
 * lists in one value: one lookup per packet. */
struct esw_mask_lists {
    __u32 exact_count;
    __u32 masked_count;
    __u32 exact[ESW_MAX_MASKS];
    __u32 masked[ESW_MAX_MASKS];
};

/* A VXLAN frame the hardware parsed but no rule took goes up p0 to the vxlan vport's
 * UDP socket, which sees neither the outer DF bit nor the UDP checksum. The pipeline
 * notes the tunnel flags it parsed (df, csum: the key's tun_flags bits) in the VXLAN
 * header's last byte, reserved (RFC 7348: ignored on receipt), with this bit set, so
 * the software path's tunnel key is the hardware's (VXLANPort.swift). */
#define ESW_VXLAN_NOTE          0x80u
#define ESW_VXLAN_NOTE_FLAGS    0x06u   /* df (2) and csum (4), as in tun_flags */

#define ESW_RULE_ENCAP  1u   /* actions encapsulate: check the uplink MTU first */
#define ESW_RULE_RECIRC 2u   /* the last action is recirc, or the first ct: ct.h runs the rule */

struct esw_rule {
    __u32 action_set;
    __u32 counter;
    __u32 flags;
    __u32 encap_overhead;   /* outer bytes the encap adds (50 for IPv4) */
};

struct esw_rule_counter {
    __u64 packets;
    __u64 bytes;
    __u64 last_used_ns;     /* bpf_ktime_get_coarse_ns(): CLOCK_MONOTONIC_COARSE */
};

enum esw_action_kind {
    ESW_ACT_NONE = 0,
    ESW_ACT_FORWARD,        /* arg: port */
    ESW_ACT_DROP,
    ESW_ACT_PUSH_VLAN,      /* u.vlan */
    ESW_ACT_POP_VLAN,
    ESW_ACT_SET_ETH,        /* u.eth */
    ESW_ACT_SET_IPV4,       /* u.ipv4 */
    ESW_ACT_SET_IPV6_SRC,   /* u.addr6 */
    ESW_ACT_SET_IPV6_DST,   /* u.addr6 */
    ESW_ACT_SET_IPV6_MISC,  /* u.ipv6 */
    ESW_ACT_SET_L4,         /* arg: ip proto, u.l4 */
    ESW_ACT_ENCAP,          /* arg: encap id */
    ESW_ACT_DECAP,
    ESW_ACT_HINT,           /* arg: flow mark; the rule's only action (partial offload) */
    ESW_ACT_CT,             /* arg: zone | ESW_CT_ACT_NAT; the rule's first action (ct.h) */
    ESW_ACT_RECIRC,         /* arg: recirculation id; the rule's last action */
};
#define ESW_CT_ACT_NAT  0x10000u   /* ct(nat): apply the connection's rewrite */

/* Values are in network byte order, as they are written into the packet. */
struct esw_action {
    __u8 kind;
    __u8 pad[3];
    __u32 arg;
    union {
        struct { __u16 tpid; __u16 tci; } vlan;
        struct { __u8 src[6], src_mask[6], dst[6], dst_mask[6]; } eth;
        struct { __u32 src, src_mask, dst, dst_mask; __u8 tos, tos_mask, ttl, ttl_mask; } ipv4;
        struct { __u8 addr[16], mask[16]; } addr6;
        struct { __u32 label, label_mask; __u8 tclass, tclass_mask, hlimit, hlimit_mask; } ipv6;
        struct { __u16 src, src_mask, dst, dst_mask; } l4;
        __u8 raw[32];
    } u;
};

struct esw_action_set {
    __u32 count;
    __u32 pad;
    struct esw_action a[ESW_MAX_ACTIONS];
};

struct esw_encap {
    __u8 header[ESW_ENCAP_MAX];
    __u16 length;
    __u8 ipv6;
    __u8 pad[5];
};

#define ESW_PORT_VALID    1u
#define ESW_PORT_LINK_UP  2u
#define ESW_PORT_UPLINK   4u
#define ESW_PORT_PEER_NS  8u   /* the VF end is in another namespace: bpf_redirect_peer works */
#define ESW_PORT_MIRROR_TX 16u  /* someone captures on the representor: what is sent on it also
                                 * goes through the TAP's transmit, where packet sockets see it */

struct esw_port {
    __u32 ifindex;          /* the port's netdev here: VF switch-side veth end, or uplink */
    __u32 rep_ifindex;      /* the representor (0: none, legacy mode) */
    __u32 flags;
    __u32 mtu;              /* the VF's (or wire's) MTU */
    __u16 vlan;             /* legacy VST VLAN (0: none) */
    __u8 qos;
    __u8 pad[5];
};

#define ESW_MODE_SWITCHDEV 0
#define ESW_MODE_LEGACY    1

struct esw_config {
    __u32 mode;
    __u32 nports;
    __u16 vxlan_ports[4];   /* UDP ports the parser treats as VXLAN (0: unused) */
    __u32 counter_slots;    /* esw_rule_counters holds this many counters per CPU */
    __u8 vtep_mac[6];       /* MAC of the netdev holding the VTEP (p0): decap takes only
                             * VXLAN frames addressed to it (all zero: none) */
    __u16 pad;
};

/* Per-port counters: one value per port, ESW_STAT_* its fields. */
struct esw_port_counters {
    __u64 v[ESW_PORT_STATS];
};
#define ESW_STAT_RX_PACKETS  0
#define ESW_STAT_RX_BYTES    1
#define ESW_STAT_TX_PACKETS  2
#define ESW_STAT_TX_BYTES    3
#define ESW_STAT_RX_DROPPED  4
#define ESW_STAT_TX_DROPPED  5
#define ESW_STAT_TO_REP      6
#define ESW_STAT_FROM_REP    7

/* Offloaded user programs (bpf/examples/esw_prog.h is their side of the contract). The pipeline
 * tail-calls a port's program (esw_user_progs[port]) before its tables; the program
 * hands its verdict back in skb->cb[2..3] and tail-calls esw_pipeline[0] (esw_port_rx
 * again), which acts on it. cb[0..1] mark the frame as coming back from the program. */
#define ESW_PROG_PASS      0   /* on to the flow tables */
#define ESW_PROG_DROP      1
#define ESW_PROG_TX        2   /* back out of the port it came in */
#define ESW_PROG_REDIRECT  3   /* out of the port in cb[3] */
#define ESW_PROG_VERDICTS  4
#define ESW_PROG_CB_MAGIC  0xe5e5b0f1u

/* Per port, per CPU: how often the port's program ran, and each verdict (index
 * ESW_PROG_*); runs that came back with no verdict returned their own tc verdict. Then
 * the NIC engine's view of the port's frames (prog_stage.h). */
struct esw_prog_counters {
    __u64 runs;
    __u64 verdicts[ESW_PROG_VERDICTS];
    __u64 invalid;          /* a verdict the pipeline does not know, or a bad port: dropped */
    __u64 overflow;         /* dropped before the program: the engine's queue was full */
    __u64 held;             /* frames the delay line held until the engine was done with them */
    __u64 held_ns;          /* the waits they were held for, summed */
};

/* The NIC's engine: one processor shared by every port's program, at nic_speed percent
 * of a host CPU's speed, with an input queue of queue_ns (in engine time). A frame that
 * finds more than queue_ns of work ahead of it is dropped; the others leave the engine
 * when it has done the work ahead of them and theirs, held until then by eswd's delay
 * line (a TAP: hold_ifindex; 0 when there is none, and then nothing is held). */
struct esw_prog_config {
    __u32 nic_speed;        /* 1..100 */
    __u32 queue_ns;
    __u64 attached;         /* bit per port with a program */
    __u32 hold_ifindex;
    __u32 pad;
};

/* The engine's virtual clock: when it will have finished the work accepted so far. */
struct esw_engine {
    __u64 busy_until;       /* bpf_ktime_get_ns() time */
};

/* What a held frame carries through the delay line and back: when it may leave, and where
 * the pipeline resumes (the port it came in on, the program's verdict). An IPv4/IPv6 frame
 * carries it right after its Ethernet header (ESW_HOLD_MAGIC_HEAD: GSO superframes stay
 * whole), any other at its end (ESW_HOLD_MAGIC; bpf/prog_stage.h). */
struct esw_hold_trailer {
    __u64 at;
    __u32 magic;
    __u16 port;
    __u8 verdict;
    __u8 arg;
};
#define ESW_HOLD_MAGIC        0xe5e5d1a7u
#define ESW_HOLD_MAGIC_HEAD   0xe5e5d1a8u
#define ESW_HOLD_MIN_NS       20000     /* shorter waits are not held: the delay line's own time */
#define ESW_ENGINE_MAX_RUN_NS 100000    /* a longer measured run is counted as this (the host was interrupted) */

/* Connection tracking (ct.h). Rules matching recirc_id != 0 live in the chain table,
 * looked up only by frames a recirc action sent back: its key is the mask id, the
 * recirculation id (always exact), the ct fields the ct action set (FlowKey word 10:
 * ct_state | ct_zone << 16 | ct_mark << 32; words 11-12: ct_label, high first) and the
 * 18 words of esw_key, all masked. The first lookup of every frame does not see it. */
#define ESW_MAX_RECIRC  4   /* lookups a frame may take after the first */

struct esw_chain_key {
    __u32 mask_id;
    __u32 recirc_id;
    __u64 ct[3];
    struct esw_key key;
};

/* A chain mask: the ct words' and the key words' masks. */
struct esw_chain_mask {
    __u64 ct[3];
    __u64 pad;
    struct esw_key key;
};

struct esw_chain_list {
    __u32 count;
    __u32 pad;
    __u32 ids[ESW_MAX_MASKS];
};

/* The CT table: one entry per connection and direction, keyed by the zone and the
 * 5-tuple its packets carry at the ct action (addresses as the flow key holds them:
 * IPv4 in addr[1]'s low half, IPv6 high word first; ports host order). */
struct esw_ct_key {
    __u16 zone;
    __u8 proto;
    __u8 ipv6;
    __u16 sport;
    __u16 dport;
    __u64 src[2];
    __u64 dst[2];
};

#define ESW_CT_NAT_SRC       1u   /* rewrite the IPv4 source to nat_src */
#define ESW_CT_NAT_SRC_PORT  2u
#define ESW_CT_NAT_DST       4u
#define ESW_CT_NAT_DST_PORT  8u
#define ESW_CS_NAT        0xc0u   /* OVS_CS_F_SRC_NAT | OVS_CS_F_DST_NAT: only a ct(nat) sets them */
#define ESW_CT_HANDED_BACK   1u   /* flags: a FIN or RST hit the entry; software tears it down */

struct esw_ct_entry {
    __u32 counter;          /* in esw_rule_counters: one per direction */
    __u32 flags;            /* ESW_CT_HANDED_BACK, set by the pipeline */
    __u8 state;             /* ct_state (OVS_CS_F_*) the packet gets (less ESW_CS_NAT without nat) */
    __u8 nat;               /* ESW_CT_NAT_* */
    __u16 nat_sport;        /* host order */
    __u16 nat_dport;
    __u16 pad;
    __u32 mark;
    __u32 nat_src;          /* IPv4, host order */
    __u32 nat_dst;
    __u32 pad2;
    __u64 label[2];         /* high word first */
};

/* What the CT stage did, per CPU (index ESW_CT_STAT_*). */
#define ESW_CT_STAT_HIT        0
#define ESW_CT_STAT_MISS       1   /* no entry: up the representor unmodified */
#define ESW_CT_STAT_HANDBACK   2   /* FIN/RST: entry marked, frame up the representor */
#define ESW_CT_STAT_CHAIN_MISS 3   /* no rule in the chain: up the representor unmodified */
#define ESW_CT_STAT_TOO_DEEP   4   /* more than ESW_MAX_RECIRC recirculations */
#define ESW_CT_STAT_HANDBACK_LOST 5 /* esw_ct_handbacks was full: the driver scans the CT table */
#define ESW_CT_STATS           6

/* port_by_ifindex: indexed by ifindex up to this; values are the port + 1 (0: none),
 * with this bit for its representor. */
#define ESW_MAX_IFINDEX 65536
#define ESW_IFINDEX_REPRESENTOR 0x80000000u
#define ESW_IFINDEX_ENGINE      0x40000000u   /* the delay line's TAP (the whole value) */

_Static_assert(sizeof(struct esw_key) == 144, "esw_key");
_Static_assert(sizeof(struct esw_table_key) == 152, "esw_table_key");
_Static_assert(sizeof(struct esw_mask_lists) == 520, "esw_mask_lists");
_Static_assert(sizeof(struct esw_port_counters) == 64, "esw_port_counters");
_Static_assert(sizeof(struct esw_rule) == 16, "esw_rule");
_Static_assert(sizeof(struct esw_rule_counter) == 24, "esw_rule_counter");
_Static_assert(sizeof(struct esw_action) == 40, "esw_action");
_Static_assert(sizeof(struct esw_action_set) == 8 + 40 * ESW_MAX_ACTIONS, "esw_action_set");
_Static_assert(sizeof(struct esw_encap) == 80, "esw_encap");
_Static_assert(sizeof(struct esw_port) == 24, "esw_port");
_Static_assert(sizeof(struct esw_config) == 28, "esw_config");
_Static_assert(__builtin_offsetof(struct esw_config, vtep_mac) == 20, "esw_config.vtep_mac");
_Static_assert(sizeof(struct esw_prog_counters) == 72, "esw_prog_counters");
_Static_assert(sizeof(struct esw_prog_config) == 24, "esw_prog_config");
_Static_assert(sizeof(struct esw_engine) == 8, "esw_engine");
_Static_assert(sizeof(struct esw_hold_trailer) == 16, "esw_hold_trailer");
_Static_assert(sizeof(struct esw_chain_key) == 176, "esw_chain_key");
_Static_assert(sizeof(struct esw_chain_mask) == 176, "esw_chain_mask");
_Static_assert(sizeof(struct esw_chain_list) == 264, "esw_chain_list");
_Static_assert(sizeof(struct esw_ct_key) == 40, "esw_ct_key");
_Static_assert(sizeof(struct esw_ct_entry) == 48, "esw_ct_entry");
_Static_assert(__builtin_offsetof(struct esw_ct_entry, mark) == 16, "esw_ct_entry.mark");
_Static_assert(__builtin_offsetof(struct esw_ct_entry, label) == 32, "esw_ct_entry.label");

#endif
