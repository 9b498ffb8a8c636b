// Linked into bin/inspatialfs (the NativeAOT daemon) as an ELF constructor, so it runs before the .NET runtime starts.
//
// The overlay mount program (`inspatialfs-overlay -o lowerdir=...,upperdir=...,workdir=... TARGET`, which podman and
// the rest of containers/storage exec for every container) must return once the mount serves and leave the server
// running, as fuse-overlayfs does. It used to start the .NET runtime twice: once to read the command line, write the
// instance config and spawn a detached server, and once more as that server. A runtime start is most of the cost, and
// the container waits for all of it.
//
// Here the process detaches before the runtime exists: it forks, and
//  - the child (in its own session, signals as a fresh process has them), for a kept mount (the default), execs
//    inspatialfs-keeper at once, which starts the server as `inspatialfs overlay-mount` with the same options; that
//    server then goes as below (its keeper, not the server, writes the ready byte, on READY=1). With -o no_keeper or
//    io_uring, or without an installed keeper, the child goes on into the runtime and is the whole
//    overlay mount program and then its server, in one start. Until it serves, its stdio is still the caller's, so a
//    bad option or a failed mount is reported on the caller's stderr with the usual exit code. When it serves it moves
//    its stdio to its log (the caller's pipes see end of file) and writes one byte to the readiness pipe
//    ($INSPATIALFS_READY_FD; see ReadinessPipe.cs);
//  - the parent never starts the runtime. It waits for that byte and exits 0, or, when the pipe ends without it,
//    exits with the child's exit status.
//
// It acts only for the overlay mount program in the background (the default). --foreground (-f), help and version fall
// through to the managed code, which serves or answers in this process as before.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "early-common.h"

#define PROGRAM "inspatialfs-overlay"
#define READY_VARIABLE "INSPATIALFS_READY_FD"
// Tells the managed overlay mount program that this process is already the detached server.
#define DETACHED_VARIABLE "INSPATIALFS_EARLY_DETACHED"
#define READY_BYTE 'R'
#define READY_WITHIN_MS 30000

// Variables a detached server must not inherit: the caller's systemd notification and socket-activation state (the
// managed starter drops the same ones).
static const char *const not_inherited[] = {
    "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", NULL,
};

// Options after which this process must not detach: it serves in the foreground or only answers.
static int stays_in_foreground(const char *arg) {
    return strcmp(arg, "-f") == 0 || strncmp(arg, "--foreground", 12) == 0 || strcmp(arg, "-h") == 0 ||
           strcmp(arg, "-?") == 0 || strcmp(arg, "--help") == 0 || strcmp(arg, "--version") == 0 || arg[0] == '@';
}

// Options after which the managed code decides whether the mount is kept (no_keeper, io_uring: never). A substring
// is enough: a path that merely contains one only costs the slower start, in which the managed code decides exactly.
static int keeper_decided_later(const char *arg) { return strstr(arg, "no_keeper") != NULL || strstr(arg, "io_uring") != NULL; }

// The kept mount (the default): this child becomes inspatialfs-keeper at once, and the keeper starts the server as
// `inspatialfs overlay-mount ARGS` (the same options; restarted the same way). So the runtime starts once, in the
// server, instead of once here to exec the keeper and once more in the server. The server's stdio is the caller's until
// it serves, so a bad option or profile is reported to the caller as without a keeper, and the keeper's exit status
// (the server's, when it fails before serving) reaches the parent. Returns only when there is no keeper to exec.
static void become_keeper(int argc, char **argv, int first, int ready) {
    for (int i = first; i < argc; i++)
        if (keeper_decided_later(argv[i])) return;
    char self[PATH_MAX], keeper[PATH_MAX];
    if (!early_keeper_next_to_self(self, keeper)) return;
    char **keeper_argv = calloc((size_t)(argc - first) + 5, sizeof *keeper_argv);
    if (!keeper_argv) return;
    keeper_argv[0] = keeper;
    keeper_argv[1] = "--";
    keeper_argv[2] = self;
    keeper_argv[3] = "overlay-mount";
    for (int i = first; i < argc; i++) keeper_argv[i - first + 4] = argv[i];
    int flags = fcntl(ready, F_GETFD);
    if (flags >= 0 && fcntl(ready, F_SETFD, flags & ~FD_CLOEXEC) == 0) {  // the keeper's now: it writes the ready byte
        extern char **environ;
        execve(keeper, keeper_argv, environ);
        fcntl(ready, F_SETFD, flags);
    }
    free(keeper_argv);  // exec failed: the managed code starts the keeper later, or serves without it and says why
}

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

// The exit status to pass on once the readiness pipe ended without the byte.
static int status_of(pid_t child) {
    // The server closes the pipe only by exiting; allow it a moment to be reaped before calling it stuck.
    long long deadline = now_ms() + 2000;
    for (;;) {
        int status;
        pid_t r = waitpid(child, &status, WNOHANG);
        if (r == child && WIFEXITED(status)) return WEXITSTATUS(status);
        if (r == child && WIFSIGNALED(status)) {
            dprintf(2, PROGRAM ": the server (pid %d) was killed by signal %d before it mounted\n", child, WTERMSIG(status));
            return 128 + WTERMSIG(status);
        }
        if (r < 0 && errno != EINTR) break;
        if (now_ms() >= deadline) break;
        usleep(1000);
    }
    dprintf(2, PROGRAM ": the server (pid %d) closed its readiness pipe without mounting\n", child);
    return 1;
}

// The parent's whole life: the child's ready byte (0), its exit status, or a timeout (1).
static int wait_until_served(int ready, pid_t child, const char *target) {
    long long deadline = now_ms() + READY_WITHIN_MS;
    for (;;) {
        long long left = deadline - now_ms();
        struct pollfd p = {.fd = ready, .events = POLLIN};
        int n = poll(&p, 1, left > 0 ? (int)left : 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            dprintf(2, PROGRAM ": %s was not mounted within %d s (server pid %d; its log is daemon.log in its state directory)\n",
                    target, READY_WITHIN_MS / 1000, child);
            return 1;
        }
        char got;
        ssize_t r = read(ready, &got, 1);
        if (r < 0 && errno == EINTR) continue;
        if (r == 1 && got == READY_BYTE) return 0;
        return status_of(child);
    }
}

__attribute__((constructor)) static void detach_overlay_mount_early(int argc, char **argv, char **envp) {
    (void)envp;
    if (argc < 2 || !argv) return;
    const char *base = strrchr(argv[0], '/');
    int first;
    if (strcmp(base ? base + 1 : argv[0], PROGRAM) == 0) first = 1;
    else if (argc >= 3 && strcmp(argv[1], "overlay-mount") == 0) first = 2;
    else return;
    // Only this constructor says that a process is already detached: never a variable the caller passed.
    unsetenv(DETACHED_VARIABLE);
    for (int i = first; i < argc; i++)
        if (stays_in_foreground(argv[i])) return;
    if (early_started_by_keeper()) {
        // The kept server (become_keeper below started the keeper, which started this): detached already, by its keeper.
        setenv(DETACHED_VARIABLE, "1", 1);
        return;
    }

    // A caller that ignores SIGCHLD would have the child reaped unseen, and its exit status lost to the parent.
    signal(SIGCHLD, SIG_DFL);
    int ends[2];
    if (pipe2(ends, O_CLOEXEC) != 0) return;  // the managed code starts the server the old way
    if (ends[0] < 3 || ends[1] < 3) {  // the caller closed a standard descriptor: the log would later take its number
        close(ends[0]);
        close(ends[1]);
        return;
    }
    pid_t child = fork();
    if (child < 0) {
        close(ends[0]);
        close(ends[1]);
        return;
    }

    if (child > 0) {
        close(ends[1]);
        _exit(wait_until_served(ends[0], child, argv[argc - 1]));
    }

    // The child: the server-to-be. Its own session (no terminal, no caller's process group), and the signal state of a
    // freshly spawned process whatever the caller had ignored or blocked.
    close(ends[0]);
    setsid();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    static const int defaults[] = {SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE, SIGTERM, SIGCHLD};
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) signal(defaults[i], SIG_DFL);
    for (int i = 0; not_inherited[i]; i++) unsetenv(not_inherited[i]);
    char fd[16];
    snprintf(fd, sizeof fd, "%d", ends[1]);
    setenv(READY_VARIABLE, fd, 1);
    become_keeper(argc, argv, first, ends[1]);
    setenv(DETACHED_VARIABLE, "1", 1);
}
