/* redirect_peer.bpf.c — the irreducible part of a switch in tc, for scripts/bench.sh:
 * every frame arriving on one host-side veth end goes straight into the namespace at
 * the other end (bpf_redirect_peer), with no parsing, lookup or counting. Built with
 * -DTARGET_IFINDEX=N for each direction. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tc")
int redirect_peer(struct __sk_buff *skb)
{
    return bpf_redirect_peer(TARGET_IFINDEX, 0);
}
