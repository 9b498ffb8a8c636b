// Shared by the early-*.c constructors (linked into bin/inspatialfs, run before the .NET runtime starts): finding the
// keeper, detaching a server from its caller, and exec'ing the keeper with a command line.
#ifndef INSPATIALFS_EARLY_COMMON_H
#define INSPATIALFS_EARLY_COMMON_H
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEEPER_NAME "inspatialfs-keeper"
#define READY_VARIABLE "INSPATIALFS_READY_FD"
// Tells the managed code that this process is a server detached from its caller (ReadinessPipe.EarlyDetachedVariable).
#define DETACHED_VARIABLE "INSPATIALFS_EARLY_DETACHED"
#define READY_BYTE 'R'
#define READY_WITHIN_MS 30000

// This binary's path (self) and the keeper installed next to it (keeper), both PATH_MAX long; 0 when there is no
// keeper to exec: not installed, or this binary was replaced under us (an upgrade: the keeper could not start the path).
static inline int early_keeper_next_to_self(char *self, char *keeper) {
    ssize_t n = readlink("/proc/self/exe", self, PATH_MAX - 1);
    if (n <= 0 || n >= PATH_MAX - 1) return 0;
    self[n] = '\0';
    static const char deleted[] = " (deleted)";
    if ((size_t)n >= sizeof deleted - 1 && strcmp(self + n - (sizeof deleted - 1), deleted) == 0) return 0;
    const char *slash = strrchr(self, '/');
    if (!slash || (size_t)(slash - self) + sizeof "/" KEEPER_NAME > PATH_MAX) return 0;
    memcpy(keeper, self, (size_t)(slash - self));
    strcpy(keeper + (slash - self), "/" KEEPER_NAME);
    return access(keeper, X_OK) == 0;
}

// Started by inspatialfs-keeper, which names its notify socket and itself in the environment: this process is the
// server. Believed only from the parent (a variable inherited further down names some other process).
static inline int early_started_by_keeper(void) {
    const char *notify = getenv("NOTIFY_SOCKET"), *keeper = getenv("INSPATIALFS_KEEPER_PID");
    if (!notify || !*notify || !keeper || !*keeper) return 0;
    char *end;
    long pid = strtol(keeper, &end, 10);
    return *end == '\0' && pid > 0 && pid == (long)getppid();
}

// Mount options after which the managed code decides whether the mount is kept (no_keeper, io_uring: never). A
// substring is enough: a path that merely contains one only costs the slower start, in which it decides exactly.
static inline int early_keeping_decided_later(const char *arg) {
    return strstr(arg, "no_keeper") != NULL || strstr(arg, "io_uring") != NULL;
}

// Execs the keeper on `SELF ARGS...` (args: count, vector), in place of this process; returns only when it could not.
// `ready`, the readiness pipe's write end or -1, goes to the keeper, which writes the ready byte on READY=1.
static inline void early_exec_keeper(char **args, int count, int ready) {
    char self[PATH_MAX], keeper[PATH_MAX];
    if (!early_keeper_next_to_self(self, keeper)) return;
    char **keeper_argv = calloc((size_t)count + 4, sizeof *keeper_argv);
    if (!keeper_argv) return;
    keeper_argv[0] = keeper;
    keeper_argv[1] = "--";
    keeper_argv[2] = self;
    for (int i = 0; i < count; i++) keeper_argv[i + 3] = args[i];
    int flags = ready >= 0 ? fcntl(ready, F_GETFD) : 0;
    if (flags >= 0 && (ready < 0 || fcntl(ready, F_SETFD, flags & ~FD_CLOEXEC) == 0)) {
        extern char **environ;
        execve(keeper, keeper_argv, environ);
        if (ready >= 0) fcntl(ready, F_SETFD, flags);
    }
    free(keeper_argv);  // exec failed: the managed code tries once more and reports why
}

static inline long long early_now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

// The exit status to pass on once the readiness pipe ended without the byte.
static inline int early_status_of(const char *who, pid_t child) {
    // The server closes the pipe only by exiting; allow it a moment to be reaped before calling it stuck.
    long long deadline = early_now_ms() + 2000;
    for (;;) {
        int status;
        pid_t r = waitpid(child, &status, WNOHANG);
        if (r == child && WIFEXITED(status)) return WEXITSTATUS(status);
        if (r == child && WIFSIGNALED(status)) {
            dprintf(2, "%s: the server (pid %d) was killed by signal %d before it mounted\n", who, child, WTERMSIG(status));
            return 128 + WTERMSIG(status);
        }
        if (r < 0 && errno != EINTR) break;
        if (early_now_ms() >= deadline) break;
        usleep(1000);
    }
    dprintf(2, "%s: the server (pid %d) closed its readiness pipe without mounting\n", who, child);
    return 1;
}

// The parent's whole life: the child's ready byte (0), its exit status, or a timeout (1).
static inline int early_wait_until_served(const char *who, int ready, pid_t child, const char *target) {
    long long deadline = early_now_ms() + READY_WITHIN_MS;
    for (;;) {
        long long left = deadline - early_now_ms();
        struct pollfd p = {.fd = ready, .events = POLLIN};
        int n = poll(&p, 1, left > 0 ? (int)left : 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            dprintf(2, "%s: %s was not mounted within %d s (server pid %d; its log is daemon.log in its state directory)\n",
                    who, target, READY_WITHIN_MS / 1000, child);
            return 1;
        }
        char got;
        ssize_t r = read(ready, &got, 1);
        if (r < 0 && errno == EINTR) continue;
        if (r == 1 && got == READY_BYTE) return 0;
        return early_status_of(who, child);
    }
}

// Detaches the server-to-be from its caller: forks, and the parent waits for the ready byte and exits 0, or with the
// child's exit status when the pipe ends without it. Returns in the child (in its own session, with the signal state
// of a freshly spawned process and $INSPATIALFS_READY_FD set) the pipe's write end; -1, undetached, when it cannot.
static inline int early_detach(const char *who, const char *target) {
    // Variables a detached server must not inherit: the caller's systemd notification and socket-activation state
    // (the managed starter drops the same ones).
    static const char *const not_inherited[] = {
        "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", NULL,
    };
    // A caller that ignores SIGCHLD would have the child reaped unseen, and its exit status lost to the parent.
    signal(SIGCHLD, SIG_DFL);
    int ends[2];
    if (pipe2(ends, O_CLOEXEC) != 0) return -1;  // the managed code starts the server the old way
    if (ends[0] < 3 || ends[1] < 3) {  // the caller closed a standard descriptor: the log would later take its number
        close(ends[0]);
        close(ends[1]);
        return -1;
    }
    pid_t child = fork();
    if (child < 0) {
        close(ends[0]);
        close(ends[1]);
        return -1;
    }
    if (child > 0) {
        close(ends[1]);
        _exit(early_wait_until_served(who, ends[0], child, target));
    }

    // The child: its own session (no terminal, no caller's process group), and the signal state of a freshly spawned
    // process whatever the caller had ignored or blocked.
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
    return ends[1];
}
#endif
