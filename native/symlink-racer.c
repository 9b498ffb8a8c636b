/*
 * symlink-racer: swaps two names with renameat2(RENAME_EXCHANGE) as fast as it can for a number of seconds.
 * Used by the escape tests: PATH is a directory inside the served tree and ALT a symlink to a directory
 * outside it, so a lookup through PATH races a symlink swapped in underneath it.
 *
 *   symlink-racer PATH ALT SECONDS [THREADS]
 *
 * Prints "swaps=N" and exits 0 when at least one swap succeeded, 1 otherwise (2 on usage errors).
 * Test tool only; never part of the product.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static const char *path_a;
static const char *path_b;
static atomic_long swaps;
static atomic_long failures;
static atomic_int stop;

static void *swapper(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        if (syscall(SYS_renameat2, AT_FDCWD, path_a, AT_FDCWD, path_b, RENAME_EXCHANGE) == 0)
            atomic_fetch_add_explicit(&swaps, 1, memory_order_relaxed);
        else
            atomic_fetch_add_explicit(&failures, 1, memory_order_relaxed);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: %s PATH ALT SECONDS [THREADS]\n", argv[0]);
        return 2;
    }
    path_a = argv[1];
    path_b = argv[2];
    double seconds = atof(argv[3]);
    int threads = argc == 5 ? atoi(argv[4]) : 1;
    if (seconds <= 0 || threads < 1 || threads > 64) {
        fprintf(stderr, "SECONDS must be > 0 and THREADS in 1..64\n");
        return 2;
    }

    pthread_t tids[64];
    for (int i = 0; i < threads; i++) {
        int rc = pthread_create(&tids[i], NULL, swapper, NULL);
        if (rc != 0) {
            fprintf(stderr, "pthread_create: %s\n", strerror(rc));
            return 2;
        }
    }
    struct timespec ts = { .tv_sec = (time_t)seconds, .tv_nsec = (long)((seconds - (time_t)seconds) * 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);

    /* Leave the names as they started: an even number of swaps restores them. */
    if (atomic_load(&swaps) % 2 != 0 &&
        syscall(SYS_renameat2, AT_FDCWD, path_a, AT_FDCWD, path_b, RENAME_EXCHANGE) == 0)
        atomic_fetch_add(&swaps, 1);

    printf("swaps=%ld failures=%ld\n", atomic_load(&swaps), atomic_load(&failures));
    return atomic_load(&swaps) > 0 ? 0 : 1;
}
