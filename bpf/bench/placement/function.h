/* function.h — the slides' functions, written once for every placement (nic.bpf.c: the
 * NIC's tc stage; vm_xdp.bpf.c: XDP on the VF in the VM). The placement defines
 * LOAD(off, ptr, len) and STORE(off, ptr, len) over its frame, then includes this.
 *
 * Chosen at compile time: -DFUNC_DNS (the DNS-style responder) or -DLOOP_N=n (n rounds
 * of work, then drop; LOOP_N=0 is "drop all"). Only UDP to port 9 (loop/drop) or 53
 * (dns) is the function's: everything else passes, so the neighbours' traffic and ARP
 * go on. Returns FN_PASS, FN_DROP or FN_TX. */
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>

#define FN_PASS 0
#define FN_DROP 1
#define FN_TX   2
#define FN_L4 (ETH_HLEN + sizeof(struct iphdr))

#ifdef FUNC_DNS
#define FN_PORT 53
#else
#define FN_PORT 9
#ifndef LOOP_N
#define LOOP_N 0
#endif
#endif

static __always_inline int function(void *ctx)
{
    struct ethhdr eth;
    struct iphdr ip;
    struct udphdr udp;
    if (LOAD(0, &eth, sizeof eth) < 0 || eth.h_proto != bpf_htons(ETH_P_IP) ||
        LOAD(ETH_HLEN, &ip, sizeof ip) < 0 || ip.ihl != 5 || ip.protocol != IPPROTO_UDP ||
        LOAD(FN_L4, &udp, sizeof udp) < 0 || udp.dest != bpf_htons(FN_PORT))
        return FN_PASS;
#ifdef FUNC_DNS
    __u16 flags;
    if (LOAD(FN_L4 + 8 + 2, &flags, 2) < 0)
        return FN_PASS;
    __u8 mac[ETH_ALEN];
    __builtin_memcpy(mac, eth.h_dest, ETH_ALEN);
    __builtin_memcpy(eth.h_dest, eth.h_source, ETH_ALEN);
    __builtin_memcpy(eth.h_source, mac, ETH_ALEN);
    __u32 a = ip.saddr;
    ip.saddr = ip.daddr;
    ip.daddr = a;
    __u16 p = udp.source;
    udp.source = udp.dest;
    udp.dest = p;
    flags |= bpf_htons(0x8003);
    /* The generators send UDP without a checksum (0): nothing to patch. */
    udp.check = 0;
    STORE(0, &eth, sizeof eth);
    STORE(ETH_HLEN, &ip, sizeof ip);
    STORE(FN_L4, &udp, sizeof udp);
    STORE(FN_L4 + 8 + 2, &flags, 2);
    return FN_TX;
#else
    volatile __u32 sum = ip.saddr;
    for (int i = 1; i < LOOP_N; i++)
        sum = (sum << 1 | sum >> 31) ^ (udp.source + i);
    return FN_DROP;
#endif
}
