/* The function in the VM's driver (XDP on the VF netdev inside the VM's namespace), or,
 * with -DAF_XDP, the kernel half of the kernel-bypass placement: the function's frames go
 * to the AF_XDP socket of the queue (xsks_map), the rest passes. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define LOAD(off, p, n) bpf_xdp_load_bytes(ctx, off, p, n)
#define STORE(off, p, n) bpf_xdp_store_bytes(ctx, off, p, n)
#include "function.h"

#ifdef AF_XDP
struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u32);
} xsks_map SEC(".maps");
#endif

SEC("xdp")
int placement_xdp(struct xdp_md *xdp)
{
    void *ctx = xdp;
#ifdef AF_XDP
    struct ethhdr eth;
    struct iphdr ip;
    struct udphdr udp;
    if (LOAD(0, &eth, sizeof eth) < 0 || eth.h_proto != bpf_htons(ETH_P_IP) ||
        LOAD(ETH_HLEN, &ip, sizeof ip) < 0 || ip.protocol != IPPROTO_UDP ||
        LOAD(FN_L4, &udp, sizeof udp) < 0 || udp.dest != bpf_htons(FN_PORT))
        return XDP_PASS;
    return bpf_redirect_map(&xsks_map, xdp->rx_queue_index, XDP_PASS);
#else
    switch (function(ctx)) {
    case FN_DROP: return XDP_DROP;
    case FN_TX: return XDP_TX;
    default: return XDP_PASS;
    }
#endif
}

char LICENSE[] SEC("license") = "GPL";
