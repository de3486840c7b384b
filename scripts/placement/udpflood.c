/* udpflood.c — the placement study's load generator: minimum-sized UDP/IPv4 frames
 * (64 bytes on the wire, no UDP checksum) sent with AF_PACKET sendmmsg in batches of 64,
 * as fast as it can or at RATE frames/s, for SECONDS; prints the frames sent.
 *
 *   udpflood IFNAME SRC_MAC DST_MAC SRC_IP DST_IP DST_PORT SECONDS [RATE]
 *
 * The payload is a DNS-like header (id, flags 0x0100) so the responder has a query. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define FRAME 60 /* + 4 bytes FCS on a wire = 64 */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int parse_mac(const char *s, uint8_t *m)
{
    return sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) == 6 ? 0 : -1;
}

static uint16_t ip_checksum(const uint8_t *h)
{
    uint32_t s = 0;
    for (int i = 0; i < 20; i += 2)
        s += (h[i] << 8) | h[i + 1];
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return ~s;
}

int main(int argc, char **argv)
{
    if (argc < 8) {
        fprintf(stderr, "usage: udpflood IFNAME SRC_MAC DST_MAC SRC_IP DST_IP DST_PORT SECONDS [RATE]\n");
        return 2;
    }
    uint8_t frames[BATCH][FRAME];
    uint8_t src[6], dst[6];
    struct in_addr sip, dip;
    if (parse_mac(argv[2], src) || parse_mac(argv[3], dst) || !inet_aton(argv[4], &sip) || !inet_aton(argv[5], &dip)) {
        fprintf(stderr, "udpflood: bad address\n");
        return 2;
    }
    int port = atoi(argv[6]);
    double seconds = atof(argv[7]), rate = argc > 8 ? atof(argv[8]) : 0;
    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    if (fd < 0) {
        perror("socket");
        return 1;
    }
    struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_ifindex = if_nametoindex(argv[1]), .sll_halen = 6 };
    memcpy(ll.sll_addr, dst, 6);
    for (int i = 0; i < BATCH; i++) {
        uint8_t *f = frames[i];
        memset(f, 0, FRAME);
        memcpy(f, dst, 6);
        memcpy(f + 6, src, 6);
        f[12] = 0x08;
        uint8_t *ip = f + 14;
        ip[0] = 0x45;
        ip[3] = FRAME - 14;
        ip[8] = 64;
        ip[9] = 17;
        memcpy(ip + 12, &sip, 4);
        memcpy(ip + 16, &dip, 4);
        uint16_t c = ip_checksum(ip);
        ip[10] = c >> 8;
        ip[11] = c & 0xff;
        uint8_t *udp = ip + 20;
        uint16_t sport = 10000 + i;
        udp[0] = sport >> 8;
        udp[1] = sport & 0xff;
        udp[2] = port >> 8;
        udp[3] = port & 0xff;
        udp[5] = FRAME - 34;
        udp[8] = i;      /* DNS id */
        udp[10] = 0x01;  /* flags: RD */
    }
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = frames[i];
        iov[i].iov_len = FRAME;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &ll;
        msgs[i].msg_hdr.msg_namelen = sizeof ll;
    }
    double start = now(), end = start + seconds;
    unsigned long long sent = 0;
    for (;;) {
        double t = now();
        if (t >= end)
            break;
        int n = BATCH;
        if (rate > 0) {
            double due = (t - start) * rate - sent;
            if (due < 1) {
                usleep(100);
                continue;
            }
            if (due < n)
                n = (int)due;
        }
        int r = sendmmsg(fd, msgs, n, 0);
        if (r > 0)
            sent += r;
    }
    printf("%llu\n", sent);
    return 0;
}
