// fsmeta: metadata load for benchmarks. Runs the phases create, stat (warm), readdir, stat-cold (after
// dropping caches when allowed), unlink over FILES files spread across DIRS directories under ROOT and prints
// one line per phase: "<phase>\t<seconds>\t<ops/s>". Used by scripts/bench.sh against every mount in turn.
// With FSMETA_HOOK set, runs that shell command just before and just after each timed phase, with FSMETA_EVENT
// (begin/end) and FSMETA_PHASE in its environment: bench.sh samples the file system daemon's CPU time there.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *path) {
    fprintf(stderr, "fsmeta: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

static void hook(const char *event, const char *phase) {
    const char *command = getenv("FSMETA_HOOK");
    if (!command || !*command) return;
    setenv("FSMETA_EVENT", event, 1);
    setenv("FSMETA_PHASE", phase, 1);
    if (system(command) != 0) fprintf(stderr, "fsmeta: FSMETA_HOOK failed at %s %s\n", event, phase);
}

// Starts a timed phase: the hook runs first, outside the timing.
static double begin(const char *phase) {
    hook("begin", phase);
    return now();
}

static void report(const char *phase, double seconds, long ops) {
    hook("end", phase);
    printf("%s\t%.6f\t%.0f\n", phase, seconds, seconds > 0 ? ops / seconds : 0.0);
    fflush(stdout);
}

static void drop_caches(void) {
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd >= 0) {
        if (write(fd, "3", 1) < 0) { /* not allowed: stat-cold is then warm */ }
        close(fd);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: fsmeta ROOT [FILES=20000] [DIRS=100] [READDIR_PASSES=1]\n");
        return 2;
    }
    const char *root = argv[1];
    long files = argc > 2 ? atol(argv[2]) : 20000;
    long dirs = argc > 3 ? atol(argv[3]) : 100;
    long readdir_passes = argc > 4 ? atol(argv[4]) : 1;
    if (files <= 0 || dirs <= 0 || readdir_passes <= 0) {
        fprintf(stderr, "fsmeta: FILES, DIRS and READDIR_PASSES must be positive\n");
        return 2;
    }
    char path[4096];
    struct stat st;

    for (long d = 0; d < dirs; d++) {
        snprintf(path, sizeof path, "%s/d%03ld", root, d);
        if (mkdir(path, 0755) != 0 && errno != EEXIST) die("mkdir", path);
    }

    double t = begin("create");
    for (long i = 0; i < files; i++) {
        snprintf(path, sizeof path, "%s/d%03ld/f%06ld", root, i % dirs, i);
        int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0) die("create", path);
        close(fd);
    }
    report("create", now() - t, files);

    t = begin("stat");
    for (long i = 0; i < files; i++) {
        snprintf(path, sizeof path, "%s/d%03ld/f%06ld", root, i % dirs, i);
        if (stat(path, &st) != 0) die("stat", path);
    }
    report("stat", now() - t, files);

    // READDIR_PASSES listings of every directory: one pass over 100 directories takes ~10 ms, too short to time.
    t = begin("readdir");
    long seen = 0;
    for (long pass = 0; pass < readdir_passes; pass++) {
        for (long d = 0; d < dirs; d++) {
            snprintf(path, sizeof path, "%s/d%03ld", root, d);
            DIR *dir = opendir(path);
            if (!dir) die("opendir", path);
            struct dirent *e;
            while ((e = readdir(dir)) != NULL) seen++;
            closedir(dir);
        }
    }
    report("readdir", now() - t, seen);

    drop_caches();
    t = begin("stat-cold");
    for (long i = 0; i < files; i++) {
        snprintf(path, sizeof path, "%s/d%03ld/f%06ld", root, i % dirs, i);
        if (stat(path, &st) != 0) die("stat", path);
    }
    report("stat-cold", now() - t, files);

    t = begin("unlink");
    for (long i = 0; i < files; i++) {
        snprintf(path, sizeof path, "%s/d%03ld/f%06ld", root, i % dirs, i);
        if (unlink(path) != 0) die("unlink", path);
    }
    report("unlink", now() - t, files);

    for (long d = 0; d < dirs; d++) {
        snprintf(path, sizeof path, "%s/d%03ld", root, d);
        rmdir(path);
    }
    return 0;
}
