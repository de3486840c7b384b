// map-insert.c — the kernel's part of installing N offloaded flows and nothing else: a
// hash map made as eswd makes its masked rule table (BPF_F_NO_PREALLOC, esw_table_key
// keys, esw_rule values, N + 1024 entries) filled with N distinct rules by
// BPF_MAP_UPDATE_BATCH, 256 at a time as eswd writes them. `scripts/bench.sh` runs it
// beside each add-flows of the scale table: what no driver, however lean, can avoid.
//
// Usage: map-insert N   (prints "N SECONDS")
#include <bpf/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../bpf/esw_shared.h"
#include "measure.h"

#define BULK 256   /* BPFDataPlane.queuedWriteBulk */

int main(int argc, char **argv) {
    long n = positive_argument(argc, argv, "map-insert N");
    LIBBPF_OPTS(bpf_map_create_opts, create, .map_flags = BPF_F_NO_PREALLOC);
    int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "esw_scale", sizeof(struct esw_table_key),
                            sizeof(struct esw_rule), n + 1024, &create);
    if (fd < 0) { perror("bpf_map_create"); return 1; }
    struct esw_table_key keys[BULK];
    struct esw_rule values[BULK];
    memset(keys, 0, sizeof keys);
    memset(values, 0, sizeof values);
    double start = seconds();
    for (long i = 0; i < n; i += BULK) {
        __u32 count = n - i < BULK ? n - i : BULK;
        for (__u32 j = 0; j < count; j++) {
            // The bench's flows: in_port 1, IPv4, one source address each (key words 7, 9, 12).
            keys[j].mask_id = 1;
            keys[j].key.w[7] = 1;
            keys[j].key.w[9] = 0x0800ull << 48;
            keys[j].key.w[12] = 0xc6120000u + (__u32)(i + j);
            values[j].counter = i + j;
        }
        LIBBPF_OPTS(bpf_map_batch_opts, batch);
        if (bpf_map_update_batch(fd, keys, values, &count, &batch)) { perror("BPF_MAP_UPDATE_BATCH"); return 1; }
    }
    printf("%ld %.3f\n", n, seconds() - start);
    close(fd);
    return 0;
}
