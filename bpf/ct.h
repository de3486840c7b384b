/* ct.h — connection tracking in the silicon, as mlx5 offloads it: a pre-ct rule
 * (`ct(zone[,nat]), recirc(id)` or `recirc(id)`) sends the frame through the CT table
 * and then into the chain of rules matching recirc_id == id, with the ct fields in the
 * key (the post-ct rule); a rule `ct(zone[,nat]), actions...` runs its own actions
 * after the CT hit (the connection's NAT first). The frame is not touched until the
 * last rule is known: a CT miss (a new connection, or one the hardware does not hold),
 * a chain miss or a recirculation too many sends it up the representor as it arrived,
 * and software starts over at recirc_id 0. Only then are the NAT rewrites applied (with
 * checksum updates), every rule and connection on the way counted, and the last rule's
 * actions run. A TCP FIN or RST that hits a connection marks its entry, queues its
 * counter for the driver (which hands the connection back to software) and goes up the
 * representor unmodified, so the software tracker sees the teardown.
 *
 * Included by esw.bpf.c after the lookup, count and action code it uses. */
#ifndef ESW_CT_H
#define ESW_CT_H

#define TCP_FIN 0x01
#define TCP_RST 0x04

static __always_inline void ct_count(__u32 stat)
{
    __u64 *v = bpf_map_lookup_elem(&esw_ct_stats, &stat);
    if (v)
        *v += 1;
}

struct chain_ctx {
    struct esw_chain_list *list;
    struct esw_scratch *s;
    struct esw_rule *rule;
};

/* One chain mask: mask the key and the ct words, probe the chain table. */
static long probe_chain_mask(__u64 i, struct chain_ctx *c)
{
    if (i >= ESW_MAX_MASKS)
        return 1;
    __u32 id = c->list->ids[i];
    struct esw_chain_mask *m = bpf_map_lookup_elem(&esw_chain_masks, &id);
    if (!m)
        return 1;
    struct esw_scratch *s = c->s;
    s->chain_probe.mask_id = id;
#pragma unroll
    for (int w = 0; w < 3; w++)
        s->chain_probe.ct[w] = s->rc.ct[w] & m->ct[w];
#pragma unroll
    for (int w = 0; w < ESW_KEY_WORDS; w++)
        s->chain_probe.key.w[w] = s->key.w[w] & m->key.w[w];
    struct esw_rule *r = bpf_map_lookup_elem(&esw_chain, &s->chain_probe);
    if (!r)
        return 0;
    c->rule = r;
    return 1;
}

/* Looks the frame's tuple (as the key holds it now) up in the CT table of `zone`.
 * A hit sets the ct words of the chain key and applies the connection's NAT to the
 * key (the packet follows at the end). 0: hit, else the ESW_CT_STAT_* of the miss. */
static __always_inline int ct_lookup(struct esw_scratch *s, __u32 zone, int nat, const struct esw_parsed *ps)
{
    struct esw_ct_key k = {};
    __u64 w11 = s->key.w[11];
    if (ps->frag || !ps->l4 || (ps->proto != PROTO_TCP && ps->proto != PROTO_UDP))
        return ESW_CT_STAT_MISS;
    k.zone = zone;
    k.proto = ps->proto;
    k.sport = w11 >> 16;
    k.dport = w11 >> 32;
    if (ps->eth_type == ETH_P_IP_) {
        k.src[1] = s->key.w[12] & 0xffffffff;
        k.dst[1] = s->key.w[12] >> 32;
    } else if (ps->eth_type == ETH_P_IPV6_) {
        k.ipv6 = 1;
        k.src[0] = s->key.w[13];
        k.src[1] = s->key.w[14];
        k.dst[0] = s->key.w[15];
        k.dst[1] = s->key.w[16];
    } else {
        return ESW_CT_STAT_MISS;
    }
    struct esw_ct_entry *e = bpf_map_lookup_elem(&esw_ct, &k);
    if (!e)
        return ESW_CT_STAT_MISS;
    if (ps->proto == PROTO_TCP && ((w11 >> 48) & (TCP_FIN | TCP_RST))) {
        /* The first to mark the entry tells the driver. */
        if (!(__sync_fetch_and_or(&e->flags, ESW_CT_HANDED_BACK) & ESW_CT_HANDED_BACK)) {
            __u32 counter = e->counter;
            if (bpf_map_push_elem(&esw_ct_handbacks, &counter, 0))
                ct_count(ESW_CT_STAT_HANDBACK_LOST);
        }
        return ESW_CT_STAT_HANDBACK;
    }
    /* Handed back: software tears the connection down; the driver removes the entry. */
    if (e->flags & ESW_CT_HANDED_BACK)
        return ESW_CT_STAT_HANDBACK;
    struct esw_recirc_state *rc = &s->rc;
    /* As OVS and the kernel, a ct() without nat leaves a NATed connection's packet
     * unrewritten and without +snat/+dnat. */
    __u8 state = nat ? e->state : e->state & ~ESW_CS_NAT;
    rc->ct[0] = (__u64)state | ((__u64)zone << 16) | ((__u64)e->mark << 32);
    rc->ct[1] = e->label[0];
    rc->ct[2] = e->label[1];
    __u32 i = rc->cts;
    if (i <= ESW_MAX_RECIRC)
        rc->ct_counters[i] = e->counter;
    rc->cts++;
    if (!nat || !e->nat)
        return 0;
    /* The key as the packet will be once rewritten: the chain matches the NATed frame. */
    __u8 n = e->nat & (k.ipv6 ? (ESW_CT_NAT_SRC_PORT | ESW_CT_NAT_DST_PORT) : 0xf);
    if (n & ESW_CT_NAT_SRC) {
        s->key.w[12] = (s->key.w[12] & ~0xffffffffull) | e->nat_src;
        rc->nat_src = e->nat_src;
    }
    if (n & ESW_CT_NAT_DST) {
        s->key.w[12] = (s->key.w[12] & 0xffffffffull) | ((__u64)e->nat_dst << 32);
        rc->nat_dst = e->nat_dst;
    }
    if (n & ESW_CT_NAT_SRC_PORT) {
        s->key.w[11] = (s->key.w[11] & ~(0xffffull << 16)) | ((__u64)e->nat_sport << 16);
        rc->nat_sport = e->nat_sport;
    }
    if (n & ESW_CT_NAT_DST_PORT) {
        s->key.w[11] = (s->key.w[11] & ~(0xffffull << 32)) | ((__u64)e->nat_dport << 32);
        rc->nat_dport = e->nat_dport;
    }
    rc->nat |= n;
    return 0;
}

/* One pass of the rule in s->rc.rule: its ct action if it has one, then the chain of
 * its recirc id, whose rule replaces s->rc.rule (0: on to that rule); -1 when the rule
 * has no recirc (its own actions are the last); else 1 + the ESW_CT_STAT_* of why the
 * frame goes up the representor. A global function: verified once, not once per pass. */
__noinline int esw_recirc_step(struct esw_scratch *s, const struct esw_parsed *ps)
{
    if (!s || !ps)
        return 1 + ESW_CT_STAT_MISS;
    __u32 set_id = s->rc.rule.action_set;
    struct esw_action_set *set = bpf_map_lookup_elem(&esw_action_sets, &set_id);
    if (!set)
        return 1 + ESW_CT_STAT_MISS;
    /* The driver writes these rules as [recirc], [ct, recirc] or [ct, actions...]. */
    __u32 count = set->count;
    if (count < 1 || count > ESW_MAX_ACTIONS)
        return 1 + ESW_CT_STAT_MISS;
    const struct esw_action *last = &set->a[(count - 1) & (ESW_MAX_ACTIONS - 1)];
    if (set->a[0].kind == ESW_ACT_CT) {
        __u32 arg = set->a[0].arg;
        int r = ct_lookup(s, arg & 0xffff, arg & ESW_CT_ACT_NAT, ps);
        if (r)
            return 1 + r;
        ct_count(ESW_CT_STAT_HIT);
    }
    if (last->kind != ESW_ACT_RECIRC)
        return -1;
    __u32 zero = 0;
    struct esw_chain_list *l = bpf_map_lookup_elem(&esw_chain_list, &zero);
    if (!l)
        return 1 + ESW_CT_STAT_CHAIN_MISS;
    __u32 n = l->count;
    if (n > ESW_MAX_MASKS)
        n = ESW_MAX_MASKS;
    struct chain_ctx c = { .list = l, .s = s };
    s->chain_probe.recirc_id = last->arg;
    bpf_loop(n, probe_chain_mask, &c, 0);
    if (!c.rule)
        return 1 + ESW_CT_STAT_CHAIN_MISS;
    s->rc.rule = *c.rule;
    return 0;
}

/* Writes the NAT the connections asked for into the packet, with checksum updates
 * (the header-rewrite code of actions.h, fed with a rewrite action). */
__noinline int esw_apply_nat(struct __sk_buff *skb, struct esw_scratch *s, __u32 proto)
{
    if (!skb || !s)
        return 0;
    struct esw_recirc_state *rc = &s->rc;
    struct esw_action *a = &s->nat_action;
    __builtin_memset(a, 0, sizeof(*a));
    if (rc->nat & (ESW_CT_NAT_SRC | ESW_CT_NAT_DST)) {
        a->kind = ESW_ACT_SET_IPV4;
        if (rc->nat & ESW_CT_NAT_SRC) {
            a->u.ipv4.src = bpf_htonl(rc->nat_src);
            a->u.ipv4.src_mask = 0xffffffff;
        }
        if (rc->nat & ESW_CT_NAT_DST) {
            a->u.ipv4.dst = bpf_htonl(rc->nat_dst);
            a->u.ipv4.dst_mask = 0xffffffff;
        }
        set_ipv4(skb, a);
    }
    if (rc->nat & (ESW_CT_NAT_SRC_PORT | ESW_CT_NAT_DST_PORT)) {
        __builtin_memset(a, 0, sizeof(*a));
        a->kind = ESW_ACT_SET_L4;
        a->arg = proto;
        if (rc->nat & ESW_CT_NAT_SRC_PORT) {
            a->u.l4.src = bpf_htons(rc->nat_sport);
            a->u.l4.src_mask = 0xffff;
        }
        if (rc->nat & ESW_CT_NAT_DST_PORT) {
            a->u.l4.dst = bpf_htons(rc->nat_dport);
            a->u.l4.dst_mask = 0xffff;
        }
        set_l4(skb, a);
    }
    return 0;
}

/* A frame that hit a rule with ESW_RULE_RECIRC (ct first or recirc last): ct and
 * recirc steps until a rule that does not recirculate, then that rule's actions. */
static __noinline int run_recirc(struct __sk_buff *skb, struct esw_scratch *s, const struct esw_parsed *ps,
                                 struct esw_rule *rule, __u64 port_len)
{
    /* (Five arguments at most: the port and the frame's length share one.) */
    __u32 port = port_len >> 32, len = (__u32)port_len;
    struct esw_port *p = bpf_map_lookup_elem(&esw_ports, &port);
    if (!p || !s || !ps || !rule)
        return TC_ACT_SHOT;
    struct esw_recirc_state *rc = &s->rc;
    __builtin_memset(rc, 0, sizeof(*rc));
    rc->rule = *rule;
    int stat = ESW_CT_STAT_TOO_DEEP;
    for (int pass = 0; pass <= ESW_MAX_RECIRC; pass++) {
        rc->rule_counters[pass] = rc->rule.counter;
        rc->rules = pass + 1;
        if (!(rc->rule.flags & ESW_RULE_RECIRC))
            goto last_rule;
        if (pass == ESW_MAX_RECIRC)
            break;
        int r = esw_recirc_step(s, ps);
        if (r < 0)
            goto last_rule;
        if (r) {
            stat = r - 1;
            break;
        }
    }
    ct_count(stat);
    return to_representor(skb, port, p);
last_rule:
    /* The last rule encapsulates: as for a first rule, a frame too big for the uplink
     * takes the software path (unmodified: nothing was written yet). */
    if ((rc->rule.flags & ESW_RULE_ENCAP) && exceeds_tunnel_mtu(skb, ps, rc->rule.encap_overhead))
        return to_representor(skb, port, p);
    if (rc->nat)
        esw_apply_nat(skb, s, ps->proto);
    /* Rules count the frame, as flows do (`len`: with a VLAN tag the kernel holds outside
     * the data); connections count from the IP header on, as the kernel's conntrack and
     * the software tracker do (their counts add up). */
    __u32 rules = rc->rules, cts = rc->cts, l3_len = skb->len - ps->l3;
#pragma unroll
    for (int i = 0; i <= ESW_MAX_RECIRC; i++) {
        if (i < rules)
            count_counter(s, rc->rule_counters[i], len);
        if (i < cts)
            count_counter(s, rc->ct_counters[i], l3_len);
    }
    return run_actions(skb, port, &rc->rule, ps);
}

#endif
