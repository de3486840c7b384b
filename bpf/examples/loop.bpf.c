/* The slides' processing-complexity program: n rounds of work, then drop. LOOP_N is set
 * at compile time (-DLOOP_N=100). Each round folds a word of the frame into a sum, so
 * the compiler cannot drop the loop. */
#include "esw_prog.h"

#ifndef LOOP_N
#define LOOP_N 100
#endif

SEC("loop")
int esw_loop_drop(struct __sk_buff *skb)
{
    __u32 word = 0;
    bpf_skb_load_bytes(skb, 0, &word, 4);
    volatile __u32 sum = 0;
    for (int i = 1; i < LOOP_N; i++)
        sum = (sum << 1 | sum >> 31) ^ (word + i);
    skb->cb[4] = sum;
    return esw_drop(skb);
}

char LICENSE[] SEC("license") = "GPL";
