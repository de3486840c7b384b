// forward.c — the least a userspace software path does: frames read from one netdev
// with AF_PACKET (recvmmsg, up to 32 at a time) are written unchanged to the other
// (sendmmsg), both ways, no lookup. `scripts/bench.sh swpath` runs it on esw's
// representors and on a plain veth pair beside esw's datapath and OVS: what is left
// when a switch does nothing but move frames over the same netdevs.
//
// Usage: forward DEV_A DEV_B (runs until killed)
//
// The virtio-net header rides along (PACKET_VNET_HDR): checksum-offloaded frames and
// GSO superframes keep their offload state, as OVS's netdev-linux and eswd keep it.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define BATCH 32
#define FRAME (65536 + 64)   /* a GSO superframe and its virtio-net header */

static int open_port(const char *dev) {
    int one = 1;
    int s = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
    if (s < 0) { perror("socket"); return -1; }
    // Not our own transmissions back: the other direction's socket is bound here too.
    if (setsockopt(s, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) ||
        setsockopt(s, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one)) { perror("setsockopt"); return -1; }
    struct sockaddr_ll a = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
                             .sll_ifindex = (int)if_nametoindex(dev) };
    if (!a.sll_ifindex || bind(s, (struct sockaddr *)&a, sizeof a)) { perror(dev); return -1; }
    return s;
}

static char frames[BATCH][FRAME];

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: forward DEV_A DEV_B\n"); return 2; }
    int port[2] = { open_port(argv[1]), open_port(argv[2]) };
    if (port[0] < 0 || port[1] < 0) return 1;
    int ep = epoll_create1(0);
    for (int i = 0; i < 2; i++) {
        struct epoll_event e = { .events = EPOLLIN, .data.u32 = (unsigned)i };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, port[i], &e)) { perror("epoll_ctl"); return 1; }
    }
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    for (;;) {
        struct epoll_event ready[2];
        int n = epoll_wait(ep, ready, 2, -1);
        if (n < 0 && errno != EINTR) { perror("epoll_wait"); return 1; }
        for (int k = 0; k < n; k++) {
            int in = (int)ready[k].data.u32, out = port[!in];
            for (;;) {
                memset(msgs, 0, sizeof msgs);
                for (int i = 0; i < BATCH; i++) {
                    iov[i] = (struct iovec){ frames[i], FRAME };
                    msgs[i].msg_hdr.msg_iov = &iov[i];
                    msgs[i].msg_hdr.msg_iovlen = 1;
                }
                int got = recvmmsg(port[in], msgs, BATCH, 0, NULL);
                if (got <= 0) break;
                for (int i = 0; i < got; i++) iov[i].iov_len = msgs[i].msg_len;
                // A full socket on the far side drops the rest, as a switch's tx does.
                (void)sendmmsg(out, msgs, (unsigned)got, 0);
                if (got < BATCH) break;
            }
        }
    }
}
