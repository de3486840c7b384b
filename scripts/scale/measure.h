// measure.h — what the scale part's stand-alone programs (map-insert.c, first-touch.c,
// add-floor.c) share: a monotonic clock in seconds, and their positive numeric argument.
#ifndef ESW_SCALE_MEASURE_H
#define ESW_SCALE_MEASURE_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

// argv[1] as a positive number; exits 2 with the usage line otherwise.
static long positive_argument(int argc, char **argv, const char *usage) {
    long n = argc > 1 ? atol(argv[1]) : 0;
    if (n <= 0) { fprintf(stderr, "usage: %s\n", usage); exit(2); }
    return n;
}

#endif
