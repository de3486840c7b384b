/* esw.bpf.c — the emulated eSwitch's silicon: tc (clsact) programs whose BPF maps are
 * the hardware tables. esw_port_rx runs at the ingress of every port's netdev (the
 * switch-side veth end of each VF, the uplink); esw_rep_tx at the egress of every
 * representor (what the host sends on a representor leaves through its port, and through
 * the representor's own transmit too while someone captures on it). */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "esw_shared.h"
#include "maps.h"
#include "parse.h"
#include "actions.h"
#include "legacy.h"
#include "prog_stage.h"

char LICENSE[] SEC("license") = "GPL";

struct lookup_ctx {
    void *table;
    __u32 *ids;
    __u32 base;        /* the loop's index 0 is mask ids[base] */
    struct esw_scratch *s;
    struct esw_rule *rule;
    int tunnel;        /* the key holds a tunnel: only masks that match tunnel fields */
};

/* One mask of a table: mask the key, probe the table. Stops the loop on a hit. */
static __always_inline long probe_one(__u64 i, struct lookup_ctx *c)
{
    i += c->base;
    if (i >= ESW_MAX_MASKS)
        return 1;
    __u32 id = c->ids[i];
    struct esw_key *m = bpf_map_lookup_elem(&esw_masks, &id);
    if (!m)
        return 1;
    /* A VXLAN frame parsed outer and inner is a candidate only for decap rules: a rule
     * that matches no tunnel field is about frames as they are on the port, and must
     * not see the inner headers in place of the outer ones. */
    if (c->tunnel && !(m->w[0] | m->w[1] | m->w[2] | m->w[3] | m->w[4] | m->w[5] | m->w[6]))
        return 0;
    struct esw_scratch *s = c->s;
    s->probe.mask_id = id;
    s->probe.pad = 0;
#pragma unroll
    for (int w = 0; w < ESW_KEY_WORDS; w++)
        s->probe.key.w[w] = s->key.w[w] & m->w[w];
    struct esw_rule *r = bpf_map_lookup_elem(c->table, &s->probe);
    if (!r)
        return 0;
    __u64 *hits = bpf_map_lookup_elem(&esw_mask_hits, &id);
    if (hits)
        *hits += 1;
    c->rule = r;
    return 1;
}

/* probe_one as bpf_loop's callback (the masks after the first). */
static long probe_mask(__u64 i, struct lookup_ctx *c)
{
    return probe_one(i, c);
}

/* Looks the key up in one table: every mask in the list's order, first hit wins. */
static __always_inline struct esw_rule *lookup_table(void *table, __u32 *ids, __u32 n, struct esw_scratch *s,
                                                     int tunnel)
{
    struct lookup_ctx c = { .table = table, .ids = ids, .s = s, .tunnel = tunnel };
    if (n == 0)
        return 0;
    if (n > ESW_MAX_MASKS)
        n = ESW_MAX_MASKS;
    /* The busiest mask (ranked first) is probed inline: most frames need no loop, and
     * no call either (a BPF-to-BPF call and its return cost ~9 ns a frame). */
    if (probe_one(0, &c) || n == 1)
        return c.rule;
    c.base = 1;
    bpf_loop(n - 1, probe_mask, &c, 0);
    return c.rule;
}

/* The exact-match table first (one probe per exact profile in use), then the masks. */
static __always_inline struct esw_rule *lookup(struct esw_mask_lists *l, struct esw_scratch *s, int tunnel)
{
    __u32 index = ESW_TABLE_EXACT;
    void *table;
    if (l->exact_count && (table = bpf_map_lookup_elem(&esw_rule_tables, &index))) {
        struct esw_rule *r = lookup_table(table, l->exact, l->exact_count, s, tunnel);
        if (r)
            return r;
    }
    index = ESW_TABLE_MASKED;
    if (l->masked_count && (table = bpf_map_lookup_elem(&esw_rule_tables, &index)))
        return lookup_table(table, l->masked, l->masked_count, s, tunnel);
    return 0;
}

/* A miss: the frame goes up the port's representor, as if the representor received it. */
static __always_inline int to_representor(struct __sk_buff *skb, __u32 port, const struct esw_port *p)
{
    if (!p->rep_ifindex) {
        port_count(port, ESW_STAT_RX_DROPPED, 1);
        return TC_ACT_SHOT;
    }
    port_count(port, ESW_STAT_TO_REP, 1);
    return bpf_redirect(p->rep_ifindex, BPF_F_INGRESS);
}

struct csum_ctx {
    struct __sk_buff *skb;
    struct esw_scratch *s;
    __u32 off;
    __u32 end;
    __u32 field;       /* offset of the checksum field, zeroed in the sum */
    __u32 sum;
};

/* Adds 256 bytes (or what is left) of the transport segment to the sum. */
static long csum_chunk(__u64 i, struct csum_ctx *c)
{
    if (c->off >= c->end)
        return 1;
    __u32 n = c->end - c->off;
    if (n > 256)
        n = 256;
    /* Keep the bounds check on the register the helper gets (the verifier's view). */
    asm volatile("" : "+r"(n));
    if (n < 1 || n > 256)
        return 1;
    __u8 *buf = c->s->chunk;
    __builtin_memset(buf, 0, 256);
    if (bpf_skb_load_bytes(c->skb, c->off, buf, n) < 0)
        return 1;
    if (c->field >= c->off && c->field + 2 <= c->off + n) {
        __u32 at = (c->field - c->off) & 0xff;
        if (at < 255) {
            buf[at] = 0;
            buf[at + 1] = 0;
        }
    }
    __u32 words = (n + 3) & ~3u;
    if (words > 256)
        return 1;
    c->sum = bpf_csum_diff(0, 0, (__be32 *)buf, words, c->sum);
    c->off += n;
    return 0;
}

static __always_inline __u16 fold(__u32 s)
{
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return (__u16)s;
}

/* A wire delivers complete checksums; a veth standing in for it may hand over the
 * inner TCP/UDP checksum of a VXLAN frame still partial (the sender's offload). The
 * host stack would pass it on unfinished to the tunnel socket, so frames for the
 * uplink's representor get it recomputed here (a complete one comes out the same). */
static void finish_inner_checksum(struct __sk_buff *skb, struct esw_scratch *s, const struct esw_parsed *in)
{
    /* A fragment's checksum covers the whole datagram: only whole packets are finished. */
    if (skb->gso_size || !in->l4 || in->frag || in->eth_type != ETH_P_IP_ ||
        (in->proto != PROTO_TCP && in->proto != PROTO_UDP))
        return;
    __u8 ip[20];
    if (bpf_skb_load_bytes(skb, in->l3, ip, 20) < 0)
        return;
    /* The segment ends where the IP header says, not at the frame's end (padding). */
    __u32 tot = ((__u32)ip[2] << 8) | ip[3];
    __u32 ihl = (ip[0] & 0x0f) * 4;
    if (tot < ihl || in->l3 + tot > skb->len || in->l3 + ihl != in->l4)
        return;
    __u32 len = tot - ihl;
    if (len > 9000)
        return;
    __u32 field = in->l4 + (in->proto == PROTO_TCP ? 16 : 6);
    __u16 old;
    if (bpf_skb_load_bytes(skb, field, &old, 2) < 0 || (in->proto == PROTO_UDP && old == 0))
        return;
    __u32 pseudo[3];
    __builtin_memcpy(&pseudo[0], ip + 12, 4);
    __builtin_memcpy(&pseudo[1], ip + 16, 4);
    pseudo[2] = bpf_htonl(((__u32)in->proto << 16) | len);
    struct csum_ctx c = { .skb = skb, .s = s, .off = in->l4, .end = in->l4 + len, .field = field };
    c.sum = bpf_csum_diff(0, 0, pseudo, 12, 0);
    bpf_loop(40, csum_chunk, &c, 0);
    if (c.off != c.end)
        return;
    __u16 sum = ~fold(c.sum);
    if (in->proto == PROTO_UDP && sum == 0)
        sum = 0xffff;
    if (sum != old)
        bpf_skb_store_bytes(skb, field, &sum, 2, 0);
}

/* Notes the tunnel flags of a VXLAN frame going up p0 (ESW_VXLAN_NOTE) in the VXLAN
 * header's last byte (frame offset 49: parse_vxlan takes only untagged IPv4 without
 * options), keeping a UDP checksum the frame has right. */
static __noinline void note_tunnel_flags(struct __sk_buff *skb, __u32 tun_flags)
{
    __u16 old, csum;
    if (!skb || bpf_skb_load_bytes(skb, 48, &old, 2) < 0 || bpf_skb_load_bytes(skb, 40, &csum, 2) < 0)
        return;
    __u8 b[2];
    __builtin_memcpy(b, &old, 2);
    b[1] = ESW_VXLAN_NOTE | (tun_flags & ESW_VXLAN_NOTE_FLAGS);
    __u16 new;
    __builtin_memcpy(&new, b, 2);
    if (new == old)
        return;
    if (csum)
        bpf_l4_csum_replace(skb, 40, old, new, 2 | BPF_F_MARK_MANGLED_0);
    bpf_skb_store_bytes(skb, 48, &new, 2, BPF_F_RECOMPUTE_CSUM);
}

/* Whether the encapsulated frame (each segment, for GSO) exceeds the uplink's MTU:
 * the hardware neither fragments nor answers ICMP, so such frames take the software
 * path, where the vxlan port behaves like the kernel's vxlan driver. */
static __always_inline int exceeds_tunnel_mtu(struct __sk_buff *skb, const struct esw_parsed *ps, __u32 overhead)
{
    __u32 up = 0;
    struct esw_port *u = bpf_map_lookup_elem(&esw_ports, &up);
    if (!u)
        return 1;
    __u32 frame = skb->len + (skb->vlan_present ? 4 : 0);
    if (skb->gso_size && ps->l4) {
        __u32 headers = ps->l4 + 8;
        if (ps->proto == PROTO_TCP) {
            __u8 doff;
            if (bpf_skb_load_bytes(skb, ps->l4 + 12, &doff, 1) == 0)
                headers = ps->l4 + (doff >> 4) * 4;
        }
        __u32 seg = headers + skb->gso_size + (skb->vlan_present ? 4 : 0);
        if (seg < frame)
            frame = seg;
    }
    return frame + overhead - 14 > u->mtu;
}

struct action_ctx {
    struct __sk_buff *skb;
    struct esw_action_set *set;
    __u32 count;
    __u32 in_port;
    __u32 outer;
    __u16 inner_type;
    __u8 no_peer;
    int verdict;
};

/* One action of a rule. Returns 1 to stop (a verdict is set). */
static long run_action(__u64 i, struct action_ctx *c)
{
    if (i >= ESW_MAX_ACTIONS)
        return 1;
    struct __sk_buff *skb = c->skb;
    const struct esw_action *a = &c->set->a[i];
    switch (a->kind) {
    case ESW_ACT_FORWARD: {
        int last = i + 1 >= c->count;
        int verdict = output(skb, a->arg, last, !c->no_peer);
        if (last) {
            c->verdict = verdict;
            return 1;
        }
        return 0;
    }
    case ESW_ACT_DROP:
        c->verdict = TC_ACT_SHOT;
        return 1;
    case ESW_ACT_PUSH_VLAN:
        bpf_skb_vlan_push(skb, a->u.vlan.tpid, bpf_ntohs(a->u.vlan.tci) & ~VLAN_PRESENT);
        return 0;
    case ESW_ACT_POP_VLAN:
        bpf_skb_vlan_pop(skb);
        return 0;
    case ESW_ACT_SET_ETH:
        set_eth(skb, a);
        return 0;
    case ESW_ACT_SET_IPV4:
        set_ipv4(skb, a);
        return 0;
    case ESW_ACT_SET_IPV6_SRC:
        set_ipv6_addr(skb, a, 8);
        return 0;
    case ESW_ACT_SET_IPV6_DST:
        set_ipv6_addr(skb, a, 24);
        return 0;
    case ESW_ACT_SET_IPV6_MISC:
        set_ipv6_misc(skb, a);
        return 0;
    case ESW_ACT_SET_L4:
        set_l4(skb, a);
        return 0;
    case ESW_ACT_ENCAP:
        if (encap(skb, a->arg) < 0) {
            port_count(c->in_port, ESW_STAT_RX_DROPPED, 1);
            c->verdict = TC_ACT_SHOT;
            return 1;
        }
        return 0;
    case ESW_ACT_DECAP: {
        int r = decap(skb, c->outer, c->inner_type);
        if (r < 0) {
            port_count(c->in_port, ESW_STAT_RX_DROPPED, 1);
            c->verdict = TC_ACT_SHOT;
            return 1;
        }
        c->no_peer = r;
        return 0;
    }
    default:
        return 0;
    }
}

static __always_inline int run_actions(struct __sk_buff *skb, __u32 in_port, const struct esw_rule *rule,
                                       const struct esw_parsed *ps)
{
    __u32 set_id = rule->action_set;
    struct action_ctx c = { .skb = skb, .in_port = in_port, .outer = ps->outer, .inner_type = ps->eth_type,
                            .verdict = TC_ACT_SHOT };
    c.set = bpf_map_lookup_elem(&esw_action_sets, &set_id);
    if (!c.set)
        return TC_ACT_SHOT;
    c.count = c.set->count;
    if (c.count > ESW_MAX_ACTIONS)
        c.count = ESW_MAX_ACTIONS;
    /* Partial offload: the hardware classified, software executes. The mark travels
     * in skb->mark (a redirect within the namespace keeps it) and reaches the
     * datapath's packet socket as an SO_RCVMARK control message. */
    if (c.set->a[0].kind == ESW_ACT_HINT) {
        struct esw_port *p = bpf_map_lookup_elem(&esw_ports, &in_port);
        if (!p)
            return TC_ACT_SHOT;
        skb->mark = c.set->a[0].arg;
        return to_representor(skb, in_port, p);
    }
    /* The most common rule, one output, without the loop. */
    if (c.count == 1 && c.set->a[0].kind == ESW_ACT_FORWARD)
        return output(skb, c.set->a[0].arg, 1, 1);
    /* When the last action is not an output, every output sent a clone: the verdict
     * stays SHOT. */
    bpf_loop(c.count, run_action, &c, 0);
    return c.verdict;
}

/* CLOCK_MONOTONIC_COARSE, as bpf_ktime_get_coarse_ns() gives it, without calling the
 * helper for every frame (~11 ns): that clock moves only when the timekeeper's tick
 * moves jiffies too, so each CPU keeps the value it read and the jiffies it read it at
 * (bpf_jiffies64() is inlined: one memory read), and reads the clock again when jiffies
 * has moved. Jiffies moves just before the timekeeper updates: a read that finds the
 * clock where it was keeps the old jiffies, and the next frame reads again; a read
 * between the two that finds a newer but not yet this tick's value keeps it for the
 * tick, so the value can lag the coarse clock by up to two ticks (for "used" and CT
 * expiry, a few ms). */
static __always_inline __u64 coarse_now(struct esw_scratch *s)
{
    __u64 j = bpf_jiffies64();
    if (j != s->clock_jiffies) {
        __u64 t = bpf_ktime_get_coarse_ns();
        if (t != s->clock_ns) {
            s->clock_ns = t;
            s->clock_jiffies = j;
        }
    }
    return s->clock_ns;
}

/* Counts a frame of `len` bytes on rule counter `c`. */
static __always_inline void count_counter(struct esw_scratch *s, __u32 c, __u32 len)
{
    struct esw_rule_counter *rc = rule_counter(c);
    if (rc) {
        rc->packets += 1;
        rc->bytes += len;
        /* The coarse clock (two ticks behind at most, coarse_now) is fine for "used". */
        rc->last_used_ns = coarse_now(s);
    }
}

#include "ct.h"

SEC("tc")
int esw_port_rx(struct __sk_buff *skb)
{
    __u32 ifindex = skb->ifindex;
    __u32 *pp = bpf_map_lookup_elem(&esw_port_by_ifindex, &ifindex);
    __u32 v = pp ? *pp : 0;
    __u32 zero = 0;
    /* A frame back from the NIC engine's delay line resumes after the stage, as from
     * the port it came in on (prog_stage.h); its trailer goes to the scratch space. */
    int resumed = 0;
    if (!v || (v & (ESW_IFINDEX_REPRESENTOR | ESW_IFINDEX_ENGINE))) {
        if (v != ESW_IFINDEX_ENGINE)
            return TC_ACT_OK;
        struct esw_scratch *hs = bpf_map_lookup_elem(&esw_scratch, &zero);
        if (!hs || engine_return(skb, &hs->held) < 0)
            return TC_ACT_SHOT;
        v = hs->held.port + 1;
        resumed = 1;
    }
    __u32 port = v - 1;
    struct esw_port *p = bpf_map_lookup_elem(&esw_ports, &port);
    /* An inactive port function's link is down (its switch side too, so little gets
     * here): nothing it sends enters the switch. */
    if (p && !(p->flags & ESW_PORT_LINK_UP)) {
        port_count(port, ESW_STAT_RX_DROPPED, 1);
        return TC_ACT_SHOT;
    }
    struct esw_config *cfg = bpf_map_lookup_elem(&esw_config, &zero);
    struct esw_scratch *s = bpf_map_lookup_elem(&esw_scratch, &zero);
    struct esw_prog_config *pc = bpf_map_lookup_elem(&esw_prog_config, &zero);
    if (!p || !cfg || !s || !pc)
        return TC_ACT_SHOT;
    __u32 len = skb->len + (skb->vlan_present ? 4 : 0);
    /* The port's offloaded program first (prog_stage.h): the frame comes back here with
     * its verdict, counted once on arrival. */
    if (resumed) {
        int r = prog_act(skb, port, s->held.verdict, s->held.arg);
        if (r >= 0)
            return r;
    } else if (prog_returned(skb, s)) {
        int r = prog_verdict(skb, port, s, pc);
        if (r >= 0)
            return r;
    } else {
        port_count2(port, ESW_STAT_RX_PACKETS, ESW_STAT_RX_BYTES, len);
        int r = prog_enter(skb, port, s, pc);
        if (r >= 0)
            return r;
    }

    if (cfg->mode == ESW_MODE_LEGACY)
        return legacy_forward(skb, port, p, cfg);

    /* No rule in either table: nothing to parse for (the uplink still parses, for the
     * checksum fix of frames going to p0). */
    struct esw_mask_lists *lists = bpf_map_lookup_elem(&esw_mask_lists, &zero);
    if (!lists)
        return TC_ACT_SHOT;
    if (!lists->exact_count && !lists->masked_count && !(p->flags & ESW_PORT_UPLINK))
        return to_representor(skb, port, p);

    struct esw_parsed ps = {}, inner = {};
    struct esw_rule *rule = 0;
    __u32 tun_flags = 0;
    s->key.w[7] = port;
    if ((p->flags & ESW_PORT_UPLINK) && parse_vxlan(skb, cfg, &s->key, &ps) &&
        parse_frame(skb, ps.outer, s, &ps) == 0) {
        ps.outer = 50;
        rule = lookup(lists, s, 1);
        if (!rule) {
            inner = ps;
            ps.outer = 0;
            tun_flags = (__u32)(s->key.w[6] >> 16);
        }
    }
    if (!rule) {
        s->key.w[0] = s->key.w[1] = s->key.w[2] = s->key.w[3] = s->key.w[4] = s->key.w[5] = s->key.w[6] = 0;
        ps.outer = 0;
        /* The common frame parsed inline, the others by parse_frame (parse.h). */
        int parsed = parse_l2(skb, 0, &s->key, &ps, s->chunk, 1);
        if (parsed == ESW_PARSE_OTHER)
            parsed = parse_frame(skb, 0, s, &ps);
        if (parsed < 0) {
            port_count(port, ESW_STAT_RX_DROPPED, 1);
            return TC_ACT_SHOT;
        }
        rule = lookup(lists, s, 0);
        if (!rule) {
            if (inner.outer) {
                finish_inner_checksum(skb, s, &inner);
                note_tunnel_flags(skb, tun_flags);
            }
            return to_representor(skb, port, p);
        }
        /* One test of the flags on the common path (a plain rule has none). */
        if (__builtin_expect(rule->flags != 0, 0)) {
            if ((rule->flags & ESW_RULE_ENCAP) && exceeds_tunnel_mtu(skb, &ps, rule->encap_overhead))
                return to_representor(skb, port, p);
            /* A pre-ct rule: the CT table and the chains decide (ct.h). */
            if (rule->flags & ESW_RULE_RECIRC)
                return run_recirc(skb, s, &ps, rule, (__u64)port << 32 | len);
        }
    }
    if (ps.outer) {
        /* Decap: ECN first (a drop is not the flow's packet, as in the kernel, where
         * the vxlan driver drops before the datapath), then the flow counts the inner
         * frame, which is what the datapath receives from a tunnel port. */
        if ((s->key.w[6] & 3) == 3 && decap_ecn_ce(skb, ps.outer) < 0) {
            port_count(port, ESW_STAT_RX_DROPPED, 1);
            return TC_ACT_SHOT;
        }
        len -= ps.outer;
    }
    count_counter(s, rule->counter, len);
    return run_actions(skb, port, rule, &ps);
}

SEC("tc")
int esw_rep_tx(struct __sk_buff *skb)
{
    __u32 ifindex = skb->ifindex;
    __u32 *pp = bpf_map_lookup_elem(&esw_port_by_ifindex, &ifindex);
    if (!pp || !(*pp & ESW_IFINDEX_REPRESENTOR))
        return TC_ACT_OK;
    __u32 port = (*pp & ~ESW_IFINDEX_REPRESENTOR) - 1;
    port_count(port, ESW_STAT_FROM_REP, 1);
    struct esw_port *p = bpf_map_lookup_elem(&esw_ports, &port);
    /* A packet socket captures on the representor (eswd sets the flag while one is bound
     * to it): the port gets a clone and the frame goes on through the TAP's transmit,
     * where taps see it leave, as on a NIC's representor; eswd reads it off the TAP and
     * discards it. Without a capture, the redirect alone: the TAP never sees the frame. */
    if (p && (p->flags & ESW_PORT_MIRROR_TX)) {
        output_to(skb, port, p, 0, 0);
        return TC_ACT_OK;
    }
    return output_to(skb, port, p, 1, 0);
}
