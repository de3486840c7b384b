/* The function offloaded to the NIC: a tc program for the esw programmable stage. */
#include "../../examples/esw_prog.h"

#define LOAD(off, p, n) bpf_skb_load_bytes(ctx, off, p, n)
#define STORE(off, p, n) bpf_skb_store_bytes(ctx, off, p, n, 0)
#include "function.h"

SEC("nic")
int placement_nic(struct __sk_buff *skb)
{
    void *ctx = skb;
    switch (function(ctx)) {
    case FN_DROP: return esw_drop(skb);
    case FN_TX: return esw_tx(skb);
    default: return esw_pass(skb);
    }
}

char LICENSE[] SEC("license") = "GPL";
