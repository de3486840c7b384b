// add-floor.c — the least an add-flows of a flow file must do, end to end, in a minimal
// program: `scripts/bench.sh` runs it beside each add of its scale table. A client thread
// reads FILE a MiB at a time, parses each line by hand for exactly the bench's form
// (`in_port(I),eth(),eth_type(0xT),ipv4(src=A,frag=F) O`; any other line is an error),
// encodes a 160-byte OVS_FLOW_CMD_NEW (key, mask, a ufid hashed from the key, one output)
// and sends them in ~48 KB datagrams over a SOCK_SEQPACKET socketpair, at most 4096
// unanswered (esw-dpctl's RequestStream). A server thread walks each message and attribute
// with length checks, builds the hardware table's 152-byte key and its rule, indexes a
// 56-byte flow record by ufid and by match (open addressing: a duplicate of either is
// refused), queues the rule, and ACKs each request
// once its run's rules are in the map; a writer thread (eswd's esw-bpf-write) writes the
// queue to a map made as map-insert.c makes it, 256 rules per BPF_MAP_UPDATE_BATCH. The
// server has one CPU, the client and the writer the other, as eswd places them.
//
// Usage: add-floor FILE N   (FILE holds N flows, the map N + 1024 entries; prints
// "N SECONDS", from opening FILE to the last ACK; fails unless N are indexed and in the map)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/genetlink.h>
#include <linux/if_ether.h>
#include <linux/netlink.h>
#include <linux/openvswitch.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../bpf/esw_shared.h"
#include "measure.h"

#define FAMILY    0x20          /* the ovs_flow family's id (checked by the server) */
#define WINDOW    4096          /* RequestStream's unanswered requests */
#define DATAGRAM  48000         /* a datagram of requests is sent at this size */
#define RUN_BYTES (1 << 20)     /* ControlServer.readAvailableBytes */
#define BULK      256           /* BPFDataPlane.queuedWriteBulk */
#define ACK_LEN   (2 * NLMSG_HDRLEN + 4)

static void die(const char *what) { fprintf(stderr, "add-floor: %s\n", what); exit(1); }
static void die_errno(const char *what) { perror(what); exit(1); }
static void pin(int cpu) {
    cpu_set_t s; CPU_ZERO(&s); CPU_SET(cpu, &s);
    if (sysconf(_SC_NPROCESSORS_ONLN) > 1) pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}
static __u64 mix(__u64 h, __u64 w) { h = (h ^ w) * 0x9E3779B97F4A7C15ull; return h ^ (h >> 29); }

// A request as the client lays it out; the server reads it as attributes.
struct key_attrs {
    struct nlattr in_port_a; __u32 in_port;
    struct nlattr eth_a; struct ovs_key_ethernet eth;
    struct nlattr type_a; __be16 eth_type; __u16 pad;
    struct nlattr ipv4_a; struct ovs_key_ipv4 ipv4;
};
struct request {
    struct nlmsghdr nl; struct genlmsghdr genl; struct ovs_header ovs;
    struct nlattr key_a; struct key_attrs key;
    struct nlattr mask_a; struct key_attrs mask;
    struct nlattr ufid_a; __u32 ufid[4];
    struct nlattr actions_a; struct nlattr output_a; __u32 output;
};
_Static_assert(sizeof(struct request) == 160, "request layout");
#define KEY_ATTRS(port, type, ...) { { 8, OVS_KEY_ATTR_IN_PORT }, port, { 16, OVS_KEY_ATTR_ETHERNET }, { { 0 }, { 0 } }, \
                                      { 6, OVS_KEY_ATTR_ETHERTYPE }, type, 0, { 16, OVS_KEY_ATTR_IPV4 }, __VA_ARGS__ }
static const struct request template = {
    { sizeof template, FAMILY, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE, 0, 0 },
    { OVS_FLOW_CMD_NEW, OVS_FLOW_VERSION, 0 }, { 1 },
    { 52, OVS_FLOW_ATTR_KEY | NLA_F_NESTED }, KEY_ATTRS(0, 0, { 0 }),
    { 52, OVS_FLOW_ATTR_MASK | NLA_F_NESTED }, KEY_ATTRS(0xffffffff, 0xffff, { .ipv4_src = 0xffffffff, .ipv4_frag = 0xff }),
    { 20, OVS_FLOW_ATTR_UFID }, { 0 }, { 12, OVS_FLOW_ATTR_ACTIONS | NLA_F_NESTED }, { 8, OVS_ACTION_ATTR_OUTPUT }, 0,
};

// --- client: the file's lines -> requests -> socket; ACKs counted -------------------
static long submitted, answered;

static void read_acks(int sock, int wait) {
    static char buf[1 << 16];
    ssize_t n = recv(sock, buf, sizeof buf, wait ? 0 : MSG_DONTWAIT);
    if (n < 0 && !wait && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) die("the server's side closed or failed");
    for (ssize_t at = 0; at < n; at += ACK_LEN, answered++) {
        const struct nlmsghdr *h = (const void *)(buf + at);
        const struct nlmsgerr *e = NLMSG_DATA(h);
        if (n - at < ACK_LEN || h->nlmsg_len != ACK_LEN || h->nlmsg_type != NLMSG_ERROR) die("an answer that is not an ACK");
        if (h->nlmsg_seq != (__u32)answered + 1) die("an ACK out of order");
        if (e->error) { fprintf(stderr, "add-floor: flow %ld: %s\n", answered + 1, strerror(-e->error)); exit(1); }
    }
}
static void send_pending(int sock, char *out, size_t *len) {
    while (*len) {
        if (send(sock, out, *len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) { *len = 0; return; }
        if (errno != EAGAIN && errno != EINTR) die_errno("send");
        struct pollfd p = { sock, POLLIN | POLLOUT, 0 };   // no room: read ACKs until there is
        if (poll(&p, 1, -1) < 0 && errno != EINTR) die_errno("poll");
        if (p.revents & POLLIN) read_acks(sock, 0);
    }
}

// The line's parts, in order; each returns 0 when the text is not what it expects.
static int literal(const char **p, const char *s) {
    size_t n = strlen(s);
    if (strncmp(*p, s, n)) return 0;
    *p += n;
    return 1;
}
static int digit(char c, int base) {
    return c >= '0' && c <= '9' ? c - '0' : base == 16 && (c | 32) >= 'a' && (c | 32) <= 'f' ? (c | 32) - 'a' + 10 : -1;
}
static int number(const char **p, int base, unsigned long max, unsigned long *v) {
    const char *s = *p;
    for (*v = 0; digit(*s, base) >= 0; s++)
        if ((*v = *v * base + digit(*s, base)) > max) return 0;
    if (s == *p) return 0;
    *p = s;
    return 1;
}
static int blanks(const char **p) { const char *s = *p; while (**p == ' ' || **p == '\t') (*p)++; return *p > s; }

// "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.1,frag=no) 2" into r (a copy of template).
static int parse_line(const char *p, struct request *r) {
    static const char *frags[] = { "no)", "first)", "later)" };   // OVS_FRAG_TYPE_*
    unsigned long in, type, a, b, c, d, out, frag = 0;
    blanks(&p);
    if (!(literal(&p, "in_port(") && number(&p, 10, 0xffffffff, &in) && literal(&p, "),eth(),eth_type(0x")
          && number(&p, 16, 0xffff, &type) && literal(&p, "),ipv4(src=") && number(&p, 10, 255, &a)
          && literal(&p, ".") && number(&p, 10, 255, &b) && literal(&p, ".") && number(&p, 10, 255, &c)
          && literal(&p, ".") && number(&p, 10, 255, &d) && literal(&p, ",frag=")))
        return 0;
    while (frag < 3 && !literal(&p, frags[frag])) frag++;
    if (frag == 3 || !blanks(&p) || !number(&p, 10, 0xffffffff, &out) || (blanks(&p), *p)) return 0;
    r->key.in_port = in;
    r->key.eth_type = htons(type);
    r->key.ipv4.ipv4_src = htonl(a << 24 | b << 16 | c << 8 | d);
    r->key.ipv4.ipv4_frag = frag;
    r->output = out;
    // The ufid: a hash of the key attributes (ovs-dpctl's odp_flow_key_hash, esw-dpctl's FlowUFID).
    __u64 w[6], h1 = 0x9E3779B97F4A7C15ull, h2 = 0xC2B2AE3D27D4EB4Full;
    memcpy(w, &r->key, sizeof w);
    for (int i = 0; i < 6; i++) { h1 = mix(h1, w[i]); h2 = mix(h2 ^ 0x5bd1e995, w[i] + h1); }
    w[0] = mix(h1, 1); w[1] = mix(h2, 2);
    memcpy(r->ufid, w, 16);
    return 1;
}

static long client(int sock, const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) die_errno(path);
    size_t cap = 1 << 20, have = 0, out_len = 0, line = 0;
    char *in = malloc(cap + 1), *out = malloc(DATAGRAM + sizeof template);
    for (int eof = 0; !eof;) {
        ssize_t n = read(fd, in + have, cap - have);
        if (n < 0) die_errno("read");
        eof = n == 0;
        char *p = in, *end = in + (have += n), *nl;
        for (; (nl = memchr(p, '\n', end - p)) || (eof && p < end); p = nl + (nl < end)) {
            if (!nl) nl = end;
            *nl = 0;
            line++;
            const char *q = p;
            if (blanks(&q), !*q) continue;   // a blank line is no flow
            struct request *r = memcpy(out + out_len, &template, sizeof template);
            if (!parse_line(p, r)) { fprintf(stderr, "add-floor: %s:%zu: not understood: %s\n", path, line, p); exit(1); }
            r->nl.nlmsg_seq = ++submitted;
            out_len += sizeof template;
            if (submitted == 64) pin(0);   // as RequestStream's CPUPin
            if (out_len >= DATAGRAM) send_pending(sock, out, &out_len);
            while (submitted - answered > WINDOW) read_acks(sock, 1);
        }
        if ((have = end - p) == cap) die("a line longer than 1 MiB");
        memmove(in, p, have);
    }
    close(fd);
    send_pending(sock, out, &out_len);
    while (answered < submitted) read_acks(sock, 1);
    free(in); free(out);
    return submitted;
}

// --- server: requests -> flow records in the ufid index, rules queued; ACKs -----------
struct flow { __u64 ufid[2]; __u32 counter; __u16 action_set; __u8 mask_id, words; __u64 w[]; };
// The two indexes any datapath keeps: by ufid, and by match (the megaflow table's
// subtable for the flow's mask: the masked key's words, hashed). Linear probing each.
struct index { struct { __u64 hash; struct flow *f; } *slots; size_t cap, count; };
static struct index by_ufid, by_match;
static size_t flows;
static char *arena; static size_t arena_left;            // flow records, 4 MiB at a time
static __u64 masks[ESW_MAX_MASKS][ESW_KEY_WORDS];
static __u8 mask_words[ESW_MAX_MASKS][ESW_KEY_WORDS], mask_nwords[ESW_MAX_MASKS];
static int nmasks, last_mask = -1;
static __u16 action_sets[ESW_MAX_PORTS]; static int nsets;   // an action set per output port
static int map_fd;
// Queued rules: a ring of bulks, filled by the server, written by the writer; up to 2048
// rules wait (BPFDataPlane's queueGrowthLimit) before the server waits for the writer.
#define RING 8
static struct bulk { struct esw_table_key keys[BULK]; struct esw_rule rules[BULK]; __u32 count; } ring[RING];
static struct bulk *filling = ring;
static unsigned long queued, written;   // bulks handed to the writer, and written
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int done;   // the server has finished: the writer returns

static void *writer(void *arg) {
    pin(0);   // beside the client (eswd's HelperPlacement)
    pthread_mutex_lock(&lock);
    for (;;) {
        while (written == queued && !done) pthread_cond_wait(&changed, &lock);
        if (written == queued) break;
        pthread_mutex_unlock(&lock);
        struct bulk *b = &ring[written % RING];
        __u32 count = b->count;
        LIBBPF_OPTS(bpf_map_batch_opts, batch);
        if (bpf_map_update_batch(map_fd, b->keys, b->rules, &count, &batch) || count != b->count)
            die_errno("BPF_MAP_UPDATE_BATCH");
        pthread_mutex_lock(&lock);
        written++;
        pthread_cond_broadcast(&changed);
    }
    pthread_mutex_unlock(&lock);
    return arg;
}
// Hands the bulk being filled to the writer (waiting while the ring is full); with
// `wait`, also waits until every bulk handed over is written.
static void write_queue(int wait) {
    pthread_mutex_lock(&lock);
    if (filling->count) {
        queued++;
        pthread_cond_broadcast(&changed);
        while (queued - written == RING) pthread_cond_wait(&changed, &lock);
        filling = &ring[queued % RING];
        filling->count = 0;
    }
    while (wait && written != queued) pthread_cond_wait(&changed, &lock);
    pthread_mutex_unlock(&lock);
}

static int same_ufid(const struct flow *a, const struct flow *b) { return !memcmp(a->ufid, b->ufid, 16); }
static int same_match(const struct flow *a, const struct flow *b) {
    return a->mask_id == b->mask_id && !memcmp(a->w, b->w, 8 * a->words);
}
// Inserts f under hash h (never 0), unless a flow `same` as it is there: -EEXIST.
static int index_insert(struct index *x, __u64 h, struct flow *f, int (*same)(const struct flow *, const struct flow *)) {
    if (2 * (x->count + 1) > x->cap) {   // at half full, twice the slots
        size_t old = x->cap, cap = old ? 2 * old : 1024, j;
        __typeof__(x->slots) s = calloc(cap, sizeof *s);
        if (!s) die("out of memory");
        for (size_t i = 0; i < old; i++) {
            if (!x->slots[i].hash) continue;
            for (j = x->slots[i].hash & (cap - 1); s[j].hash; j = (j + 1) & (cap - 1)) {}
            s[j] = x->slots[i];
        }
        free(x->slots); x->slots = s; x->cap = cap;
    }
    size_t j = h & (x->cap - 1);
    for (; x->slots[j].hash; j = (j + 1) & (x->cap - 1))
        if (x->slots[j].hash == h && same(x->slots[j].f, f)) return -EEXIST;
    x->slots[j].hash = h; x->slots[j].f = f; x->count++;
    return 0;
}
static void index_remove(struct index *x, __u64 h, struct flow *f) {   // (the last one inserted: no hole to close)
    size_t j = h & (x->cap - 1);
    while (x->slots[j].f != f) j = (j + 1) & (x->cap - 1);
    x->slots[j].hash = 0; x->slots[j].f = NULL; x->count--;
}

// The next attribute in [p, end), its length checked against what is left: its value,
// length and type in *v, *len, *type. 1 for an attribute, 0 at the end, -EINVAL.
static int next_attr(const char **p, const char *end, const char **v, int *len, int *type) {
    const struct nlattr *a = (const void *)*p;
    if (*p >= end) return 0;
    if (end - *p < NLA_HDRLEN || a->nla_len < NLA_HDRLEN || a->nla_len > end - *p) return -EINVAL;
    *v = *p + NLA_HDRLEN; *len = a->nla_len - NLA_HDRLEN; *type = a->nla_type & NLA_TYPE_MASK;
    *p += NLA_ALIGN(a->nla_len);
    return 1;
}
// Key or mask attributes into the hardware key's words (esw_shared.h's layout): the set
// of attribute types seen, or -EINVAL (a bad length, an attribute this floor does not take).
static int key_words(const char *p, const char *end, __u64 w[ESW_KEY_WORDS]) {
    const char *v;
    int len, type, seen = 0, r;
    while ((r = next_attr(&p, end, &v, &len, &type)) > 0) {
        const struct ovs_key_ethernet *e = (const void *)v;
        const struct ovs_key_ipv4 *k = (const void *)v;
        if (type == OVS_KEY_ATTR_IN_PORT && len == 4) w[7] = *(const __u32 *)v;
        else if (type == OVS_KEY_ATTR_ETHERTYPE && len == 2) w[9] |= (__u64)ntohs(*(const __be16 *)v) << 48;
        else if (type == OVS_KEY_ATTR_ETHERNET && len == sizeof *e)
            for (int i = 0; i < ETH_ALEN; i++) {
                w[8] |= (__u64)e->eth_src[i] << (40 - 8 * i);
                w[9] |= (__u64)e->eth_dst[i] << (40 - 8 * i);
            }
        else if (type == OVS_KEY_ATTR_IPV4 && len == sizeof *k) {
            w[10] |= (__u64)k->ipv4_proto << 48 | (__u64)k->ipv4_frag << 56;
            w[11] |= k->ipv4_tos | k->ipv4_ttl << 8;
            w[12] = ntohl(k->ipv4_src) | (__u64)ntohl(k->ipv4_dst) << 32;
        } else return -EINVAL;
        seen |= 1 << type;
    }
    return r < 0 ? r : seen;
}

// One OVS_FLOW_CMD_NEW (its attributes in [p, end)): 0 or a negative errno.
static int put(const char *p, const char *end) {
    __u64 key[ESW_KEY_WORDS] = { 0 }, mask[ESW_KEY_WORDS] = { 0 };
    const char *v, *ufid = NULL;
    long output = -1;
    int len, type, r, have_key = 0, have_mask = -1;
    while ((r = next_attr(&p, end, &v, &len, &type)) > 0) {
        if (type == OVS_FLOW_ATTR_KEY) { if ((have_key = key_words(v, v + len, key)) < 0) return -EINVAL; }
        else if (type == OVS_FLOW_ATTR_MASK) { if ((have_mask = key_words(v, v + len, mask)) < 0) return -EINVAL; }
        else if (type == OVS_FLOW_ATTR_UFID && len == 16) ufid = v;
        else if (type == OVS_FLOW_ATTR_ACTIONS && len == 8 && ((const struct nlattr *)v)->nla_len == 8
                 && ((const struct nlattr *)v)->nla_type == OVS_ACTION_ATTR_OUTPUT) output = *(const __u32 *)(v + NLA_HDRLEN);
        else return -EINVAL;
    }
    // What the hardware key and one output can hold.
    if (r < 0 || !(have_key & 1 << OVS_KEY_ATTR_IN_PORT) || have_mask < 0 || !ufid || output < 0 || output >= ESW_MAX_PORTS
        || key[7] >= ESW_MAX_PORTS || key[10] >> 56 > OVS_FRAG_TYPE_LATER
        || (have_key & 1 << OVS_KEY_ATTR_IPV4 && key[9] >> 48 != ETH_P_IP))
        return -EINVAL;
    // The mask's id: the last one's, or found among (or added to) the masks in use.
    int m = last_mask;
    if (m < 0 || memcmp(masks[m], mask, sizeof mask)) {
        for (m = 0; m < nmasks && memcmp(masks[m], mask, sizeof mask); m++) {}
        if (m == nmasks) {
            if (m == ESW_MAX_MASKS) return -ENOSPC;
            nmasks++;
            memcpy(masks[m], mask, sizeof mask);
            for (int i = 0; i < ESW_KEY_WORDS; i++) if (mask[i]) mask_words[m][mask_nwords[m]++] = i;
        }
        last_mask = m;
    }
    // The flow record (ufid, counter, action set, the masked key's significant words),
    // indexed by ufid and by match.
    size_t size = sizeof(struct flow) + 8 * mask_nwords[m];
    if (arena_left < size && !(arena = malloc(arena_left = 4 << 20))) die("out of memory");
    struct flow *f = (struct flow *)arena;
    memcpy(f->ufid, ufid, 16);
    if (!action_sets[output]) action_sets[output] = ++nsets;
    f->counter = flows; f->action_set = action_sets[output]; f->mask_id = m + 1; f->words = mask_nwords[m];
    for (int i = 0; i < f->words; i++) f->w[i] = key[mask_words[m][i]] & mask[mask_words[m][i]];
    __u64 uh = (f->ufid[0] ^ f->ufid[1] * 0x9E3779B97F4A7C15ull) | 1, mh = f->mask_id;
    for (int i = 0; i < f->words; i++) mh = mix(mh, f->w[i]);
    if ((r = index_insert(&by_ufid, uh, f, same_ufid))) return r;
    if ((r = index_insert(&by_match, mh | 1, f, same_match))) { index_remove(&by_ufid, uh, f); return r; }
    flows++;
    arena += size; arena_left -= size;
    // The rule, queued.
    struct esw_table_key *k = &filling->keys[filling->count];
    memset(k, 0, sizeof *k);
    k->mask_id = f->mask_id;
    for (int i = 0; i < f->words; i++) k->key.w[mask_words[m][i]] = f->w[i];
    filling->rules[filling->count] = (struct esw_rule){ .action_set = f->action_set, .counter = f->counter };
    if (++filling->count == BULK) write_queue(0);
    return 0;
}

static void *server(void *arg) {
    int sock = *(int *)arg;
    pin(1);   // the other CPU (eswd's CPUPlacement)
    char *run = malloc(RUN_BYTES + (1 << 16)), *acks = malloc((RUN_BYTES + (1 << 16)) / NLMSG_HDRLEN * ACK_LEN);
    for (;;) {
        size_t len = 0, nacks = 0;
        for (int first = 1; len < RUN_BYTES; first = 0) {   // a run: every datagram queued now, up to 1 MiB
            ssize_t n = recv(sock, run + len, 1 << 16, first ? 0 : MSG_DONTWAIT);
            if (n < 0 && !first && (errno == EAGAIN || errno == EINTR)) break;
            if (n < 0) die_errno("recv");
            if (n == 0 && first) {   // the client has finished
                pthread_mutex_lock(&lock); done = 1; pthread_cond_broadcast(&changed); pthread_mutex_unlock(&lock);
                free(run); free(acks);
                return NULL;
            }
            if (n == 0) break;
            len += n;
        }
        for (size_t at = 0; at < len; at += NLMSG_ALIGN(((struct nlmsghdr *)(run + at))->nlmsg_len)) {
            const struct nlmsghdr *h = (const void *)(run + at);
            if (len - at < NLMSG_HDRLEN || h->nlmsg_len < NLMSG_HDRLEN || h->nlmsg_len > len - at)
                die("a request that is not framed");
            const size_t head = NLMSG_HDRLEN + GENL_HDRLEN + sizeof(struct ovs_header);
            int e = h->nlmsg_type != FAMILY || h->nlmsg_len < head
                    || ((const struct genlmsghdr *)NLMSG_DATA(h))->cmd != OVS_FLOW_CMD_NEW
                    ? -EOPNOTSUPP : put(run + at + head, run + at + h->nlmsg_len);
            struct nlmsghdr *a = (struct nlmsghdr *)(acks + nacks++ * ACK_LEN);
            *a = (struct nlmsghdr){ ACK_LEN, NLMSG_ERROR, NLM_F_CAPPED, h->nlmsg_seq, h->nlmsg_pid };
            *(struct nlmsgerr *)NLMSG_DATA(a) = (struct nlmsgerr){ e, *h };
        }
        write_queue(1);   // the run's rules are in the map before it is answered
        for (size_t i = 0, k; i < nacks; i += k) {   // ACKs in datagrams of up to 64 KB
            k = nacks - i < 65536 / ACK_LEN ? nacks - i : 65536 / ACK_LEN;
            if (send(sock, acks + i * ACK_LEN, k * ACK_LEN, MSG_NOSIGNAL) < 0) die_errno("send");
        }
    }
}

int main(int argc, char **argv) {
    long n = positive_argument(argc - 1, argv + 1, "add-floor FILE N");
    LIBBPF_OPTS(bpf_map_create_opts, create, .map_flags = BPF_F_NO_PREALLOC);
    map_fd = bpf_map_create(BPF_MAP_TYPE_HASH, "esw_floor", sizeof(struct esw_table_key),
                            sizeof(struct esw_rule), n + 1024, &create);
    if (map_fd < 0) die_errno("bpf_map_create");
    int sv[2];
    pthread_t t[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv)) die_errno("socketpair");
    if (pthread_create(&t[0], NULL, server, &sv[1]) || pthread_create(&t[1], NULL, writer, NULL)) die("pthread_create");
    double start = seconds();
    long got = client(sv[0], argv[1]);
    double wall = seconds() - start;
    shutdown(sv[0], SHUT_WR);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    // Nothing less than N: N flows in the file, N answered, N in the index, N in the map.
    struct esw_table_key k, next;
    long in_map = 0;
    for (void *prev = NULL; !bpf_map_get_next_key(map_fd, prev, &next); prev = &k, in_map++) k = next;
    if (got != n || (long)flows != n || in_map != n) {
        fprintf(stderr, "add-floor: %ld flows in the file, %zu indexed, %ld in the map; expected %ld\n",
                got, flows, in_map, n);
        return 1;
    }
    printf("%ld %.3f\n", n, wall);
    return 0;
}
