/* parse.h — the hardware parser: fills the flow key from a frame with the datapath's
 * semantics (Sources/Packet/FlowExtractor.swift: VLAN, LLC/SNAP, IPv4 with fragments,
 * IPv6 with extension headers, TCP/UDP/SCTP/ICMP/ICMPv6, ARP) and recognises VXLAN on
 * the registered UDP ports of the uplink. Truncated headers leave their fields zero. */
#ifndef ESW_PARSE_H
#define ESW_PARSE_H

#define ETH_P_IP_     0x0800
#define ETH_P_ARP_    0x0806
#define ETH_P_RARP_   0x8035
#define ETH_P_8021Q_  0x8100
#define ETH_P_8021AD_ 0x88a8
#define ETH_P_IPV6_   0x86dd
#define ETH_P_802_2_  0x0005
#define VLAN_PRESENT  0x1000

#define PROTO_ICMP 1
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_SCTP 132
#define PROTO_ICMPV6 58
#define PROTO_FRAGMENT 44
#define PROTO_NONE 59

struct esw_parsed {
    __u32 l3;          /* offset of the network header in the packet data */
    __u32 l4;          /* offset of the transport header, 0 when there is none */
    __u32 outer;       /* VXLAN: offset of the inner Ethernet header, else 0 */
    __u16 eth_type;
    __u8 proto;
    __u8 frag;
};

/* Reads `len` (a constant) bytes at `off`: straight from the linear data when they are
 * there (a memory read), else through the helper (paged data). */
static __always_inline int esw_load(struct __sk_buff *skb, __u32 off, void *to, const __u32 len)
{
    void *data = (void *)(long)skb->data;
    void *end = (void *)(long)skb->data_end;
    if (off <= 512 && data + off + len <= end) {
        __builtin_memcpy(to, data + off, len);
        return 0;
    }
    return bpf_skb_load_bytes(skb, off, to, len);
}

/* The `len` (a constant) bytes at `off`, in place in the linear data when they are there
 * (no copy), else copied through the helper into `buf` (paged data); 0 when the frame
 * is shorter. Fields are then read with the loads below. The parser's copies go to the
 * per-CPU scratch space (esw_scratch.chunk), a region per header: the stack of
 * esw_port_rx, which parses inline, has no room left (see ct.h). */
#define ESW_PB_ETH   0
#define ESW_PB_VLAN  16
#define ESW_PB_LLC   24
#define ESW_PB_L3    32   /* IPv4, IPv6 (40 bytes) or ARP */
#define ESW_PB_L4    72
static __always_inline const __u8 *esw_hdr(struct __sk_buff *skb, __u32 off, void *buf, const __u32 len)
{
    void *data = (void *)(long)skb->data;
    void *end = (void *)(long)skb->data_end;
    if (off <= 512 && data + off + len <= end)
        return data + off;
    if (bpf_skb_load_bytes(skb, off, buf, len) < 0)
        return 0;
    return buf;
}

/* Big-endian fields of a header esw_hdr returned: one load each, not one per byte, at
 * offsets aligned for the field's size within its header (the verifier takes unaligned
 * packet and map loads on x86, but the headers keep to what any copy would allow). */
typedef __u16 __attribute__((may_alias)) esw_u16_alias;
typedef __u32 __attribute__((may_alias)) esw_u32_alias;
typedef __u64 __attribute__((may_alias)) esw_u64_alias;

static __always_inline __u16 be16_at(const __u8 *h, __u32 off)
{
    return bpf_ntohs(*(const esw_u16_alias *)(h + off));
}

static __always_inline __u32 be32_at(const __u8 *h, __u32 off)
{
    return bpf_ntohl(*(const esw_u32_alias *)(h + off));
}

static __always_inline __u64 be64_at(const __u8 *h, __u32 off)
{
    return __builtin_bswap64(*(const esw_u64_alias *)(h + off));
}

static __always_inline int is_vlan(__u16 t) { return t == ETH_P_8021Q_ || t == ETH_P_8021AD_; }

static __always_inline __u64 mac_of(const __u8 *p)
{
    return ((__u64)p[0] << 40) | ((__u64)p[1] << 32) | ((__u64)p[2] << 24) | ((__u64)p[3] << 16) |
           ((__u64)p[4] << 8) | p[5];
}

static __always_inline void parse_transport(struct __sk_buff *skb, __u32 th, __u8 proto, __u8 icmp,
                                            struct esw_key *k, __u8 *buf)
{
    const __u8 *h;
    if (proto == PROTO_TCP) {
        if (!(h = esw_hdr(skb, th, buf + ESW_PB_L4, 14)))
            return;
        __u32 off_flags = be16_at(h, 12);
        __u32 doff = (off_flags >> 12) * 4;
        if (doff < 20 || skb->len < th + doff)
            return;
        __u32 ports = be32_at(h, 0);
        k->w[11] |= ((__u64)(ports >> 16) << 16) | ((__u64)(ports & 0xffff) << 32) |
                    ((__u64)(off_flags & 0x0fff) << 48);
    } else if (proto == PROTO_UDP || proto == PROTO_SCTP) {
        /* Only a whole header gives ports, as the kernel's key_extract has it (udphdr_ok,
         * sctphdr_ok: 8 and 12 bytes); ICMP and ICMPv6 likewise need their 8. */
        h = proto == PROTO_SCTP ? esw_hdr(skb, th, buf + ESW_PB_L4, 12) : esw_hdr(skb, th, buf + ESW_PB_L4, 8);
        if (!h)
            return;
        __u32 ports = be32_at(h, 0);
        k->w[11] |= ((__u64)(ports >> 16) << 16) | ((__u64)(ports & 0xffff) << 32);
    } else if (proto == icmp) {
        if (!(h = esw_hdr(skb, th, buf + ESW_PB_L4, 8)))
            return;
        k->w[11] |= ((__u64)h[0] << 16) | ((__u64)h[1] << 32);
    }
}

static __always_inline int is_ipv6_ext(__u8 h)
{
    return h == 0 || h == 43 || h == PROTO_FRAGMENT || h == 51 || h == PROTO_NONE || h == 60;
}

static __always_inline void parse_ipv6(struct __sk_buff *skb, __u32 nh, struct esw_key *k,
                                       struct esw_parsed *out, int udp_gso, __u8 *buf)
{
    const __u8 *h = esw_hdr(skb, nh, buf + ESW_PB_L3, 40);
    if (!h)
        return;
    __u32 first = be32_at(h, 0);
    __u8 proto = PROTO_NONE;
    k->w[11] |= (__u64)((first >> 20) & 0xff) | ((__u64)h[7] << 8);
    k->w[17] |= first & 0x000fffff;
    k->w[13] = be64_at(h, 8);
    k->w[14] = be64_at(h, 16);
    k->w[15] = be64_at(h, 24);
    k->w[16] = be64_at(h, 32);

    __u8 next = h[6];
    __u32 start = nh + 40;
    int saw_fragment = 0, later = 0, failed = 0;
#pragma unroll
    for (int i = 0; i < 6; i++) {
        if (!is_ipv6_ext(next) || next == PROTO_NONE)
            break;
        /* Byte copies here (extension headers are rare): in-place reads would double
         * the verifier's walk of these six steps. */
        __u8 e[4];
        if (esw_load(skb, start, e, 2) < 0) { failed = 1; break; }
        __u32 len;
        if (next == PROTO_FRAGMENT) {
            saw_fragment = 1;
            if (esw_load(skb, start, e, 4) < 0) { failed = 1; break; }
            __u16 fo = (((__u16)e[2] << 8) | e[3]) & ~7;
            if (fo != 0) {
                if (!is_ipv6_ext(e[0]) || e[0] == PROTO_NONE) {
                    later = 1;
                    next = e[0];
                    break;
                }
                failed = 1;
                break;
            }
            len = 8;
        } else if (next == 51) {
            len = ((__u32)e[1] + 2) << 2;
        } else {
            len = ((__u32)e[1] + 1) << 3;
        }
        next = e[0];
        start += len;
    }
    if (is_ipv6_ext(next) && next != PROTO_NONE && !later)
        failed = 1;   /* more extension headers than the parser walks */
    __u8 frag = 0;
    if (saw_fragment) {
        if (later) {
            k->w[10] |= ((__u64)PROTO_FRAGMENT << 48) | ((__u64)2 << 56);
            out->proto = PROTO_FRAGMENT;
            out->frag = 2;
            return;
        }
        frag = 1;
    }
    if (failed) {
        k->w[10] |= ((__u64)proto << 48) | ((__u64)frag << 56);
        return;
    }
    if (udp_gso && next == PROTO_UDP)
        frag = 1;
    k->w[10] |= ((__u64)next << 48) | ((__u64)frag << 56);
    out->proto = next;
    out->frag = frag;
    out->l4 = start;
    parse_transport(skb, start, next, PROTO_ICMPV6, k, buf);
}

static __always_inline void parse_ipv4(struct __sk_buff *skb, __u32 nh, struct esw_key *k,
                                       struct esw_parsed *out, int udp_gso, __u8 *buf)
{
    const __u8 *h = esw_hdr(skb, nh, buf + ESW_PB_L3, 20);
    if (!h)
        return;
    __u32 ihl = (h[0] & 0x0f) * 4;
    if (ihl < 20 || skb->len < nh + ihl)
        return;
    __u8 proto = h[9];
    k->w[12] = (__u64)be32_at(h, 12) | ((__u64)be32_at(h, 16) << 32);
    k->w[11] |= (__u64)h[1] | ((__u64)h[8] << 8);
    out->proto = proto;
    out->l4 = nh + ihl;
    __u16 frag_off = be16_at(h, 6);
    __u8 frag;
    if (frag_off & 0x1fff) {
        frag = 2;
        out->l4 = 0;
    } else {
        frag = ((frag_off & 0x2000) || (udp_gso && proto == PROTO_UDP)) ? 1 : 0;
    }
    k->w[10] |= ((__u64)proto << 48) | ((__u64)frag << 56);
    out->frag = frag;
    if (frag != 2)
        parse_transport(skb, nh + ihl, proto, PROTO_ICMP, k, buf);
}

static __always_inline void parse_arp(struct __sk_buff *skb, __u32 nh, struct esw_key *k, __u8 *buf)
{
    const __u8 *h = esw_hdr(skb, nh, buf + ESW_PB_L3, 28);
    if (!h)
        return;
    if (h[0] != 0 || h[1] != 1 || h[2] != 0x08 || h[3] != 0x00 || h[4] != 6 || h[5] != 4)
        return;
    __u16 op = be16_at(h, 6);
    /* The sender's address is not 4-byte aligned in the header: two halves. */
    __u32 spa = ((__u32)be16_at(h, 14) << 16) | be16_at(h, 16);
    __u32 tpa = be32_at(h, 24);
    k->w[10] |= (__u64)(op <= 0xff ? op : 0) << 48;
    k->w[12] = (__u64)spa | ((__u64)tpa << 32);
}

#define ESW_PARSE_OTHER 1   /* parse_l2(common_only): not an untagged IPv4 frame */

/* The parser's body. With `common_only` (a constant), it takes only what most frames
 * are, untagged IPv4 (a tag outside the data is fine), and returns ESW_PARSE_OTHER for
 * the rest before writing anything: esw_port_rx inlines that much and calls parse_frame
 * for the others (a call costs more than the parse of such a frame). */
static __always_inline int parse_l2(struct __sk_buff *skb, __u32 base, struct esw_key *k, struct esw_parsed *out,
                                    __u8 *buf, const int common_only)
{
    const __u8 *eth = esw_hdr(skb, base, buf + ESW_PB_ETH, 14);
    if (!eth)
        return common_only ? ESW_PARSE_OTHER : -1;
    __u16 type = be16_at(eth, 12);
    if (common_only && type != ETH_P_IP_)
        return ESW_PARSE_OTHER;
    __u64 dst = ((__u64)be32_at(eth, 0) << 16) | be16_at(eth, 4);
    __u64 src = ((__u64)be16_at(eth, 6) << 32) | be32_at(eth, 8);
    __u32 off = base + 12;
    __u64 vlan_tci = 0, vlan_tpid = 0, cvlan_tci = 0, cvlan_tpid = 0;
    int tags = 0;
    if (base == 0 && skb->vlan_present) {
        vlan_tpid = bpf_ntohs((__u16)skb->vlan_proto);
        vlan_tci = (skb->vlan_tci & 0xffff) | VLAN_PRESENT;
        tags = 1;
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
        if (common_only || tags >= 2 || !is_vlan(type))
            break;
        const __u8 *t = esw_hdr(skb, off, buf + ESW_PB_VLAN, 6);
        if (!t)
            break;
        __u16 tci = be16_at(t, 2);
        if (tags == 0) {
            vlan_tpid = type;
            vlan_tci = tci | VLAN_PRESENT;
        } else {
            cvlan_tpid = type;
            cvlan_tci = tci | VLAN_PRESENT;
        }
        tags++;
        off += 4;
        type = be16_at(t, 4);
    }
    off += 2;
    if (!common_only && type < 0x600) {
        const __u8 *llc = skb->len < off + 8 ? 0 : esw_hdr(skb, off, buf + ESW_PB_LLC, 8);
        if (!llc) {
            type = ETH_P_802_2_;
        } else if (llc[0] == 0xaa && llc[1] == 0xaa && (llc[3] | llc[4] | llc[5]) == 0) {
            __u16 snap = be16_at(llc, 6);
            if (snap >= 0x600) {
                type = snap;
                off += 8;
            } else {
                type = ETH_P_802_2_;
            }
        } else {
            type = ETH_P_802_2_;
        }
    }
    k->w[8] = src | (vlan_tci << 48);
    k->w[9] = dst | ((__u64)type << 48);
    k->w[10] = cvlan_tci | (vlan_tpid << 16) | (cvlan_tpid << 32);
    k->w[11] = 0;
    k->w[12] = 0;
    k->w[13] = k->w[14] = k->w[15] = k->w[16] = k->w[17] = 0;
    out->l3 = off;
    out->l4 = 0;
    out->eth_type = type;
    out->proto = 0;
    out->frag = 0;
    /* The kernel reports only UFO (SKB_GSO_UDP) superpackets as first fragments; a tc
     * program cannot tell UFO from UDP_L4 segmentation or a tunnel's GSO (no gso_type
     * in __sk_buff), and UFO is gone from senders: frames are keyed as they are. */
    int udp_gso = 0;
    if (common_only || type == ETH_P_IP_)
        parse_ipv4(skb, off, k, out, udp_gso, buf);
    else if (type == ETH_P_IPV6_)
        parse_ipv6(skb, off, k, out, udp_gso, buf);
    else if (type == ETH_P_ARP_ || type == ETH_P_RARP_)
        parse_arp(skb, off, k, buf);
    return 0;
}

/* Parses the frame at `base` into s->key: 0, the frame as it is, whose outer VLAN tag may
 * be one the kernel keeps outside the data (skb->vlan_tci), or the inner frame of a
 * VXLAN packet. Returns -1 when the frame is shorter than an Ethernet header. */
__noinline int parse_frame(struct __sk_buff *skb, __u32 base, struct esw_scratch *s, struct esw_parsed *out)
{
    if (!skb || !s || !out)
        return -1;
    return parse_l2(skb, base, &s->key, out, s->chunk, 0);
}

/* VXLAN on the uplink, on a registered UDP port (4789 when none is registered, for the
 * checksum fix of frames going to p0): fills the tunnel words. Returns the inner frame's
 * offset (the caller parses it; one call level less for the stack), or 0 when the packet
 * is not VXLAN the hardware may decap. Like mlx5 (which enforces the uplink
 * representor's MAC as the outer DMAC of decap rules) and like the host's stack, only
 * frames addressed to the VTEP's netdev, with a valid IPv4 header checksum and a UDP
 * length that is the IP payload's, are decapped here; the rest go to software as a miss,
 * where the kernel drops (or trims) them. The UDP checksum is not verified (nor by mlx5). */
__noinline int parse_vxlan(struct __sk_buff *skb, const struct esw_config *cfg, struct esw_key *k,
                           struct esw_parsed *out)
{
    __u8 h[50];
    if (!skb || !cfg || !k || !out)
        return 0;
    if (skb->vlan_present || esw_load(skb, 0, h, 34) < 0)
        return 0;
    if (h[12] != 0x08 || h[13] != 0x00)
        return 0;
    __u32 ihl = (h[14] & 0x0f) * 4;
    if ((h[14] >> 4) != 4 || ihl != 20 || h[23] != PROTO_UDP || ((((__u16)h[20] << 8) | h[21]) & 0x3fff) != 0)
        return 0;
    if (esw_load(skb, 0, h, 50) < 0)
        return 0;
    __u16 dport = ((__u16)h[36] << 8) | h[37];
    const __u16 *ports = cfg->vxlan_ports;
    if (dport == 0 || !(ports[0] ? dport == ports[0] || dport == ports[1] || dport == ports[2] || dport == ports[3]
                                 : dport == 4789))
        return 0;
    if (!(h[42] & 0x08) || skb->len < 50 + 14)
        return 0;
    /* Only to the VTEP netdev's MAC, and none while there is none (all zero). */
    const __u8 *vtep = cfg->vtep_mac;
    if (!(vtep[0] | vtep[1] | vtep[2] | vtep[3] | vtep[4] | vtep[5]) || h[0] != vtep[0] || h[1] != vtep[1] ||
        h[2] != vtep[2] || h[3] != vtep[3] || h[4] != vtep[4] || h[5] != vtep[5])
        return 0;
    __u32 sum = 0;
#pragma unroll
    for (int i = 14; i < 34; i += 2)
        sum += ((__u32)h[i] << 8) | h[i + 1];
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    __u32 total = ((__u32)h[16] << 8) | h[17];
    __u32 udp_len = ((__u32)h[38] << 8) | h[39];
    /* The IP packet holds the UDP and VXLAN headers and an inner Ethernet header (the
     * frame's own length may be more: padding the host trims). */
    if (sum != 0xffff || total < 20 + 8 + 8 + 14 || total + 14 > skb->len || udp_len + 20 != total)
        return 0;
    __u64 flags = 8;   /* key */
    if (h[20] & 0x40)
        flags |= 2;    /* df */
    if (h[40] | h[41])
        flags |= 4;    /* csum */
    __u32 src = ((__u32)h[26] << 24) | ((__u32)h[27] << 16) | ((__u32)h[28] << 8) | h[29];
    __u32 dst = ((__u32)h[30] << 24) | ((__u32)h[31] << 16) | ((__u32)h[32] << 8) | h[33];
    __u16 sport = ((__u16)h[34] << 8) | h[35];
    __u32 vni = ((__u32)h[46] << 16) | ((__u32)h[47] << 8) | h[48];
    k->w[0] = vni;
    k->w[1] = (__u64)src | ((__u64)dst << 32);
    k->w[2] = k->w[3] = k->w[4] = k->w[5] = 0;
    k->w[6] = (__u64)h[15] | ((__u64)h[22] << 8) | (flags << 16) | ((__u64)sport << 32) | ((__u64)dport << 48);
    out->outer = 50;
    return 50;
}

#endif
