/*
 * floodops: drives a mount hard from one process, for the flood tests (built statically so it runs in a busybox
 * container too: gcc -O2 -static -o floodops floodops.c).
 *
 *   floodops open PATH COUNT               COUNT open(PATH, O_RDONLY) calls as fast as one process can go; prints
 *                                          "opens=N ok=N eacces=N other=N seconds=S"
 *   floodops stat PATH STOPFILE SECONDS    statx(PATH, AT_STATX_FORCE_SYNC) in a loop (each one a GETATTR the daemon
 *                                          answers) until STOPFILE exists or SECONDS pass; prints
 *                                          "stats=N errors=N p50_us=X p99_us=X max_us=X"
 *   floodops shed-open NEWROOT PATH        chroot(NEWROOT) WITHOUT changing directory (the cwd stays where it was, e.g.
 *                                          on the mount), then open(PATH, O_RDONLY) relative to that cwd; prints
 *                                          "chroot=OK open=OK|ERRNO" (the "shed membership by chroot" attack)
 *
 * Exits 0 after printing, 2 on usage errors. Test tool only; never part of the product.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int flood_open(const char *path, long count)
{
    long ok = 0, eacces = 0, other = 0;
    double start = now_seconds();
    for (long i = 0; i < count; i++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ok++;
            close(fd);
        } else if (errno == EACCES) {
            eacces++;
        } else {
            other++;
        }
    }
    printf("opens=%ld ok=%ld eacces=%ld other=%ld seconds=%.2f\n", count, ok, eacces, other, now_seconds() - start);
    return 0;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int stat_latency(const char *path, const char *stopfile, double seconds)
{
    size_t cap = 1 << 20, n = 0;
    long errors = 0;
    double *lat = malloc(cap * sizeof *lat);
    if (lat == NULL)
        return 1;
    double end = now_seconds() + seconds;
    for (long i = 0;; i++) {
        if ((i & 255) == 0 && (now_seconds() > end || access(stopfile, F_OK) == 0))
            break;
        struct statx st;
        double t0 = now_seconds();
        int rc = statx(AT_FDCWD, path, AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, &st);
        double us = (now_seconds() - t0) * 1e6;
        if (rc != 0) {
            errors++;
            continue;
        }
        if (n == cap) {
            double *bigger = realloc(lat, 2 * cap * sizeof *lat);
            if (bigger == NULL)
                break;
            lat = bigger;
            cap *= 2;
        }
        lat[n++] = us;
    }
    if (n == 0) {
        printf("stats=0 errors=%ld p50_us=0 p99_us=0 max_us=0\n", errors);
        free(lat);
        return 0;
    }
    qsort(lat, n, sizeof *lat, compare_doubles);
    printf("stats=%zu errors=%ld p50_us=%.0f p99_us=%.0f max_us=%.0f\n", n, errors, lat[n / 2], lat[(size_t)(n * 0.99)], lat[n - 1]);
    free(lat);
    return 0;
}

static int shed_open(const char *newroot, const char *path)
{
    if (chroot(newroot) != 0) {
        printf("chroot=%s\n", strerrorname_np(errno));
        return 0;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    printf("chroot=OK open=%s\n", fd >= 0 ? "OK" : strerrorname_np(errno));
    if (fd >= 0)
        close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "shed-open") == 0)
        return shed_open(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "open") == 0)
        return flood_open(argv[2], atol(argv[3]));
    if (argc == 5 && strcmp(argv[1], "stat") == 0)
        return stat_latency(argv[2], argv[3], atof(argv[4]));
    fprintf(stderr, "usage: floodops open PATH COUNT | floodops stat PATH STOPFILE SECONDS | floodops shed-open NEWROOT PATH\n");
    return 2;
}
