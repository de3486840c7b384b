/* tcpchurn — many short TCP connections, for the connection-setup rate through a
 * stateful switch (each connection: handshake, one byte each way, FIN both ways).
 *
 *   tcpchurn server PORT                  accept forever: read a byte, answer one, close
 *   tcpchurn client ADDR PORT N THREADS   N connections over THREADS threads, each
 *                                         thread one after the other; prints
 *                                         "N_OK N_FAILED SECONDS"
 *
 * A failed connection (refused, reset or no answer within 2 s) counts as failed: a
 * switch that drops a connection's packets shows up as failures, not as a hang. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in target;
static long ok_total, failed_total;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void timeouts(int fd) {
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* One connection: connect, send a byte, get it back, then the server's FIN. */
static int one_connection(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    timeouts(fd);
    int good = 0;
    char c = 'q';
    if (connect(fd, (struct sockaddr *)&target, sizeof target) == 0 && write(fd, &c, 1) == 1 &&
        read(fd, &c, 1) == 1 && read(fd, &c, 1) == 0)
        good = 1;
    close(fd);
    return good;
}

static void *client_thread(void *arg) {
    long n = (long)arg, ok = 0, failed = 0;
    for (long i = 0; i < n; i++) {
        if (one_connection()) ok++; else failed++;
    }
    pthread_mutex_lock(&lock);
    ok_total += ok;
    failed_total += failed;
    pthread_mutex_unlock(&lock);
    return NULL;
}

static int server(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 1024)) {
        perror("tcpchurn server");
        return 1;
    }
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) continue;
        timeouts(c);
        char b;
        if (read(c, &b, 1) == 1) (void)!write(c, &b, 1);
        close(c);
    }
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc == 3 && !strcmp(argv[1], "server")) return server(atoi(argv[2]));
    if (argc != 6 || strcmp(argv[1], "client")) {
        fprintf(stderr, "usage: tcpchurn server PORT | tcpchurn client ADDR PORT N THREADS\n");
        return 2;
    }
    target.sin_family = AF_INET;
    target.sin_port = htons(atoi(argv[3]));
    if (inet_pton(AF_INET, argv[2], &target.sin_addr) != 1) {
        fprintf(stderr, "tcpchurn: bad address %s\n", argv[2]);
        return 2;
    }
    long n = atol(argv[4]);
    int threads = atoi(argv[5]);
    if (n <= 0 || threads <= 0 || threads > 256) {
        fprintf(stderr, "tcpchurn: N must be positive and THREADS 1-256\n");
        return 2;
    }
    pthread_t t[256];
    double start = now();
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, client_thread, (void *)(n / threads + (i < n % threads)));
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    printf("%ld %ld %.3f\n", ok_total, failed_total, now() - start);
    return 0;
}
