/* legacy.h — legacy (non-switchdev) SR-IOV forwarding: a MAC table keyed by (VLAN, MAC)
 * in exact-match memory, per-VF VST VLANs (pushed towards the uplink, stripped towards
 * the VF) and flooding of broadcast, multicast and unknown unicast. */
#ifndef ESW_LEGACY_H
#define ESW_LEGACY_H

static __always_inline int mac_lookup(__u16 vlan, __u64 mac, __u32 *port)
{
    __u64 k = ((__u64)vlan << 48) | mac;
    __u32 *p = bpf_map_lookup_elem(&esw_macs, &k);
    if (!p)
        return 0;
    *port = *p;
    return 1;
}

struct flood_ctx {
    struct __sk_buff *skb;
    __u32 skip;
    __u16 vlan;
};

/* A copy to VF port i + 1 when it is on the flooded VLAN. */
static long flood_one(__u64 i, struct flood_ctx *c)
{
    __u32 port = i + 1;
    if (port == c->skip)
        return 0;
    struct esw_port *q = bpf_map_lookup_elem(&esw_ports, &port);
    if (q && (q->flags & ESW_PORT_VALID) && q->vlan == c->vlan)
        output(c->skb, port, 0, 0);
    return 0;
}

/* Sends a copy to every VF on `vlan` except `skip`; the original stays with the caller. */
static __always_inline void flood_vfs(struct __sk_buff *skb, __u32 nports, __u32 skip, __u16 vlan)
{
    struct flood_ctx c = { .skb = skb, .skip = skip, .vlan = vlan };
    if (nports > ESW_MAX_PORTS)
        nports = ESW_MAX_PORTS;
    if (nports > 1)
        bpf_loop(nports - 1, flood_one, &c, 0);
}

static __always_inline int legacy_forward(struct __sk_buff *skb, __u32 port, const struct esw_port *p,
                                          const struct esw_config *cfg)
{
    __u8 eth[14];
    if (bpf_skb_load_bytes(skb, 0, eth, 14) < 0) {
        port_count(port, ESW_STAT_RX_DROPPED, 1);
        return TC_ACT_SHOT;
    }
    __u64 dst = mac_of(eth);
    int multicast = eth[0] & 1;
    __u16 type = ((__u16)eth[12] << 8) | eth[13];
    __u32 target;
    if (!(p->flags & ESW_PORT_UPLINK)) {
        __u16 vlan = p->vlan;
        /* VST: the VF may not tag its own frames. */
        if (vlan && (skb->vlan_present || is_vlan(type))) {
            port_count(port, ESW_STAT_RX_DROPPED, 1);
            return TC_ACT_SHOT;
        }
        if (!multicast && mac_lookup(vlan, dst, &target)) {
            if (target == port)
                return TC_ACT_SHOT;
            return output(skb, target, 1, 1);
        }
        flood_vfs(skb, cfg->nports, port, vlan);
        if (vlan)
            bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q_), vlan | ((__u16)p->qos << 13));
        return output(skb, 0, 1, 0);
    }
    /* VST is 802.1Q: a frame whose outer tag is an 802.1ad S-tag is on none of the
     * VFs' VLANs (its VID is another tag space). */
    if (skb->vlan_present ? skb->vlan_proto != bpf_htons(ETH_P_8021Q_) : type == ETH_P_8021AD_) {
        port_count(port, ESW_STAT_RX_DROPPED, 1);
        return TC_ACT_SHOT;
    }
    __u16 vlan = 0;
    if (skb->vlan_present) {
        vlan = skb->vlan_tci & 0x0fff;
        bpf_skb_vlan_pop(skb);
    } else if (type == ETH_P_8021Q_) {
        __u8 t[2];
        if (bpf_skb_load_bytes(skb, 14, t, 2) == 0)
            vlan = (((__u16)t[0] << 8) | t[1]) & 0x0fff;
        bpf_skb_vlan_pop(skb);
    }
    if (!multicast && mac_lookup(vlan, dst, &target))
        return output(skb, target, 1, 1);
    flood_vfs(skb, cfg->nports, 0, vlan);
    return TC_ACT_SHOT;
}

#endif
