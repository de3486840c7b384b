/* prog_stage.h — the NIC's programmable stage: a user program per port (loaded by eswd,
 * `esw-devlink port prog`) runs before the flow tables, as an offloaded XDP program runs
 * before a SmartNIC's match-action tables.
 *
 * A tail call does not return, so the stage is a round trip of two tail calls: the
 * pipeline tags the frame (cb[0] magic, cb[1] a per-CPU sequence number), tail-calls
 * the port's program, and the program tail-calls esw_port_rx again with its verdict in
 * cb[2..3] (bpf/examples/esw_prog.h). esw_port_rx sees the tag and resumes after the stage. A
 * frame's cb may hold anything on arrival: the sequence number, which changes with every
 * frame on the CPU (tail calls stay on one CPU), makes a stale tag harmless.
 *
 * The programs run on one NIC engine shared by all ports (struct esw_prog_config): a
 * virtual clock, esw_engine.busy_until, says when the engine will have done the work it
 * has accepted. A frame that arrives with more than queue_ns of work ahead of it is
 * dropped before its program runs (the input queue is full); otherwise the program runs
 * (on the host CPU, at host speed) and its measured run time, scaled by 100/nic_speed,
 * is the frame's share of the engine: it leaves at max(arrival, busy_until) + cost. When
 * that is later than now, the frame goes to eswd's delay line (a TAP: user space holds
 * it until then and writes it back) with a trailer saying where to resume; the pipeline
 * picks it up at the TAP's ingress and goes on with the tables. Nothing spins. */
#ifndef ESW_PROG_STAGE_H
#define ESW_PROG_STAGE_H

#define ESW_PROG_OVERFLOW (ESW_PROG_VERDICTS + 1)

static __always_inline void prog_count(__u32 port, int verdict)
{
    struct esw_prog_counters *c = bpf_map_lookup_elem(&esw_prog_stats, &port);
    if (!c)
        return;
    if (verdict < 0)
        c->runs += 1;
    else if (verdict < ESW_PROG_VERDICTS)
        c->verdicts[verdict & 3] += 1;
    else if (verdict == ESW_PROG_OVERFLOW)
        c->overflow += 1;
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

/* Runs the port's program if it has one. Returns -1 when it has none (or it vanished
 * since the check): the frame goes on through the pipeline; TC_ACT_SHOT when the
 * engine's queue is full. */
static __always_inline int prog_enter(struct __sk_buff *skb, __u32 port, struct esw_scratch *s,
                                      const struct esw_prog_config *pc)
{
    if (port >= ESW_MAX_PORTS || !(pc->attached & (1ull << port)))
        return -1;
    __u32 zero = 0;
    struct esw_engine *e = bpf_map_lookup_elem(&esw_engine, &zero);
    __u64 now = bpf_ktime_get_ns();
    if (e && e->busy_until > now + pc->queue_ns) {
        prog_count(port, ESW_PROG_OVERFLOW);
        port_count(port, ESW_STAT_RX_DROPPED, 1);
        return TC_ACT_SHOT;
    }
    s->prog_seq += 1;
    skb->cb[0] = ESW_PROG_CB_MAGIC;
    skb->cb[1] = s->prog_seq;
    skb->cb[2] = ESW_PROG_PASS;
    skb->cb[3] = 0;
    prog_count(port, -1);
    s->prog_start_ns = now;
    bpf_tail_call(skb, &esw_user_progs, port);
    skb->cb[0] = 0;
    return -1;
}

/* The frame's share of the engine: reserves cost = run time * 100 / nic_speed after
 * whatever the engine has accepted before (a compare-and-swap on the shared clock; the
 * other CPU may be reserving too). Returns when the engine is done with the frame. */
static __always_inline __u64 engine_reserve(struct esw_scratch *s, const struct esw_prog_config *pc, __u64 now)
{
    __u32 zero = 0;
    struct esw_engine *e = bpf_map_lookup_elem(&esw_engine, &zero);
    __u64 start = s->prog_start_ns;
    __u64 run = now - start;
    if (run > ESW_ENGINE_MAX_RUN_NS)
        run = ESW_ENGINE_MAX_RUN_NS;
    __u32 speed = pc->nic_speed;
    if (!speed || speed > 100)
        speed = 100;
    __u64 cost = run * 100 / speed;
    if (!e)
        return now;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        __u64 busy = e->busy_until;
        __u64 done = (busy > start ? busy : start) + cost;
        if (__sync_val_compare_and_swap(&e->busy_until, busy, done) == busy)
            return done;
    }
    /* Still contended: queue behind whatever is there now. */
    return __sync_fetch_and_add(&e->busy_until, cost) + cost;
}

#ifndef BPF_F_ADJ_ROOM_NO_CSUM_RESET
#define BPF_F_ADJ_ROOM_NO_CSUM_RESET (1ULL << 5)
#endif

/* Marks a frame for the delay line with s->held (filled by the caller). IPv4/IPv6 frames
 * carry it right after their Ethernet header: bpf_skb_change_head keeps GSO state
 * (bpf_skb_change_tail linearises the frame and resets it: a TCP superframe came back as
 * one frame longer than the MTU and was dropped), the delay line's TAP carries GSO
 * superframes whole (virtio-net headers), its ingress parses the moved Ethernet header
 * and engine_return takes the 16 bytes out with bpf_skb_adjust_room (IP only, GSO kept).
 * Other frames carry it at their end. Returns 0 when marked, -1 when the frame could not
 * grow (unchanged: it goes on now), -2 when it grew but could not be marked (dropped).
 * Not inlined: the pipeline's stack is full. */
static __noinline int hold_mark(struct __sk_buff *skb, struct esw_scratch *s)
{
    struct esw_hold_trailer *t = &s->held;
    __u8 *eth = s->chunk;   /* the Ethernet header while it moves */
    if (bpf_skb_load_bytes(skb, 0, eth, 14) < 0)
        return -1;
    __u16 type = ((__u16)eth[12] << 8) | eth[13];
    if ((type == 0x0800 || type == 0x86dd) && skb->protocol == bpf_htons(type)) {
        t->magic = ESW_HOLD_MAGIC_HEAD;
        if (bpf_skb_change_head(skb, sizeof(*t), 0) < 0)
            return -1;
        if (bpf_skb_store_bytes(skb, 0, eth, 14, 0) < 0 || bpf_skb_store_bytes(skb, 14, t, sizeof(*t), 0) < 0)
            return -2;
        return 0;
    }
    t->magic = ESW_HOLD_MAGIC;
    __u32 len = skb->len;
    if (bpf_skb_change_tail(skb, len + sizeof(*t), 0) < 0)
        return -1;
    return bpf_skb_store_bytes(skb, len, t, sizeof(*t), 0) < 0 ? -2 : 0;
}

/* Hands the frame to the delay line until `at`, when the engine is done with it.
 * Returns -1 when it is not held (no delay line, a wait too short to hold, or a non-IP
 * frame whose tail cannot grow: an encapsulated one): it goes on now. */
static __always_inline int engine_hold(struct __sk_buff *skb, __u32 port, __u32 verdict, __u32 arg, __u64 at,
                                       __u64 now, struct esw_scratch *s, const struct esw_prog_config *pc)
{
    __u32 hold = pc->hold_ifindex;
    if (!hold || at < now + ESW_HOLD_MIN_NS)
        return -1;
    struct esw_hold_trailer *t = &s->held;
    t->at = at;
    t->port = port;
    t->verdict = verdict;
    t->arg = arg;
    int marked = hold_mark(skb, s);
    if (marked == -1)
        return -1;
    if (marked < 0) {
        port_count(port, ESW_STAT_RX_DROPPED, 1);
        return TC_ACT_SHOT;
    }
    struct esw_prog_counters *c = bpf_map_lookup_elem(&esw_prog_stats, &port);
    if (c) {
        c->held += 1;
        c->held_ns += at - now;
    }
    return bpf_redirect(hold, 0);
}

static __always_inline int hold_valid(const struct esw_hold_trailer *t, __u32 magic)
{
    return t->magic == magic && t->port < ESW_MAX_PORTS && t->verdict < ESW_PROG_VERDICTS;
}

/* A frame back from the delay line (at the TAP's ingress): its metadata read into *t and
 * taken out (after the Ethernet header or at the end). Returns -1 for anything else
 * (dropped). */
static __noinline int engine_return(struct __sk_buff *skb, struct esw_hold_trailer *t)
{
    __u32 len = skb->len;
    if (len < sizeof(*t) + 14)
        return -1;
    if ((skb->protocol == bpf_htons(0x0800) || skb->protocol == bpf_htons(0x86dd)) &&
        bpf_skb_load_bytes(skb, 14, t, sizeof(*t)) == 0 && hold_valid(t, ESW_HOLD_MAGIC_HEAD))
        return bpf_skb_adjust_room(skb, -(__s32)sizeof(*t), BPF_ADJ_ROOM_MAC,
                                   BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_NO_CSUM_RESET) < 0 ? -1 : 0;
    if (bpf_skb_load_bytes(skb, len - sizeof(*t), t, sizeof(*t)) < 0 || !hold_valid(t, ESW_HOLD_MAGIC))
        return -1;
    return bpf_skb_change_tail(skb, len - sizeof(*t), 0) < 0 ? -1 : 0;
}

/* Acts on a verdict. Returns -1 for pass (on to the tables), else the tc verdict. */
static __always_inline int prog_act(struct __sk_buff *skb, __u32 port, __u32 verdict, __u32 arg)
{
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

/* A verdict the pipeline can act on: redirect names a port the NIC has (a redirect to a
 * port index with no port used to be counted as a redirect, then dropped at output). */
static __always_inline int prog_verdict_valid(__u32 verdict, __u32 arg)
{
    if (verdict >= ESW_PROG_VERDICTS)
        return 0;
    if (verdict != ESW_PROG_REDIRECT)
        return 1;
    struct esw_port *p = arg < ESW_MAX_PORTS ? bpf_map_lookup_elem(&esw_ports, &arg) : 0;
    return p && (p->flags & ESW_PORT_VALID);
}

/* The program handed its verdict back: counted, the engine's time reserved, then held
 * until the engine is done with the frame or acted on at once. Returns -1 for pass (on
 * to the tables), else the tc verdict. Not inlined: inline, its live values made
 * esw_port_rx spill past the verifier's 512-byte limit for the call chain through ct. */
static __noinline int prog_verdict(struct __sk_buff *skb, __u32 port, struct esw_scratch *s,
                                   const struct esw_prog_config *pc)
{
    __u32 verdict = skb->cb[2], arg = skb->cb[3];
    __u64 now = bpf_ktime_get_ns();
    __u64 at = engine_reserve(s, pc, now);
    if (!prog_verdict_valid(verdict, arg)) {
        prog_count(port, ESW_PROG_VERDICTS);
        port_count(port, ESW_STAT_RX_DROPPED, 1);
        return TC_ACT_SHOT;
    }
    prog_count(port, verdict);
    if (verdict == ESW_PROG_DROP)
        return TC_ACT_SHOT;
    int held = engine_hold(skb, port, verdict, arg, at, now, s, pc);
    if (held >= 0)
        return held;
    return prog_act(skb, port, verdict, arg);
}

#endif
