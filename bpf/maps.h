/* maps.h — the hardware tables of the emulated eSwitch, as BPF maps. The Swift driver
 * (Sources/BPFDataPlane) sizes and fills them; the programs only read them, except the
 * counters. Hash maps are not preallocated so that a replaced element is freed after an
 * RCU grace period: a packet never sees half a rule. */
#ifndef ESW_MAPS_H
#define ESW_MAPS_H

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct esw_config);
} esw_config SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, ESW_MAX_PORTS);
    __type(key, __u32);
    __type(value, struct esw_port);
} esw_ports SEC(".maps");

/* Indexed by ifindex (an array lookup is inlined: no hashing on every frame). */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, ESW_MAX_IFINDEX);
    __type(key, __u32);          /* ifindex */
    __type(value, __u32);        /* port + 1 (0: not ours), | ESW_IFINDEX_REPRESENTOR for a representor */
} esw_port_by_ifindex SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, ESW_MAX_PORTS);
    __type(key, __u32);
    __type(value, struct esw_port_counters);
} esw_port_stats SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, ESW_MAX_MASKS);
    __type(key, __u32);
    __type(value, struct esw_key);
} esw_masks SEC(".maps");

/* Rewritten in place: a lookup racing a rewrite may skip a mask (the frame then takes the
 * software path) but never matches a rule under another rule's mask, since the probe
 * key carries the mask id. An array lookup is inlined by the verifier: no hashing. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);          /* 0 */
    __type(value, struct esw_mask_lists);
} esw_mask_lists SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, ESW_MAX_MASKS);
    __type(key, __u32);
    __type(value, __u64);
} esw_mask_hits SEC(".maps");

/* The exact-match (hash) table and the masked (TCAM-like) table. The driver creates
 * both maps itself, at the size the resources say, and puts them in esw_rule_tables: a
 * flush puts empty ones in their place in one write each, and the kernel frees the old
 * ones (and every rule in them) once no packet reads them.
 * Not preallocated although that halves the kernel's cost of a bulk write or delete: a
 * preallocated map hands a replaced or deleted element to the next write at once, so a
 * packet still reading it could see another rule's value; these keep it for an RCU
 * grace period (make-before-break, §3 of docs/ARCHITECTURE.md). */
struct esw_rule_table {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1);      /* the template only: the driver's maps have their own size */
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct esw_table_key);
    __type(value, struct esw_rule);
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
    __uint(max_entries, ESW_RULE_TABLES);
    __type(key, __u32);          /* ESW_TABLE_EXACT, ESW_TABLE_MASKED */
    __array(values, struct esw_rule_table);
} esw_rule_tables SEC(".maps");

/* Action sets are immutable once a rule points at them; the driver reuses an index only
 * after no rule refers to it and a grace period has passed. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 65536);
    __type(key, __u32);
    __type(value, struct esw_action_set);
} esw_action_sets SEC(".maps");

/* Rule counters: one block of esw_config.counter_slots counters per possible CPU (the
 * driver sizes it), each written only by its CPU, as a per-CPU array would be, but
 * mapped into the driver's memory (BPF_F_MMAPABLE): the periodic poll reads a million
 * counters as memory, as a NIC's bulk counter query lands in host memory, instead of
 * copying each out through the bpf() syscall. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(map_flags, BPF_F_MMAPABLE);
    __uint(max_entries, 65536);
    __type(key, __u32);
    __type(value, struct esw_rule_counter);
} esw_rule_counters SEC(".maps");

/* Counter `c` of the CPU running the program. */
static __always_inline struct esw_rule_counter *rule_counter(__u32 c)
{
    __u32 zero = 0;
    struct esw_config *cfg = bpf_map_lookup_elem(&esw_config, &zero);
    if (!cfg || c >= cfg->counter_slots)
        return 0;
    __u32 i = bpf_get_smp_processor_id() * cfg->counter_slots + c;
    return bpf_map_lookup_elem(&esw_rule_counters, &i);
}

/* Shared encap entries: replaced whole when the neighbour changes. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, __u32);
    __type(value, struct esw_encap);
} esw_encaps SEC(".maps");

/* Legacy mode: (VLAN << 48 | MAC) -> VF port. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, __u64);
    __type(value, __u32);
} esw_macs SEC(".maps");

/* The chain table (rules matching recirc_id != 0), its masks and their lookup order,
 * the CT table and its per-CPU statistics (ct.h). */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct esw_chain_key);
    __type(value, struct esw_rule);
} esw_chain SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, ESW_MAX_MASKS);
    __type(key, __u32);
    __type(value, struct esw_chain_mask);
} esw_chain_masks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct esw_chain_list);
} esw_chain_list SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct esw_ct_key);
    __type(value, struct esw_ct_entry);
} esw_ct SEC(".maps");

/* Hand-backs for the driver: the counter of each entry a FIN or RST marked, once. The
 * driver pops them at its poll (no scan of the CT table); a full queue is counted
 * (ESW_CT_STAT_HANDBACK_LOST) and makes the driver scan. */
struct {
    __uint(type, BPF_MAP_TYPE_QUEUE);
    __uint(max_entries, 4096);
    __type(value, __u32);
} esw_ct_handbacks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, ESW_CT_STATS);
    __type(key, __u32);
    __type(value, __u64);
} esw_ct_stats SEC(".maps");

/* What the ct and recirc steps of one frame gathered (ct.h): the ct fields of the
 * chain key, the NAT to apply once the last rule is known, the counters to count. */
struct esw_recirc_state {
    struct esw_rule rule;   /* the rule of this pass (a copy: the steps are global functions) */
    __u64 ct[3];
    __u32 rule_counters[ESW_MAX_RECIRC + 1];
    __u32 ct_counters[ESW_MAX_RECIRC + 1];
    __u32 nat_src, nat_dst;
    __u16 nat_sport, nat_dport;
    __u8 nat;
    __u8 rules, cts;
    __u8 pad;
};

/* Per-CPU scratch space: keys are too big for the 512-byte BPF stack twice over. */
struct esw_scratch {
    struct esw_key key;
    struct esw_table_key probe;
    struct esw_chain_key chain_probe;
    struct esw_recirc_state rc;
    struct esw_action nat_action;
    __u8 chunk[256];
    __u64 prog_start_ns;   /* when the port's user program was entered (the engine's cost) */
    __u32 prog_seq;        /* tags the frame handed to a user program (prog_stage.h) */
    __u32 pad;
    struct esw_hold_trailer held;   /* a frame's trailer, to or from the delay line */
    __u64 clock_ns;        /* the coarse clock as this CPU last read it, and the */
    __u64 clock_jiffies;   /* jiffies it was read at (coarse_now in esw.bpf.c) */
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct esw_scratch);
} esw_scratch SEC(".maps");

/* Offloaded user programs, by port (prog_stage.h). A prog array is emptied when the
 * last file descriptor to it closes: a killed eswd leaves no program behind, and the
 * reference cycle pipeline -> user program -> esw_pipeline -> pipeline is broken. */
struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, ESW_MAX_PORTS);
    __type(key, __u32);
    __type(value, __u32);
} esw_user_progs SEC(".maps");

/* Where a user program hands its frame back: [0] is esw_port_rx (bpf/examples/esw_prog.h). */
struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} esw_pipeline SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, ESW_MAX_PORTS);
    __type(key, __u32);
    __type(value, struct esw_prog_counters);
} esw_prog_stats SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct esw_prog_config);
} esw_prog_config SEC(".maps");

/* The NIC engine's clock, shared by all CPUs (prog_stage.h). */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct esw_engine);
} esw_engine SEC(".maps");

#endif
