// liburing (Debian's liburing-dev) plus what Swift cannot reach in it: the anonymous
// unions of io_uring_sqe and an opcode newer than liburing 2.3's headers.
#ifndef CURING_SHIM_H
#define CURING_SHIM_H
#include <liburing.h>

// IORING_OP_READ_MULTISHOT (Linux 6.7) is missing from liburing 2.3's enum.
#define CURING_OP_READ_MULTISHOT 49

// One read that stays armed: every frame the fd yields lands in a buffer picked from
// provided-buffer group `group`; the CQE carries the buffer id.
static inline void curing_prep_read_multishot(struct io_uring_sqe *sqe, int fd, unsigned short group,
                                              unsigned long long user_data) {
    io_uring_prep_rw(CURING_OP_READ_MULTISHOT, sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = group;
    sqe->user_data = user_data;
}

static inline void curing_prep_write(struct io_uring_sqe *sqe, int fd, const void *buf, unsigned len,
                                     unsigned long long user_data) {
    io_uring_prep_write(sqe, fd, buf, len, 0);
    sqe->user_data = user_data;
}

static inline void curing_prep_poll_multishot(struct io_uring_sqe *sqe, int fd, unsigned mask,
                                              unsigned long long user_data) {
    io_uring_prep_poll_multishot(sqe, fd, mask);
    sqe->user_data = user_data;
}

// Cancels every request on `fd` and returns when they are gone (the ring then holds no
// reference to the file).
static inline int curing_cancel_fd(struct io_uring *ring, int fd) {
    struct io_uring_sync_cancel_reg reg = {0};
    reg.fd = fd;
    reg.flags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL;
    reg.timeout.tv_sec = -1;
    reg.timeout.tv_nsec = -1;
    return io_uring_register_sync_cancel(ring, &reg);
}

static inline int curing_cancel_all(struct io_uring *ring) {
    struct io_uring_sync_cancel_reg reg = {0};
    reg.flags = IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL;
    reg.timeout.tv_sec = -1;
    reg.timeout.tv_nsec = -1;
    return io_uring_register_sync_cancel(ring, &reg);
}

static inline int curing_supports(struct io_uring *ring, int op) {
    struct io_uring_probe *p = io_uring_get_probe_ring(ring);
    if (!p) return 0;
    int ok = io_uring_opcode_supported(p, op);
    io_uring_free_probe(p);
    return ok;
}
#endif
