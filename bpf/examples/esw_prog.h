/* esw_prog.h — for programs offloaded to an esw NIC (`esw-devlink port prog DEV/PORT obj
 * FILE sec NAME`). The NIC runs a tc (SCHED_CLS) program per port before its flow
 * tables. A program ends with one of the verdicts below, which hand the frame back to
 * the NIC's pipeline (a tail call into esw_pipeline, which eswd fills in when it loads
 * the program):
 *
 *     return esw_pass(skb);              on to the flow tables
 *     return esw_drop(skb);
 *     return esw_tx(skb);                back out of the port it came in
 *     return esw_redirect(skb, port);    out of another port (0 uplink, VF n is n + 1)
 *
 * The program may rewrite the frame first (bpf_skb_store_bytes and friends). A program
 * that returns a tc verdict of its own instead is not counted by verdict; TC_ACT_SHOT
 * still drops. cb[0..1] belong to the NIC. */
#ifndef ESW_PROG_H
#define ESW_PROG_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "../esw_shared.h"  /* the verdict numbers */

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} esw_pipeline SEC(".maps");

static __always_inline int esw_verdict(struct __sk_buff *skb, __u32 verdict, __u32 port)
{
    skb->cb[2] = verdict;
    skb->cb[3] = port;
    bpf_tail_call(skb, &esw_pipeline, 0);
    return TC_ACT_SHOT; /* not on an esw NIC */
}

#define esw_pass(skb) esw_verdict(skb, ESW_PROG_PASS, 0)
#define esw_drop(skb) esw_verdict(skb, ESW_PROG_DROP, 0)
#define esw_tx(skb) esw_verdict(skb, ESW_PROG_TX, 0)
#define esw_redirect(skb, port) esw_verdict(skb, ESW_PROG_REDIRECT, port)

#endif
