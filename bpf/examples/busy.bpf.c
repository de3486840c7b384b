/* Work without a decision: n rounds on every frame (LOOP_N, default 1000), then pass.
 * It keeps the NIC's engine busy while the tables forward as before (the NIC engine's
 * test loads it on the uplink under a flood and watches a neighbour's ping). */
#include "esw_prog.h"

#ifndef LOOP_N
#define LOOP_N 1000
#endif

SEC("busy")
int esw_busy_pass(struct __sk_buff *skb)
{
    __u32 word = 0;
    bpf_skb_load_bytes(skb, 0, &word, 4);
    volatile __u32 sum = 0;
    for (int i = 1; i < LOOP_N; i++)
        sum = (sum << 1 | sum >> 31) ^ (word + i);
    skb->cb[4] = sum;
    return esw_pass(skb);
}

char LICENSE[] SEC("license") = "GPL";
