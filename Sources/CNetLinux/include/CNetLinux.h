// The C shim: only what Swift cannot call directly (variadic ioctl, function-like
// macros behind ioctl numbers, struct ifreq's unions). Every name starts with cnl_.
#ifndef C_NET_LINUX_H
#define C_NET_LINUX_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/mman.h>
#include <malloc.h>   // malloc_trim, mallopt (eswd returns freed memory)
#include <linux/if_packet.h>
#include <linux/if_ether.h>
#include <linux/virtio_net.h>
#include <net/if.h>

// A prefetch of the cache line at p (the compiler's builtin, which Swift cannot name):
// a look-up issues it for a miss it will need later, so that misses overlap.
static inline void cnl_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

// Faults the page holding p in for writing without changing a byte: an atomic
// read-modify-write of zero, which other threads' writes to the same byte cannot
// interleave with. Unlike madvise(MADV_POPULATE_WRITE) it takes no lock of the whole
// address space (a fault locks only its own mapping). A plain atomic OR of zero would not
// do: compilers may turn an idempotent one into a load, and a read fault maps the shared
// zero page instead of a page of the mapping's own.
static inline void cnl_touch_page(void *p) {
#if defined(__x86_64__)
    __asm__ volatile("lock orb $0, %0" : "+m"(*(volatile char *)p) : : "memory");
#else
    char v = __atomic_load_n((char *)p, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n((char *)p, &v, v, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
#endif
}

// TUN/TAP (linux/if_tun.h)
int cnl_tun_open(const char *name, int flags, char out_name[IFNAMSIZ]);
int cnl_tun_set_vnet_header_size(int fd, int size);
int cnl_tun_set_offload(int fd, unsigned int flags);
int cnl_tun_device_netns(int fd);
int cnl_tun_set_carrier(int fd, int on);
int cnl_tun_name(int fd, char out_name[IFNAMSIZ]);
int cnl_tun_set_hwaddr(int fd, const uint8_t mac[6]);
int cnl_tun_get_hwaddr(int fd, uint8_t mac[6]);
int cnl_tun_set_queue(int fd, int attach);
int cnl_gettid(void);

extern const int CNL_IFF_TAP;
extern const int CNL_IFF_NO_PI;
extern const int CNL_IFF_VNET_HDR;
extern const int CNL_IFF_MULTI_QUEUE;
extern const int CNL_IFF_NAPI;
extern const unsigned int CNL_TUN_F_CSUM;
extern const unsigned int CNL_TUN_F_TSO4;
extern const unsigned int CNL_TUN_F_TSO6;
extern const unsigned int CNL_TUN_F_TSO_ECN;
extern const unsigned int CNL_TUN_F_USO4;
extern const unsigned int CNL_TUN_F_USO6;

// Interface ioctls on any socket (struct ifreq by name).
int cnl_if_index(int sock, const char *name);
int cnl_if_get_mtu(int sock, const char *name);
int cnl_if_set_mtu(int sock, const char *name, int mtu);
int cnl_if_get_flags(int sock, const char *name);
int cnl_if_set_flags(int sock, const char *name, int flags);
int cnl_if_get_hwaddr(int sock, const char *name, uint8_t mac[6]);
int cnl_if_set_hwaddr(int sock, const char *name, const uint8_t mac[6]);

// AF_PACKET
int cnl_packet_bind(int fd, int ifindex, uint16_t protocol);
extern const int CNL_PACKET_FANOUT_HASH;

// sendmmsg/recvmmsg need _GNU_SOURCE, which the module map cannot set.
struct cnl_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};
int cnl_sendmmsg(int fd, struct cnl_mmsghdr *msgs, unsigned int count, int flags);
int cnl_recvmmsg(int fd, struct cnl_mmsghdr *msgs, unsigned int count, int flags);

// setns(CLONE_NEWNET) needs _GNU_SOURCE too.
int cnl_setns_net(int fd);
int cnl_set_thread_name(const char *name);
/* Moves the calling thread off `cpu` (to another CPU its affinity allows) and gives
 * the affinity back (every CPU if it had every online one): 0 when it moved, -1 when it
 * could not (errno) or had nowhere to go, -2 when it moved but the affinity could not
 * be given back. CPU_* macros and sched_setaffinity need _GNU_SOURCE. */
int cnl_move_off_cpu(int cpu);
/* sched_getcpu(), and a connected socket's peer pid (SO_PEERCRED; -1 if unknown):
 * both need _GNU_SOURCE. */
int cnl_current_cpu(void);
int cnl_peer_pid(int sock);
/* Pins the calling thread to `cpu` (`off` 0), or to every other CPU (`off` 1), within
 * its affinity (kept in `saved`, a 128-byte buffer, the first time: *has_saved is then
 * set); cpu < 0 gives the kept affinity back. 0, or -1 (errno, or no CPU left). */
int cnl_pin_self(int cpu, int off, void *saved, int *has_saved);

// UDP tunnel sockets: the receive side's ancillary data (IP_PKTINFO, IP_TOS, IP_TTL)
// and sending a prebuilt IPv4 packet on a raw socket.
int cnl_udp_tunnel_socket(uint16_t port);
void cnl_udp_tunnel_info(const struct msghdr *msg, uint32_t *dst, uint8_t *tos, uint8_t *ttl);
/* The VLAN tag the kernel took off a received frame (PACKET_AUXDATA); returns 1 and
 * fills tci/tpid when there was one. */
int cnl_packet_auxdata_vlan(const struct msghdr *msg, uint16_t *tci, uint16_t *tpid);
/* Control-buffer bytes one PACKET_AUXDATA message needs. */
extern const int CNL_PACKET_AUXDATA_SPACE;
/* PACKET_AUXDATA's VLAN tag (returns 1 when there is one) and the SO_RCVMARK mark
 * (skb->mark, 0 when absent) of one received message. */
int cnl_packet_cmsgs(const struct msghdr *msg, uint16_t *tci, uint16_t *tpid, uint32_t *mark);
/* Control-buffer bytes for PACKET_AUXDATA plus an SO_RCVMARK mark. */
extern const int CNL_PACKET_CMSG_SPACE;
int cnl_sendto_ipv4(int fd, const void *buf, size_t len, uint32_t dst_host_order);
int cnl_raw_ipv4_socket(void);
uint32_t cnl_sockaddr_in_addr(const void *sa);
uint16_t cnl_sockaddr_in_port(const void *sa);

// accept4() with SO_PEERCRED: the new fd (non-blocking) and the peer's uid.
int cnl_accept_peer(int fd, uint32_t *uid);

// Resets SIGINT/SIGTERM/SIGHUP/SIGQUIT to their default disposition and blocks them
// for the calling thread (and threads it creates later), unblocks every other signal,
// ignores SIGPIPE, and returns a signalfd that reports the blocked ones.
int cnl_termination_signalfd(void);
int cnl_signalfd_read(int fd);
int cnl_timerfd_periodic(int milliseconds);

// eventfd wakeups
int cnl_eventfd_signal(int fd);
int cnl_eventfd_drain(int fd);


#endif
