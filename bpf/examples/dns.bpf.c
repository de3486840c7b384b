/* The slides' DNS-style responder: a UDP/IPv4 frame to port 53 goes back where it came
 * from with MAC, IP addresses and UDP ports swapped and the NXDOMAIN rcode set in the
 * DNS header's flags (payload bytes 2-3). Other frames pass. Swapping addresses and
 * ports leaves both checksums valid; the flags change is patched into the UDP sum. */
#include "esw_prog.h"
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>

#define L4 (ETH_HLEN + sizeof(struct iphdr))

SEC("dns")
int esw_dns_nxdomain(struct __sk_buff *skb)
{
    struct ethhdr eth;
    struct iphdr ip;
    struct udphdr udp;
    __u16 flags;
    if (bpf_skb_load_bytes(skb, 0, &eth, sizeof eth) < 0 || eth.h_proto != bpf_htons(ETH_P_IP) ||
        bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof ip) < 0 || ip.ihl != 5 || ip.protocol != IPPROTO_UDP ||
        bpf_skb_load_bytes(skb, L4, &udp, sizeof udp) < 0 || udp.dest != bpf_htons(53) ||
        bpf_skb_load_bytes(skb, L4 + 8 + 2, &flags, 2) < 0)
        return esw_pass(skb);
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
    __u16 old = flags;
    flags |= bpf_htons(0x8003); /* QR (a response), rcode 3 NXDOMAIN */
    bpf_skb_store_bytes(skb, 0, &eth, sizeof eth, 0);
    bpf_skb_store_bytes(skb, ETH_HLEN, &ip, sizeof ip, 0);
    bpf_skb_store_bytes(skb, L4, &udp, sizeof udp, 0);
    bpf_skb_store_bytes(skb, L4 + 8 + 2, &flags, 2, 0);
    /* The helper leaves a checksum the sender left to offload (CHECKSUM_PARTIAL) alone. */
    if (udp.check)
        bpf_l4_csum_replace(skb, L4 + 6, old, flags, 2 | BPF_F_MARK_MANGLED_0);
    return esw_tx(skb);
}

char LICENSE[] SEC("license") = "GPL";
