#include <errno.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <linux/pkt_cls.h>

/* What Swift cannot write against libbpf: the option structs are declared through the
 * LIBBPF_OPTS macro (which fills in their size for ABI checks). */

/* Creates the clsact qdisc on `ifindex` if it has none: 1 when this call created it,
 * 0 when it was there already, a negative errno on failure. */
static inline int clbpf_tc_hook_create(int ifindex) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
    int err = bpf_tc_hook_create(&hook);
    return err == -EEXIST ? 0 : err == 0 ? 1 : err;
}

/* Deletes the clsact qdisc on `ifindex` and every filter on it (ENOENT/EINVAL: none). */
static inline int clbpf_tc_hook_destroy(int ifindex) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);
    return bpf_tc_hook_destroy(&hook);
}

/* The id of the program of the filter at handle/priority (a negative errno: no such filter). */
static inline int clbpf_tc_query(int ifindex, int egress, unsigned int handle, unsigned int priority,
                                 unsigned int *prog_id) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = egress ? BPF_TC_EGRESS : BPF_TC_INGRESS);
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = priority);
    int err = bpf_tc_query(&hook, &opts);
    if (err == 0) *prog_id = opts.prog_id;
    return err;
}

/* Attaches (or replaces) the program at handle/priority on ingress (egress != 0: egress). */
static inline int clbpf_tc_attach(int ifindex, int egress, unsigned int handle, unsigned int priority, int prog_fd) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = egress ? BPF_TC_EGRESS : BPF_TC_INGRESS);
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = priority, .prog_fd = prog_fd,
                .flags = BPF_TC_F_REPLACE);
    return bpf_tc_attach(&hook, &opts);
}

/* Detaches the filter at handle/priority (ENOENT: it was not there). */
static inline int clbpf_tc_detach(int ifindex, int egress, unsigned int handle, unsigned int priority) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = egress ? BPF_TC_EGRESS : BPF_TC_INGRESS);
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = priority);
    return bpf_tc_detach(&hook, &opts);
}

/* Runs a program once on `data` (BPF_PROG_TEST_RUN); the frame may grow by up to
 * `out_capacity - in_len` bytes. Returns the verdict in *retval. */
static inline int clbpf_test_run(int prog_fd, const void *in, unsigned int in_len, void *out,
                                 unsigned int *out_len, unsigned int *retval, void *ctx, unsigned int ctx_len) {
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in, .data_size_in = in_len, .data_out = out,
                .data_size_out = *out_len, .ctx_in = ctx, .ctx_size_in = ctx_len, .ctx_out = ctx,
                .ctx_size_out = ctx_len, .repeat = 1);
    int err = bpf_prog_test_run_opts(prog_fd, &opts);
    *out_len = opts.data_size_out;
    *retval = opts.retval;
    return err;
}

/* Runs a program `repeat` times on `data` (a cost measurement): the average run time in
 * *duration_ns (the kernel's own timing, without the syscall) and the last verdict. */
static inline int clbpf_test_run_repeat(int prog_fd, const void *in, unsigned int in_len, unsigned int repeat,
                                        unsigned int *duration_ns, unsigned int *retval, void *ctx, unsigned int ctx_len) {
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in, .data_size_in = in_len, .ctx_in = ctx,
                .ctx_size_in = ctx_len, .repeat = repeat);
    int err = bpf_prog_test_run_opts(prog_fd, &opts);
    *duration_ns = opts.duration;
    *retval = opts.retval;
    return err;
}

/* Batch lookup of an array map: keys and values for up to *count entries from *in
 * (NULL: the start); *count is set to the number read. */
static inline int clbpf_lookup_batch(int fd, void *in, void *out, void *keys, void *values, unsigned int *count) {
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    return bpf_map_lookup_batch(fd, in, out, keys, values, count, &opts);
}

/* Batch writes of a hash map: *count entries of keys/values; *count is set to the
 * number written (the kernel stops at the first failure). */
static inline int clbpf_update_batch(int fd, const void *keys, const void *values, unsigned int *count) {
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
    return bpf_map_update_batch(fd, keys, values, count, &opts);
}

static inline int clbpf_delete_batch(int fd, const void *keys, unsigned int *count) {
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    return bpf_map_delete_batch(fd, keys, count, &opts);
}
