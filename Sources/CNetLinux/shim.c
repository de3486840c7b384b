#define _GNU_SOURCE
#include "CNetLinux.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <linux/sockios.h>
#include <net/if_arp.h>
#include <linux/if_packet.h>

const int CNL_IFF_TAP = IFF_TAP;
const int CNL_IFF_NO_PI = IFF_NO_PI;
const int CNL_IFF_VNET_HDR = IFF_VNET_HDR;
const int CNL_IFF_MULTI_QUEUE = IFF_MULTI_QUEUE;
const int CNL_IFF_NAPI = IFF_NAPI;
const unsigned int CNL_TUN_F_CSUM = TUN_F_CSUM;
const unsigned int CNL_TUN_F_TSO4 = TUN_F_TSO4;
const unsigned int CNL_TUN_F_TSO6 = TUN_F_TSO6;
const unsigned int CNL_TUN_F_TSO_ECN = TUN_F_TSO_ECN;
#ifdef TUN_F_USO4
const unsigned int CNL_TUN_F_USO4 = TUN_F_USO4;
const unsigned int CNL_TUN_F_USO6 = TUN_F_USO6;
#else
const unsigned int CNL_TUN_F_USO4 = 0;
const unsigned int CNL_TUN_F_USO6 = 0;
#endif
const int CNL_PACKET_FANOUT_HASH = PACKET_FANOUT_HASH;

static void fill_name(struct ifreq *ifr, const char *name) {
    memset(ifr, 0, sizeof(*ifr));
    if (name) strncpy(ifr->ifr_name, name, IFNAMSIZ - 1);
}

int cnl_tun_open(const char *name, int flags, char out_name[IFNAMSIZ]) {
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -1;
    struct ifreq ifr;
    fill_name(&ifr, name);
    ifr.ifr_flags = (short)flags;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    memcpy(out_name, ifr.ifr_name, IFNAMSIZ);
    return fd;
}

int cnl_tun_set_vnet_header_size(int fd, int size) { return ioctl(fd, TUNSETVNETHDRSZ, &size); }
int cnl_tun_set_offload(int fd, unsigned int flags) { return ioctl(fd, TUNSETOFFLOAD, flags); }
int cnl_tun_device_netns(int fd) { return ioctl(fd, TUNGETDEVNETNS); }
int cnl_tun_set_carrier(int fd, int on) { return ioctl(fd, TUNSETCARRIER, &on); }

int cnl_tun_name(int fd, char out_name[IFNAMSIZ]) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    if (ioctl(fd, TUNGETIFF, &ifr) < 0) return -1;
    memcpy(out_name, ifr.ifr_name, IFNAMSIZ);
    return 0;
}

int cnl_tun_set_hwaddr(int fd, const uint8_t mac[6]) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
    memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
    return ioctl(fd, SIOCSIFHWADDR, &ifr);
}

int cnl_tun_get_hwaddr(int fd, uint8_t mac[6]) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) return -1;
    memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    return 0;
}

int cnl_tun_set_queue(int fd, int attach) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = attach ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
    return ioctl(fd, TUNSETQUEUE, &ifr);
}

int cnl_if_index(int sock, const char *name) {
    struct ifreq ifr;
    fill_name(&ifr, name);
    if (ioctl(sock, SIOCGIFINDEX, &ifr) < 0) return -1;
    return ifr.ifr_ifindex;
}

int cnl_if_get_mtu(int sock, const char *name) {
    struct ifreq ifr;
    fill_name(&ifr, name);
    if (ioctl(sock, SIOCGIFMTU, &ifr) < 0) return -1;
    return ifr.ifr_mtu;
}

int cnl_if_set_mtu(int sock, const char *name, int mtu) {
    struct ifreq ifr;
    fill_name(&ifr, name);
    ifr.ifr_mtu = mtu;
    return ioctl(sock, SIOCSIFMTU, &ifr);
}

int cnl_if_get_flags(int sock, const char *name) {
    struct ifreq ifr;
    fill_name(&ifr, name);
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) return -1;
    return ifr.ifr_flags & 0xffff;
}

int cnl_if_set_flags(int sock, const char *name, int flags) {
    struct ifreq ifr;
    fill_name(&ifr, name);
    ifr.ifr_flags = (short)flags;
    return ioctl(sock, SIOCSIFFLAGS, &ifr);
}

int cnl_if_get_hwaddr(int sock, const char *name, uint8_t mac[6]) {
    struct ifreq ifr;
    fill_name(&ifr, name);
    if (ioctl(sock, SIOCGIFHWADDR, &ifr) < 0) return -1;
    memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    return 0;
}

int cnl_if_set_hwaddr(int sock, const char *name, const uint8_t mac[6]) {
    struct ifreq ifr;
    fill_name(&ifr, name);
    ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
    memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
    return ioctl(sock, SIOCSIFHWADDR, &ifr);
}

int cnl_packet_bind(int fd, int ifindex, uint16_t protocol) {
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof(sll));
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = protocol;
    sll.sll_ifindex = ifindex;
    return bind(fd, (struct sockaddr *)&sll, sizeof(sll));
}


int cnl_eventfd_signal(int fd) {
    uint64_t one = 1;
    return (int)write(fd, &one, sizeof(one));
}

int cnl_eventfd_drain(int fd) {
    uint64_t v;
    return (int)read(fd, &v, sizeof(v));
}

int cnl_sendmmsg(int fd, struct cnl_mmsghdr *msgs, unsigned int count, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)msgs, count, flags);
}

int cnl_recvmmsg(int fd, struct cnl_mmsghdr *msgs, unsigned int count, int flags) {
    return recvmmsg(fd, (struct mmsghdr *)msgs, count, flags, NULL);
}

int cnl_setns_net(int fd) { return setns(fd, CLONE_NEWNET); }
int cnl_set_thread_name(const char *name) { return pthread_setname_np(pthread_self(), name); }

int cnl_move_off_cpu(int cpu) {
    cpu_set_t allowed, others, back;
    if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getaffinity(0, sizeof allowed, &allowed) != 0) return -1;
    others = allowed;
    CPU_CLR(cpu, &others);
    if (CPU_COUNT(&others) == 0) return -1;
    /* What is read back is narrowed to the CPUs online now and to the cpuset: a thread
     * that had every online CPU gets every CPU back, or it would stay off CPUs that come
     * online (or a cpuset that widens) later. */
    back = allowed;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online > 0 && CPU_COUNT(&allowed) >= online) memset(&back, 0xff, sizeof back);
    if (sched_setaffinity(0, sizeof others, &others) != 0) return -1;
    if (sched_setaffinity(0, sizeof back, &back) == 0 || sched_setaffinity(0, sizeof allowed, &allowed) == 0) return 0;
    return -2;
}

int cnl_current_cpu(void) { return sched_getcpu(); }

_Static_assert(sizeof(cpu_set_t) == 128, "cnl_pin_self keeps a cpu_set_t in 128 bytes");

int cnl_pin_self(int cpu, int off, void *saved, int *has_saved) {
    cpu_set_t *allowed = (cpu_set_t *)saved;
    if (cpu < 0) return *has_saved ? sched_setaffinity(0, sizeof *allowed, allowed) : 0;
    if (!*has_saved) {
        if (sched_getaffinity(0, sizeof *allowed, allowed) != 0) return -1;
        *has_saved = 1;
    }
    if (cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, allowed)) return -1;
    cpu_set_t want;
    if (off) {
        want = *allowed;
        CPU_CLR(cpu, &want);
        if (CPU_COUNT(&want) == 0) return -1;
    } else {
        CPU_ZERO(&want);
        CPU_SET(cpu, &want);
    }
    return sched_setaffinity(0, sizeof want, &want);
}

int cnl_peer_pid(int sock) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.pid <= 0) return -1;
    return cred.pid;
}

int cnl_udp_tunnel_socket(uint16_t port) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) < 0 ||
        setsockopt(fd, IPPROTO_IP, IP_RECVTOS, &one, sizeof one) < 0 ||
        setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &one, sizeof one) < 0) {
        int e = errno; close(fd); errno = e; return -1;
    }
    int buf = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        int e = errno; close(fd); errno = e; return -1;
    }
    return fd;
}

void cnl_udp_tunnel_info(const struct msghdr *msg, uint32_t *dst, uint8_t *tos, uint8_t *ttl) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c; c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
        if (c->cmsg_level != IPPROTO_IP) continue;
        if (c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo *pi = (struct in_pktinfo *)CMSG_DATA(c);
            *dst = ntohl(pi->ipi_addr.s_addr);
        } else if (c->cmsg_type == IP_TOS) {
            *tos = *(uint8_t *)CMSG_DATA(c);
        } else if (c->cmsg_type == IP_TTL) {
            *ttl = (uint8_t)*(int *)CMSG_DATA(c);
        }
    }
}

int cnl_packet_auxdata_vlan(const struct msghdr *msg, uint16_t *tci, uint16_t *tpid) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c; c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
        if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA) continue;
        struct tpacket_auxdata aux;
        memcpy(&aux, CMSG_DATA(c), sizeof aux);
        if (!(aux.tp_status & TP_STATUS_VLAN_VALID)) return 0;
        *tci = aux.tp_vlan_tci;
        *tpid = (aux.tp_status & TP_STATUS_VLAN_TPID_VALID) ? aux.tp_vlan_tpid : 0x8100;
        return 1;
    }
    return 0;
}

const int CNL_PACKET_AUXDATA_SPACE = CMSG_SPACE(sizeof(struct tpacket_auxdata));

int cnl_packet_cmsgs(const struct msghdr *msg, uint16_t *tci, uint16_t *tpid, uint32_t *mark) {
    int tagged = 0;
    *mark = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c; c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_MARK) {
            memcpy(mark, CMSG_DATA(c), sizeof *mark);
        } else if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA) {
            struct tpacket_auxdata aux;
            memcpy(&aux, CMSG_DATA(c), sizeof aux);
            if (aux.tp_status & TP_STATUS_VLAN_VALID) {
                *tci = aux.tp_vlan_tci;
                *tpid = (aux.tp_status & TP_STATUS_VLAN_TPID_VALID) ? aux.tp_vlan_tpid : 0x8100;
                tagged = 1;
            }
        }
    }
    return tagged;
}

const int CNL_PACKET_CMSG_SPACE = CMSG_SPACE(sizeof(struct tpacket_auxdata)) + CMSG_SPACE(sizeof(uint32_t));

int cnl_raw_ipv4_socket(void) {
    int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_RAW);
    if (fd < 0) return -1;
    int buf = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf);
    return fd;
}

int cnl_sendto_ipv4(int fd, const void *buf, size_t len, uint32_t dst_host_order) {
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(dst_host_order);
    return (int)sendto(fd, buf, len, MSG_DONTWAIT, (struct sockaddr *)&sin, sizeof sin);
}

uint32_t cnl_sockaddr_in_addr(const void *sa) { return ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr); }
uint16_t cnl_sockaddr_in_port(const void *sa) { return ntohs(((const struct sockaddr_in *)sa)->sin_port); }

int cnl_accept_peer(int fd, uint32_t *uid) {
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0) return -1;
    struct ucred cred;
    socklen_t len = sizeof cred;
    *uid = 0xffffffff;
    if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) *uid = cred.uid;
    return c;
}

int cnl_termination_signalfd(void) {
    static const int termination[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
    sigset_t set;
    sigemptyset(&set);
    /* Whatever the starting process left us (a script's `trap "" QUIT`, a shell's
     * background jobs ignoring SIGINT, a blocked mask) does not hold here: an ignored
     * signal never becomes pending, so signalfd would not see it. Dispositions go to
     * default, then the termination signals are blocked for signalfd and every other
     * signal is unblocked. */
    for (unsigned i = 0; i < sizeof termination / sizeof termination[0]; i++) {
        if (signal(termination[i], SIG_DFL) == SIG_ERR) return -1;
        sigaddset(&set, termination[i]);
    }
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) return -1;
    if (pthread_sigmask(SIG_SETMASK, &set, NULL) != 0) return -1;
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int cnl_signalfd_read(int fd) {
    struct signalfd_siginfo si;
    if (read(fd, &si, sizeof si) != sizeof si) return -1;
    return (int)si.ssi_signo;
}

int cnl_timerfd_periodic(int ms) {
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0) return -1;
    struct itimerspec its;
    its.it_interval.tv_sec = ms / 1000;
    its.it_interval.tv_nsec = (ms % 1000) * 1000000L;
    its.it_value = its.it_interval;
    if (timerfd_settime(fd, 0, &its, NULL) < 0) { int e = errno; close(fd); errno = e; return -1; }
    return fd;
}

// syscall(2) is variadic.
int cnl_gettid(void) { return (int)syscall(SYS_gettid); }
