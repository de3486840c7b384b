/* classify_min.bpf.c — the least a tc switch with esw's hardware table does per frame,
 * for scripts/bench.sh: the frame's EtherType read from its Ethernet header, one look-up
 * of a key as wide as the emulated hardware's (struct esw_table_key, 152 bytes, which the
 * kernel hashes and compares whole) made of it and the arrival port, in a hash map of
 * esw's rule values, then bpf_redirect_peer. No mask list, no counters, no action set.
 * The one key its traffic needs is added by the program on the first frame (a miss), so
 * what is measured is look-ups. Built with -DTARGET_IFINDEX=N for each direction. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "../esw_shared.h"

char LICENSE[] SEC("license") = "GPL";

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct esw_table_key);
    __type(value, struct esw_rule);
} classify_table SEC(".maps");

/* The key is built in per-CPU scratch space, as esw's pipeline builds its own (152 bytes
 * are too many for the program's stack next to the rest). */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct esw_table_key);
} classify_scratch SEC(".maps");

SEC("tc")
int classify_min(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    __u32 zero = 0;
    if ((void *)(eth + 1) > end)
        return TC_ACT_SHOT;
    struct esw_table_key *k = bpf_map_lookup_elem(&classify_scratch, &zero);
    if (!k)
        return TC_ACT_SHOT;
    k->mask_id = 1;
    k->key.w[7] = skb->ifindex;
    k->key.w[8] = eth->h_proto;
    if (!bpf_map_lookup_elem(&classify_table, k)) {
        struct esw_rule rule = { .action_set = 1 };
        bpf_map_update_elem(&classify_table, k, &rule, BPF_NOEXIST);
    }
    return bpf_redirect_peer(TARGET_IFINDEX, 0);
}
