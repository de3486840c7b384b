/* prog_stage.h — the NIC's programmable stage: a user program per port (loaded by eswd,
 * `esw-devlink port prog`) runs before the flow tables, as an offloaded XDP program runs
 * before a SmartNIC's match-action tables.
 *
 * A tail call does not return, so the stage is a round trip of two tail calls: the
 * pipeline tags the frame (cb[0] magic, cb[1] a per-CPU sequence number), tail-calls
 * the port's program, and the program tail-calls esw_port_rx again with its verdict in
 * cb[2..3] (bpf/examples/esw_prog.h). esw_port_rx sees the tag and resumes after the stage. A
 * frame's cb may hold anything on arrival: the sequence number, which changes with every
 * frame on the CPU (tail calls stay on one CPU), makes a stale tag harmless. */
#ifndef ESW_PROG_STAGE_H
#define ESW_PROG_STAGE_H

static __always_inline void prog_count(__u32 port, int verdict)
{
    struct esw_prog_counters *c = bpf_map_lookup_elem(&esw_prog_stats, &port);
    if (!c)
        return;
    if (verdict < 0)
        c->runs += 1;
    else if (verdict < ESW_PROG_VERDICTS)
        c->verdicts[verdict & 3] += 1;
    else
        c->invalid += 1;
}

/* Whether this frame comes back from the port's user program. */
static __always_inline int prog_returned(struct __sk_buff *skb, struct esw_scratch *s)
{
    if (skb->cb[0] != ESW_PROG_CB_MAGIC || skb->cb[1] != s->prog_seq)
        return 0;
    skb->cb[0] = 0;
    s->prog_seq += 1;
    return 1;
}

/* Runs the port's program if it has one. Returns only when it has none (or it vanished
 * since the check): the frame goes on through the pipeline. */
static __always_inline void prog_enter(struct __sk_buff *skb, __u32 port, struct esw_scratch *s,
                                       const struct esw_prog_config *pc)
{
    if (port >= ESW_MAX_PORTS || !(pc->attached & (1ull << port)))
        return;
    s->prog_seq += 1;
    skb->cb[0] = ESW_PROG_CB_MAGIC;
    skb->cb[1] = s->prog_seq;
    skb->cb[2] = ESW_PROG_PASS;
    skb->cb[3] = 0;
    prog_count(port, -1);
    if (pc->nic_speed && pc->nic_speed < 100)
        s->prog_start_ns = bpf_ktime_get_ns();
    bpf_tail_call(skb, &esw_user_progs, port);
    skb->cb[0] = 0;
}

struct spin_ctx {
    __u64 until;
};

static long spin_step(__u64 i, struct spin_ctx *c)
{
    return bpf_ktime_get_ns() >= c->until;
}

/* A slow NIC processor: the program's run took `elapsed` at host speed; at nic_speed
 * percent it takes elapsed * 100 / nic_speed, the difference spent spinning (bounded:
 * 1<<20 clock reads, a few tens of milliseconds). */
static __always_inline void nic_slowdown(struct esw_scratch *s, const struct esw_prog_config *pc)
{
    __u32 speed = pc->nic_speed;
    if (!speed || speed >= 100)
        return;
    __u64 now = bpf_ktime_get_ns();
    __u64 elapsed = now - s->prog_start_ns;
    if (elapsed > 10000000)
        return;
    struct spin_ctx c = { .until = now + elapsed * (100 - speed) / speed };
    bpf_loop(1 << 20, spin_step, &c, 0);
}

/* Acts on the verdict the program handed back. Returns -1 for pass (on to the tables),
 * else the tc verdict. */
static __always_inline int prog_verdict(struct __sk_buff *skb, __u32 port, struct esw_scratch *s,
                                        const struct esw_prog_config *pc)
{
    __u32 verdict = skb->cb[2], arg = skb->cb[3];
    nic_slowdown(s, pc);
    if (verdict >= ESW_PROG_VERDICTS || (verdict == ESW_PROG_REDIRECT && arg >= ESW_MAX_PORTS)) {
        prog_count(port, ESW_PROG_VERDICTS);
        port_count(port, ESW_STAT_RX_DROPPED, 1);
        return TC_ACT_SHOT;
    }
    prog_count(port, verdict);
    switch (verdict) {
    case ESW_PROG_PASS:
        return -1;
    case ESW_PROG_TX:
        return output(skb, port, 1, 1);
    case ESW_PROG_REDIRECT:
        return output(skb, arg, 1, 1);
    default:
        return TC_ACT_SHOT;
    }
}

#endif
