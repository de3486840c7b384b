// first-touch.c — the memory part of a big add and nothing else: maps BYTES of fresh
// anonymous memory, writes one byte per 4 KiB page (a first touch: the page fault and,
// in a VM whose host backs guest memory lazily, the host's fault too), and gives it back.
// `scripts/bench.sh` runs it right before each add-flows of the scale table, for as many
// bytes as the add will fault in: how long the memory alone takes on this machine now.
// Its pages go back to the kernel's free lists, where the add then finds them as a
// machine without a lazy host would give them.
//
// Usage: first-touch BYTES   (prints "BYTES SECONDS")
#include <sys/mman.h>

#include "measure.h"

int main(int argc, char **argv) {
    long bytes = positive_argument(argc, argv, "first-touch BYTES");
    double t0 = seconds();
    volatile char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); return 1; }
    // 4 KiB pages, as most of eswd's growth (its heap) takes them.
    madvise((void *)p, bytes, MADV_NOHUGEPAGE);
    for (long i = 0; i < bytes; i += 4096) p[i] = 1;
    double t1 = seconds();
    munmap((void *)p, bytes);
    printf("%ld %.3f\n", bytes, t1 - t0);
    return 0;
}
