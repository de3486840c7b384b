/* xskfn.c — the placement study's kernel-bypass placement: the function in a VM's user
 * space behind an AF_XDP socket (libxdp's xsk API). Loads OBJ (vm_xdp.bpf.c built with
 * -DAF_XDP: the function's frames to xsks_map, the rest passes) on IFNAME in generic
 * mode, binds a socket to queue 0 in copy mode (a veth has no zero-copy) and runs the
 * function on every frame: LOOPS >= 0 rounds of work then drop, LOOPS = -1 the DNS-style
 * responder (swap MAC/IP/UDP ports, QR|NXDOMAIN, back out through the TX ring). Appends
 * the frames handled so far to COUNTFILE every 100 ms. Stops on SIGTERM/SIGINT.
 *
 *   xskfn IFNAME OBJ LOOPS COUNTFILE */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <xdp/xsk.h>

#define FRAMES 4096
#define FRAME_SIZE XSK_UMEM__DEFAULT_FRAME_SIZE
#define BATCH 64

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void respond(unsigned char *p, unsigned len)
{
    if (len < 14 + 20 + 8 + 4)
        return;
    unsigned char t[6];
    memcpy(t, p, 6); memcpy(p, p + 6, 6); memcpy(p + 6, t, 6);
    unsigned char a[4];
    memcpy(a, p + 26, 4); memcpy(p + 26, p + 30, 4); memcpy(p + 30, a, 4);
    unsigned char q[2];
    memcpy(q, p + 34, 2); memcpy(p + 34, p + 36, 2); memcpy(p + 36, q, 2);
    p[40] = p[41] = 0;           /* UDP checksum: none */
    p[42 + 2] |= 0x80;           /* QR */
    p[42 + 3] |= 0x03;           /* NXDOMAIN */
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: xskfn IFNAME OBJ LOOPS COUNTFILE\n");
        return 2;
    }
    const char *ifname = argv[1];
    int loops = atoi(argv[3]);
    int ifindex = if_nametoindex(ifname);
    struct bpf_object *obj = bpf_object__open_file(argv[2], NULL);
    if (!obj || bpf_object__load(obj)) {
        fprintf(stderr, "xskfn: cannot load %s\n", argv[2]);
        return 1;
    }
    struct bpf_program *prog = bpf_object__next_program(obj, NULL);
    int map = bpf_object__find_map_fd_by_name(obj, "xsks_map");
    if (!prog || map < 0 || bpf_xdp_attach(ifindex, bpf_program__fd(prog), XDP_FLAGS_SKB_MODE, NULL)) {
        fprintf(stderr, "xskfn: cannot attach XDP to %s\n", ifname);
        return 1;
    }
    void *buf = mmap(NULL, (size_t)FRAMES * FRAME_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct xsk_ring_prod fq, tx;
    struct xsk_ring_cons cq, rx;
    struct xsk_umem *umem;
    struct xsk_socket *xsk;
    if (buf == MAP_FAILED || xsk_umem__create(&umem, buf, (size_t)FRAMES * FRAME_SIZE, &fq, &cq, NULL)) {
        fprintf(stderr, "xskfn: umem\n");
        return 1;
    }
    struct xsk_socket_config cfg = {
        .rx_size = XSK_RING_CONS__DEFAULT_NUM_DESCS, .tx_size = XSK_RING_PROD__DEFAULT_NUM_DESCS,
        .libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD, .xdp_flags = XDP_FLAGS_SKB_MODE, .bind_flags = XDP_COPY,
    };
    /* The previous socket on the queue is released asynchronously: EBUSY for a moment. */
    int err;
    for (int tries = 0; (err = xsk_socket__create(&xsk, ifname, 0, umem, &rx, &tx, &cfg)) == -EBUSY && tries < 50; tries++)
        usleep(100000);
    if (err) {
        fprintf(stderr, "xskfn: xsk_socket__create: %s\n", strerror(-err));
        bpf_xdp_detach(ifindex, XDP_FLAGS_SKB_MODE, NULL);
        return 1;
    }
    int key = 0, fd = xsk_socket__fd(xsk);
    bpf_map_update_elem(map, &key, &fd, 0);
    /* Half the frames to the fill ring (receive), half free for nothing else: responses
     * go out in the frame they came in. */
    unsigned idx;
    unsigned nfill = XSK_RING_PROD__DEFAULT_NUM_DESCS;
    if (xsk_ring_prod__reserve(&fq, nfill, &idx) != nfill)
        return 1;
    for (unsigned i = 0; i < nfill; i++)
        *xsk_ring_prod__fill_addr(&fq, idx + i) = (unsigned long long)i * FRAME_SIZE;
    xsk_ring_prod__submit(&fq, nfill);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    FILE *count = fopen(argv[4], "a");
    unsigned long long handled = 0;
    double next = now();
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    while (!stop) {
        double t = now();
        if (t >= next) {
            fprintf(count, "%llu\n", handled);
            fflush(count);
            next = t + 0.1;
        }
        /* Frames sent: back to the fill ring. */
        unsigned cidx, done = xsk_ring_cons__peek(&cq, BATCH, &cidx);
        if (done) {
            unsigned fidx;
            while (xsk_ring_prod__reserve(&fq, done, &fidx) != done)
                ;
            for (unsigned i = 0; i < done; i++)
                *xsk_ring_prod__fill_addr(&fq, fidx + i) = *xsk_ring_cons__comp_addr(&cq, cidx + i);
            xsk_ring_prod__submit(&fq, done);
            xsk_ring_cons__release(&cq, done);
        }
        unsigned ridx, n = xsk_ring_cons__peek(&rx, BATCH, &ridx);
        if (!n) {
            poll(&pfd, 1, 10);
            continue;
        }
        unsigned fidx = 0, tidx = 0, ndrop = 0, nsend = 0;
        unsigned long long drops[BATCH], sends[BATCH];
        unsigned lens[BATCH];
        for (unsigned i = 0; i < n; i++) {
            const struct xdp_desc *d = xsk_ring_cons__rx_desc(&rx, ridx + i);
            unsigned char *p = xsk_umem__get_data(buf, d->addr);
            if (loops < 0) {
                respond(p, d->len);
                sends[nsend] = d->addr;
                lens[nsend++] = d->len;
            } else {
                volatile unsigned sum = p[26];
                for (int k = 1; k < loops; k++)
                    sum = (sum << 1 | sum >> 31) ^ (p[34] + k);
                drops[ndrop++] = d->addr;
            }
        }
        xsk_ring_cons__release(&rx, n);
        handled += n;
        if (ndrop) {
            while (xsk_ring_prod__reserve(&fq, ndrop, &fidx) != ndrop)
                ;
            for (unsigned i = 0; i < ndrop; i++)
                *xsk_ring_prod__fill_addr(&fq, fidx + i) = drops[i];
            xsk_ring_prod__submit(&fq, ndrop);
        }
        if (nsend && xsk_ring_prod__reserve(&tx, nsend, &tidx) != nsend) {
            /* The TX ring is full: these answers are lost, their frames go back. */
            while (xsk_ring_prod__reserve(&fq, nsend, &fidx) != nsend)
                ;
            for (unsigned i = 0; i < nsend; i++)
                *xsk_ring_prod__fill_addr(&fq, fidx + i) = sends[i];
            xsk_ring_prod__submit(&fq, nsend);
            nsend = 0;
        }
        if (nsend) {
            for (unsigned i = 0; i < nsend; i++) {
                struct xdp_desc *d = xsk_ring_prod__tx_desc(&tx, tidx + i);
                d->addr = sends[i];
                d->len = lens[i];
            }
            xsk_ring_prod__submit(&tx, nsend);
            sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0);
        }
    }
    fprintf(count, "%llu\n", handled);
    fclose(count);
    /* The map holds the socket (and with it the queue) until the map goes: empty it
     * first, so the next socket can bind at once. */
    bpf_xdp_detach(ifindex, XDP_FLAGS_SKB_MODE, NULL);
    bpf_map_delete_elem(map, &key);
    xsk_socket__delete(xsk);
    xsk_umem__delete(umem);
    bpf_object__close(obj);
    return 0;
}
