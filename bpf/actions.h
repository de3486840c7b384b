/* actions.h — what a hardware rule does: redirect (clone for all but the last output),
 * drop, VLAN push/pop, header rewrites with checksum updates, VXLAN encap from a shared
 * entry and decap. GSO superpackets stay whole (bpf_skb_adjust_room keeps GSO state). */
#ifndef ESW_ACTIONS_H
#define ESW_ACTIONS_H

#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV4
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)   /* Linux >= 6.3; Debian 12's headers lack it */
#endif

#define VXLAN_IPV4_OVERHEAD 50   /* outer Ethernet + IPv4 + UDP + VXLAN */

static __always_inline void port_count(__u32 port, __u32 stat, __u64 v)
{
    struct esw_port_counters *c = bpf_map_lookup_elem(&esw_port_stats, &port);
    if (c && stat < ESW_PORT_STATS)
        c->v[stat] += v;
}

/* A packet and its bytes, in one lookup (rx, tx). */
static __always_inline void port_count2(__u32 port, __u32 packets, __u32 bytes, __u64 len)
{
    struct esw_port_counters *c = bpf_map_lookup_elem(&esw_port_stats, &port);
    if (c && packets < ESW_PORT_STATS && bytes < ESW_PORT_STATS) {
        c->v[packets] += 1;
        c->v[bytes] += len;
    }
}

/* Offset of the network header: VLAN tags in the data move it, and so does an LLC/SNAP
 * header (the parser keys such frames by the SNAP EtherType). */
static __always_inline __u32 l3_offset(struct __sk_buff *skb)
{
    __u8 t[2];
    __u32 off = 12;
    __u16 type = 0;
#pragma unroll
    for (int i = 0; i < 3; i++) {
        if (bpf_skb_load_bytes(skb, off, t, 2) < 0)
            break;
        type = ((__u16)t[0] << 8) | t[1];
        if (!is_vlan(type))
            break;
        off += 4;
    }
    off += 2;
    if (type < 0x600) {
        __u8 llc[8];
        if (bpf_skb_load_bytes(skb, off, llc, 8) == 0 && llc[0] == 0xaa && llc[1] == 0xaa &&
            (llc[3] | llc[4] | llc[5]) == 0 && (((__u16)llc[6] << 8) | llc[7]) >= 0x600)
            off += 8;
    }
    return off;
}

/* Sends the packet out of `port`'s netdev (`p`: its entry, 0 when it has none). `last`:
 * the final output, whose verdict is returned; earlier outputs send a clone. */
static __always_inline int output_to(struct __sk_buff *skb, __u32 port, const struct esw_port *p, int last,
                                     int ingress)
{
    if (!p || !(p->flags & ESW_PORT_VALID) || !(p->flags & ESW_PORT_LINK_UP) ||
        (skb->gso_size == 0 && skb->len > p->mtu + 18)) {
        port_count(port, ESW_STAT_TX_DROPPED, 1);
        return last ? TC_ACT_SHOT : TC_ACT_OK;
    }
    port_count2(port, ESW_STAT_TX_PACKETS, ESW_STAT_TX_BYTES, skb->len + (skb->vlan_present ? 4 : 0));
    if (!last) {
        bpf_clone_redirect(skb, p->ifindex, 0);
        return TC_ACT_OK;
    }
    /* Into the VF's namespace directly when it is elsewhere (skips the backlog). */
    if (ingress && (p->flags & ESW_PORT_PEER_NS))
        return bpf_redirect_peer(p->ifindex, 0);
    return bpf_redirect(p->ifindex, 0);
}

static __always_inline int output(struct __sk_buff *skb, __u32 port, int last, int ingress)
{
    return output_to(skb, port, bpf_map_lookup_elem(&esw_ports, &port), last, ingress);
}

static __always_inline void set_eth(struct __sk_buff *skb, const struct esw_action *a)
{
    __u8 h[12];
    if (bpf_skb_load_bytes(skb, 0, h, 12) < 0)
        return;
#pragma unroll
    for (int i = 0; i < 6; i++) {
        h[i] = (h[i] & ~a->u.eth.dst_mask[i]) | (a->u.eth.dst[i] & a->u.eth.dst_mask[i]);
        h[6 + i] = (h[6 + i] & ~a->u.eth.src_mask[i]) | (a->u.eth.src[i] & a->u.eth.src_mask[i]);
    }
    bpf_skb_store_bytes(skb, 0, h, 12, 0);
}

/* Checksum field offset in the transport header, 0 when there is none to update. */
static __always_inline __u32 l4_csum_offset(__u8 proto)
{
    if (proto == PROTO_TCP)
        return 16;
    if (proto == PROTO_UDP)
        return 6;
    return 0;
}

/* One IPv4 address (network order, `cur` its bytes in the packet) under a mask, with the
 * IP checksum and, when `l4csum` is the transport checksum's offset, the pseudo-header's. */
static __always_inline void set_ipv4_addr(struct __sk_buff *skb, __u32 nh, __u32 at, const __u8 *cur, __u32 value,
                                          __u32 mask, __u32 l4csum, __u64 l4flags)
{
    __u32 old, new;
    __builtin_memcpy(&old, cur, 4);
    new = (old & ~mask) | (value & mask);
    if (new == old)
        return;
    bpf_l3_csum_replace(skb, nh + 10, old, new, 4);
    if (l4csum)
        bpf_l4_csum_replace(skb, l4csum, old, new, l4flags);
    bpf_skb_store_bytes(skb, at, &new, 4, 0);
}

static __always_inline void set_ipv4(struct __sk_buff *skb, const struct esw_action *a)
{
    __u32 nh = l3_offset(skb);
    __u8 h[20];
    if (bpf_skb_load_bytes(skb, nh, h, 20) < 0 || (h[0] >> 4) != 4)
        return;
    __u32 ihl = (h[0] & 0x0f) * 4;
    int later = ((((__u16)h[6] << 8) | h[7]) & 0x1fff) != 0;
    __u32 th = nh + ihl;
    __u32 csum = l4_csum_offset(h[9]);
    __u64 l4flags = BPF_F_PSEUDO_HDR | 4 | (h[9] == PROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0);
    __u32 l4csum = csum && !later ? th + csum : 0;
    set_ipv4_addr(skb, nh, nh + 12, h + 12, a->u.ipv4.src, a->u.ipv4.src_mask, l4csum, l4flags);
    set_ipv4_addr(skb, nh, nh + 16, h + 16, a->u.ipv4.dst, a->u.ipv4.dst_mask, l4csum, l4flags);
    if (a->u.ipv4.tos_mask) {
        __u16 o16 = ((__u16)h[0] << 8) | h[1];
        __u8 tos = (h[1] & ~a->u.ipv4.tos_mask) | (a->u.ipv4.tos & a->u.ipv4.tos_mask);
        __u16 n16 = ((__u16)h[0] << 8) | tos;
        bpf_l3_csum_replace(skb, nh + 10, bpf_htons(o16), bpf_htons(n16), 2);
        bpf_skb_store_bytes(skb, nh + 1, &tos, 1, 0);
    }
    if (a->u.ipv4.ttl_mask) {
        __u16 o16 = ((__u16)h[8] << 8) | h[9];
        __u8 ttl = (h[8] & ~a->u.ipv4.ttl_mask) | (a->u.ipv4.ttl & a->u.ipv4.ttl_mask);
        __u16 n16 = ((__u16)ttl << 8) | h[9];
        bpf_l3_csum_replace(skb, nh + 10, bpf_htons(o16), bpf_htons(n16), 2);
        bpf_skb_store_bytes(skb, nh + 8, &ttl, 1, 0);
    }
}

/* The transport header of the IPv6 packet at `nh` whose first next-header is `next`:
 * extension headers walked as the parser walks them. Returns 0 when there is none (a
 * later fragment, too many extension headers), else its offset (bits 0-15), its
 * protocol (bits 16-23) and whether a routing header came before it (bit 24). A
 * global function: the verifier checks it once, not at every rewrite that calls it. */
__noinline int ipv6_transport(struct __sk_buff *skb, __u32 nh, __u32 next)
{
    __u32 start = nh + 40;
    int routing = 0;
    if (!skb)
        return 0;
#pragma unroll
    for (int i = 0; i < 6; i++) {
        if (!is_ipv6_ext(next) || next == PROTO_NONE)
            break;
        __u8 e[4];
        if (bpf_skb_load_bytes(skb, start, e, 4) < 0)
            return 0;
        __u32 len;
        if (next == PROTO_FRAGMENT) {
            if ((((__u16)e[2] << 8) | e[3]) & ~7)
                return 0;
            len = 8;
        } else if (next == 51) {
            len = ((__u32)e[1] + 2) << 2;
        } else {
            if (next == 43)
                routing = 1;
            len = ((__u32)e[1] + 1) << 3;
        }
        next = e[0];
        start += len;
    }
    if (is_ipv6_ext(next) || start > 0xffff)
        return 0;
    return (int)(start | (next << 16) | (routing << 24));
}

/* An IPv6 address rewrite updates the pseudo-header sum of TCP, UDP and ICMPv6 after
 * any extension headers, as the kernel datapath does (a destination rewrite leaves it
 * alone when a routing header is present: the final destination is elsewhere). */
static __always_inline void set_ipv6_addr(struct __sk_buff *skb, const struct esw_action *a, __u32 field)
{
    __u32 nh = l3_offset(skb);
    __u8 h[8];
    if (bpf_skb_load_bytes(skb, nh, h, 8) < 0 || (h[0] >> 4) != 6)
        return;
    __u8 old[16], new[16];
    if (bpf_skb_load_bytes(skb, nh + field, old, 16) < 0)
        return;
#pragma unroll
    for (int i = 0; i < 16; i++)
        new[i] = (old[i] & ~a->u.addr6.mask[i]) | (a->u.addr6.addr[i] & a->u.addr6.mask[i]);
    __u32 t = ipv6_transport(skb, nh, h[6]);
    __u32 th = t & 0xffff;
    __u8 proto = t >> 16;
    int routing = (t >> 24) & 1;
    __u32 csum = proto == PROTO_ICMPV6 ? 2 : l4_csum_offset(proto);
    if (th && csum && !(field == 24 && routing)) {
        __s64 diff = bpf_csum_diff((__be32 *)old, 16, (__be32 *)new, 16, 0);
        bpf_l4_csum_replace(skb, th + csum, 0, diff,
                            BPF_F_PSEUDO_HDR | (proto == PROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0));
    }
    bpf_skb_store_bytes(skb, nh + field, new, 16, 0);
}

static __always_inline void set_ipv6_misc(struct __sk_buff *skb, const struct esw_action *a)
{
    __u32 nh = l3_offset(skb);
    __u8 h[8];
    if (bpf_skb_load_bytes(skb, nh, h, 8) < 0 || (h[0] >> 4) != 6)
        return;
    __u32 first = ((__u32)h[0] << 24) | ((__u32)h[1] << 16) | ((__u32)h[2] << 8) | h[3];
    __u32 tc = (first >> 20) & 0xff;
    tc = (tc & ~(__u32)a->u.ipv6.tclass_mask) | (a->u.ipv6.tclass & a->u.ipv6.tclass_mask);
    __u32 label = (first & 0xfffff & ~a->u.ipv6.label_mask) | (a->u.ipv6.label & a->u.ipv6.label_mask);
    first = (6u << 28) | (tc << 20) | (label & 0xfffff);
    __u32 be = bpf_htonl(first);
    bpf_skb_store_bytes(skb, nh, &be, 4, 0);
    __u8 hl = (h[7] & ~a->u.ipv6.hlimit_mask) | (a->u.ipv6.hlimit & a->u.ipv6.hlimit_mask);
    bpf_skb_store_bytes(skb, nh + 7, &hl, 1, 0);
}

static __always_inline void set_l4(struct __sk_buff *skb, const struct esw_action *a)
{
    __u32 nh = l3_offset(skb);
    __u8 h[20];
    if (bpf_skb_load_bytes(skb, nh, h, 20) < 0)
        return;
    __u32 th;
    __u8 proto;
    if ((h[0] >> 4) == 4) {
        if ((((__u16)h[6] << 8) | h[7]) & 0x1fff)
            return;
        th = nh + (h[0] & 0x0f) * 4;
        proto = h[9];
    } else if ((h[0] >> 4) == 6) {
        __u32 t = ipv6_transport(skb, nh, h[6]);
        th = t & 0xffff;
        proto = t >> 16;
        if (!th)
            return;
    } else {
        return;
    }
    if (proto != a->arg)
        return;
    __u16 p[2];
    if (bpf_skb_load_bytes(skb, th, p, 4) < 0)
        return;
    __u16 ns = (p[0] & ~a->u.l4.src_mask) | (a->u.l4.src & a->u.l4.src_mask);
    __u16 nd = (p[1] & ~a->u.l4.dst_mask) | (a->u.l4.dst & a->u.l4.dst_mask);
    __u32 csum = l4_csum_offset(proto);
    __u64 flags = 2 | (proto == PROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0);
    if (csum && ns != p[0])
        bpf_l4_csum_replace(skb, th + csum, p[0], ns, flags);
    if (csum && nd != p[1])
        bpf_l4_csum_replace(skb, th + csum, p[1], nd, flags);
    p[0] = ns;
    p[1] = nd;
    bpf_skb_store_bytes(skb, th, p, 4, 0);
}

/* Moves a VLAN tag the kernel keeps outside the data into the frame, so that encap
 * carries it inside the tunnel. IP frames grow after the MAC header (the kernel's
 * network header stays right for GSO); others grow at the head. */
static __always_inline int vlan_into_data(struct __sk_buff *skb, int is_ip)
{
    if (!skb->vlan_present)
        return 0;
    __u16 tag[3];
    tag[0] = (__u16)skb->vlan_proto;
    tag[1] = bpf_htons((__u16)skb->vlan_tci);
    if (bpf_skb_load_bytes(skb, 12, &tag[2], 2) < 0 || bpf_skb_vlan_pop(skb) < 0)
        return -1;
    if (is_ip) {
        if (bpf_skb_adjust_room(skb, 4, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_FIXED_GSO) < 0)
            return -1;
        return bpf_skb_store_bytes(skb, 12, tag, 6, 0);
    }
    __u8 macs[12];
    if (bpf_skb_change_head(skb, 4, 0) < 0 || bpf_skb_load_bytes(skb, 4, macs, 12) < 0 ||
        bpf_skb_store_bytes(skb, 0, macs, 12, 0) < 0)
        return -1;
    return bpf_skb_store_bytes(skb, 12, tag, 4, 0);
}

static __always_inline __u16 ip_checksum(__u8 *ip)
{
    __u32 s = 0;
#pragma unroll
    for (int i = 0; i < 20; i += 2)
        s += ((__u32)ip[i] << 8) | ip[i + 1];
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return ~s & 0xffff;
}

static __always_inline int is_ip_skb(struct __sk_buff *skb)
{
    return skb->protocol == bpf_htons(ETH_P_IP_) || skb->protocol == bpf_htons(ETH_P_IPV6_);
}

/* The inner packet's TOS (IPv4) or traffic class (IPv6) as it is now, after any
 * rewrite of the rule: what the outer ECN bits come from (the kernel's
 * ip_tunnel_ecn_encap reads the inner header at transmit). 0 for other frames. */
static __always_inline __u8 inner_dsfield(struct __sk_buff *skb)
{
    __u8 h[2];
    if (bpf_skb_load_bytes(skb, l3_offset(skb), h, 2) < 0)
        return 0;
    if (skb->protocol == bpf_htons(ETH_P_IP_) && (h[0] >> 4) == 4)
        return h[1];
    if (skb->protocol == bpf_htons(ETH_P_IPV6_) && (h[0] >> 4) == 6)
        return (h[0] << 4) | (h[1] >> 4);
    return 0;
}

/* Prepends the shared entry's outer headers. IP frames go through adjust_room with the
 * encap flags (GSO superpackets become UDP-tunnel GSO); other frames (ARP) are never
 * GSO and get the headers pushed at the head. */
static __always_inline int encap(struct __sk_buff *skb, __u32 id)
{
    struct esw_encap *e = bpf_map_lookup_elem(&esw_encaps, &id);
    if (!e || e->ipv6 || e->length != VXLAN_IPV4_OVERHEAD)
        return -1;
    int is_ip = is_ip_skb(skb);
    if (vlan_into_data(skb, is_ip) < 0)
        return -1;
    __u8 inner_tos = inner_dsfield(skb);
    __u8 inner_eth[14];
    if (bpf_skb_load_bytes(skb, 0, inner_eth, 14) < 0)
        return -1;
    __u32 inner_len = skb->len;
    __u8 h[VXLAN_IPV4_OVERHEAD];
    __builtin_memcpy(h, e->header, VXLAN_IPV4_OVERHEAD);
    /* ECN: a CE inner packet gives ECT(0) outside (RFC 6040). */
    __u8 ecn = inner_tos & 3;
    h[15] = (h[15] & ~3) | (ecn == 3 ? 2 : ecn);
    __u16 tot = inner_len + 36;
    h[16] = tot >> 8;
    h[17] = tot;
    __u16 ipid = bpf_ktime_get_ns() >> 10;
    h[18] = ipid >> 8;
    h[19] = ipid;
    h[24] = h[25] = 0;
    __u16 c = ip_checksum(h + 14);
    h[24] = c >> 8;
    h[25] = c;
    __u32 hash = bpf_get_hash_recalc(skb);
    __u16 sport = (__u16)(((__u64)hash * (61000 - 32768)) >> 32) + 32768;
    h[34] = sport >> 8;
    h[35] = sport;
    __u16 ulen = inner_len + 16;
    h[38] = ulen >> 8;
    h[39] = ulen;
    h[40] = h[41] = 0;
    if (!is_ip) {
        if (skb->gso_size || bpf_skb_change_head(skb, VXLAN_IPV4_OVERHEAD, 0) < 0)
            return -1;
        return bpf_skb_store_bytes(skb, 0, h, VXLAN_IPV4_OVERHEAD, 0);
    }
    __u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_UDP |
                  BPF_F_ADJ_ROOM_ENCAP_L2_ETH | BPF_F_ADJ_ROOM_ENCAP_L2(14);
    if (bpf_skb_adjust_room(skb, VXLAN_IPV4_OVERHEAD, BPF_ADJ_ROOM_MAC, flags) < 0)
        return -1;
    if (bpf_skb_store_bytes(skb, 0, h, VXLAN_IPV4_OVERHEAD, 0) < 0)
        return -1;
    return bpf_skb_store_bytes(skb, VXLAN_IPV4_OVERHEAD, inner_eth, 14, 0);
}

/* RFC 6040 on decapsulation, as the kernel's vxlan receive path does it
 * (INET_ECN_decapsulate) for an outer CE mark: the inner IP packet (by the inner
 * Ethernet type, as the kernel's skb->protocol) becomes CE, or is dropped (returns -1)
 * when it is not ECN-capable. `inner` is the inner Ethernet header's offset. */
static __always_inline int decap_ecn_ce(struct __sk_buff *skb, __u32 inner)
{
    __u8 t[2], v[2];
    __u32 nh = inner + 14;
    if (bpf_skb_load_bytes(skb, inner + 12, t, 2) < 0 || bpf_skb_load_bytes(skb, nh, v, 2) < 0)
        return 0;
    __u16 type = ((__u16)t[0] << 8) | t[1];
    if (type == ETH_P_IP_ && (v[0] >> 4) == 4) {
        if ((v[1] & 3) == 0)
            return -1;
        if ((v[1] & 3) == 3)
            return 0;
        __u16 o16 = ((__u16)v[0] << 8) | v[1];
        __u8 tos = v[1] | 3;
        __u16 n16 = ((__u16)v[0] << 8) | tos;
        bpf_l3_csum_replace(skb, nh + 10, bpf_htons(o16), bpf_htons(n16), 2);
        bpf_skb_store_bytes(skb, nh + 1, &tos, 1, 0);
    } else if (type == ETH_P_IPV6_ && (v[0] >> 4) == 6) {
        __u8 ecn = (v[1] >> 4) & 3;
        if (ecn == 0)
            return -1;
        if (ecn == 3)
            return 0;
        __u8 b = v[1] | 0x30;
        bpf_skb_store_bytes(skb, nh + 1, &b, 1, 0);
    }
    return 0;
}

#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV6
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)
#endif

/* Strips the outer headers. Returns 1 when skb->protocol could not be set to the inner
 * one (not IP): the output must then go through a netdev that reclassifies the frame. */
static __always_inline int decap(struct __sk_buff *skb, __u32 outer, __u16 inner_type)
{
    __u8 inner_eth[14];
    if (outer != VXLAN_IPV4_OVERHEAD || bpf_skb_load_bytes(skb, outer, inner_eth, 14) < 0)
        return -1;
    __u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO;
    if (inner_type == ETH_P_IP_)
        flags |= BPF_F_ADJ_ROOM_DECAP_L3_IPV4;
    else if (inner_type == ETH_P_IPV6_)
        flags |= BPF_F_ADJ_ROOM_DECAP_L3_IPV6;
    if (bpf_skb_adjust_room(skb, -(__s32)VXLAN_IPV4_OVERHEAD, BPF_ADJ_ROOM_MAC, flags) < 0)
        return -1;
    if (bpf_skb_store_bytes(skb, 0, inner_eth, 14, 0) < 0)
        return -1;
    return inner_type == ETH_P_IP_ || inner_type == ETH_P_IPV6_ ? 0 : 1;
}

#endif
