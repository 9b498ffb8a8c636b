// inspatialfs-keeper: keeps a FUSE connection alive across server crashes and upgrades.
//
// A FUSE connection lives as long as some process holds one of its /dev/fuse descriptors. The server hands its
// descriptors to this keeper (sd_notify FDSTORE=1 over $NOTIFY_SOCKET, as it would to systemd with
// FileDescriptorStoreMax=); when the server dies the keeper starts it again and passes them back the way systemd
// does (LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES, descriptors at 3..). So the server has one code path for both.
// The keeper never reads or writes the descriptors; it only holds them. Single-threaded: one poll() loop over a
// signalfd and the notify socket.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STORE_MAX 256     // the store's size; the child learns it from $FDSTORE, as from systemd >= 254
#define EXIT_HANDOVER 75  // the server's "start the next server on my descriptors" (planned upgrade/restart)
#define MSG_MAX 4096      // systemd's limit for one notification too
#define READY_BYTE "R"    // what the launcher waits for (ReadinessPipe.ReadyByte in the daemon); EOF means failed

static const char usage_text[] =
    "usage: inspatialfs-keeper [--max-restarts N] [--restart-window SECONDS] -- PROGRAM [ARGS...]\n"
    "Runs PROGRAM (a FUSE server) and holds the descriptors it stores with sd_notify FDSTORE=1 on $NOTIFY_SOCKET.\n"
    "When the server dies (by a signal, or non-zero after READY=1) or exits 75 (handover), the keeper starts it\n"
    "again with the descriptors (LISTEN_FDS, LISTEN_FDNAMES), so the mount survives. It stops after STOPPING=1,\n"
    "after SIGTERM/SIGINT (forwarded to the server), or after more than N restarts within SECONDS\n"
    "(default 20 in 60). SIGHUP and SIGUSR2 are forwarded to the server as they are.\n"
    "X_INSPATIALFS_EXEC=/path switches the program for the next start; X_INSPATIALFS_STDIO=1 with one descriptor\n"
    "makes it the keeper's stdout and stderr.\n";

struct stored { int fd; char name[256]; };
static struct stored store[STORE_MAX];
static int nstored;

static pid_t keeper_pid;
static char notify_addr[108];   // "@inspatialfs-keeper-<pid>-<hex>", as the child sees it
static int nsock = -1;          // the notify socket (abstract address)
static int ready_fd = -1;       // the launcher's readiness pipe, until the first server is ready or exits
static char program[PATH_MAX];  // what the next start executes
static char **child_argv;       // PROGRAM ARGS... (slot 0 is replaced by `program` in the child)
static pid_t child;             // the current server, 0 when none
static int child_ready, child_stopping, stop_requested;
// Some server reached READY=1: the mount is live, and its users wait on it. A later server that fails before READY=1
// (a full disk, a port taken in the gap, a broken upgrade) is then retried, on the program of the last server that
// served, with a growing pause, up to TAKEOVER_TRIES times in a row, rather than the mount being dropped at once.
#define TAKEOVER_TRIES 20
#define TAKEOVER_PAUSE_MAX_S 15
static int ever_ready, failed_takeovers;
static uint64_t restart_at;  // a failed takeover's pause: the next start is due then (0: none pending)
static int paused_code;      // the exit code of the server whose takeover failed (the keeper's, if stopped meanwhile)
static char running[PATH_MAX];        // the program the current server runs
static char ready_program[PATH_MAX];  // the program of the last server that reached READY=1
static unsigned long restarts, crashes, max_restarts = 20, window_s = 60;
static uint64_t *restart_times;  // ring of the last max_restarts crash restart times
static uint64_t handover_since;

static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("inspatialfs-keeper: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void die(const char *what) { say("%s: %s", what, strerror(errno)); exit(1); }

// close() is not retried on EINTR: on Linux the descriptor is gone either way.
static void close_fd(int fd) { if (fd >= 0 && close(fd) != 0 && errno != EINTR) say("close(%d): %s", fd, strerror(errno)); }

static uint64_t now_ns(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) die("clock_gettime");
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int valid_name(const char *s) {  // systemd's FDNAME rules, restricted to a portable set
    size_t n = strlen(s);
    if (n < 1 || n > 255) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr("_.-", *s))) return 0;
    return 1;
}

static void store_add(int fd, const char *name) {
    if (nstored == STORE_MAX) { say("descriptor store full (%d); closing a descriptor named %s", STORE_MAX, name); close_fd(fd); return; }
    store[nstored].fd = fd;
    strcpy(store[nstored++].name, name);  // length checked by valid_name
}

static void store_remove(const char *name) {
    int kept = 0;
    for (int i = 0; i < nstored; i++)
        if (strcmp(store[i].name, name) == 0) close_fd(store[i].fd); else store[kept++] = store[i];
    nstored = kept;
}

// Closing the last copy of the /dev/fuse descriptors is what ends the connection (and fails the mount's users).
static void store_clear(void) { for (int i = 0; i < nstored; i++) close_fd(store[i].fd); nstored = 0; }

static void release_ready_fd(int ready) {
    if (ready_fd < 0) return;
    if (ready) {
        ssize_t w;
        do w = write(ready_fd, READY_BYTE, 1); while (w < 0 && errno == EINTR);
        if (w != 1) say("readiness pipe: %s", w < 0 ? strerror(errno) : "short write");
    }
    close_fd(ready_fd);  // without a byte: the launcher sees end of file, i.e. the server failed to start
    ready_fd = -1;
}

static _Noreturn void child_fail(const char *what) {
    fprintf(stderr, "inspatialfs-keeper: %s: %s\n", what, strerror(errno));
    _exit(127);
}

// In the forked child: a clean signal state, the notify/activation environment, stored descriptors at 3.., exec.
static _Noreturn void exec_child(void) {
    char buf[64];
    sigset_t none;
    for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);  // fails for SIGKILL/SIGSTOP and libc-internal ones: fine
    if (sigemptyset(&none) != 0 || sigprocmask(SIG_SETMASK, &none, NULL) != 0) child_fail("sigprocmask");
    // The server goes with its keeper (kill -9 of `inspatialfs mount` ends the instance, as without a keeper): an orphan
    // would serve on with nobody to restart it, holding the state directory. Kept across exec; checked for a keeper that
    // died before the prctl.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) child_fail("prctl(PR_SET_PDEATHSIG)");
    if (getppid() != keeper_pid) _exit(1);
    static const char *const inherited[] = {"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "FDSTORE",
        "WATCHDOG_USEC", "WATCHDOG_PID", "INSPATIALFS_HANDOVER_SINCE", NULL};  // meant for the keeper, not for us
    for (int i = 0; inherited[i]; i++) if (unsetenv(inherited[i]) != 0) child_fail("unsetenv");
    if (setenv("NOTIFY_SOCKET", notify_addr, 1) != 0) child_fail("setenv");
    snprintf(buf, sizeof buf, "%d", STORE_MAX);
    if (setenv("FDSTORE", buf, 1) != 0) child_fail("setenv");
    snprintf(buf, sizeof buf, "%d", (int)keeper_pid);
    if (setenv("INSPATIALFS_KEEPER_PID", buf, 1) != 0) child_fail("setenv");
    snprintf(buf, sizeof buf, "%lu", restarts);
    if (setenv("INSPATIALFS_RESTARTS", buf, 1) != 0) child_fail("setenv");
    if (restarts > 0) {
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)handover_since);
        if (setenv("INSPATIALFS_HANDOVER_SINCE", buf, 1) != 0) child_fail("setenv");
    }
    int n = nstored;
    if (n > 0) {
        // Two steps, because a stored descriptor may itself sit at some 3+i: first copy all above 3+n, then down.
        // The copies are CLOEXEC (gone at exec); dup2 clears CLOEXEC on the targets, which the server inherits.
        int tmp[STORE_MAX];
        static char names[STORE_MAX * 256];
        size_t len = 0;
        for (int i = 0; i < n; i++)
            if ((tmp[i] = fcntl(store[i].fd, F_DUPFD_CLOEXEC, 3 + n)) < 0) child_fail("fcntl(F_DUPFD_CLOEXEC)");
        for (int i = 0; i < n; i++) {
            int r;
            do r = dup2(tmp[i], 3 + i); while (r < 0 && errno == EINTR);
            if (r < 0) child_fail("dup2");
            len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", i ? ":" : "", store[i].name);
        }
        snprintf(buf, sizeof buf, "%d", n);
        if (setenv("LISTEN_FDS", buf, 1) != 0 || setenv("LISTEN_FDNAMES", names, 1) != 0) child_fail("setenv");
        snprintf(buf, sizeof buf, "%d", (int)getpid());  // the child's own pid: only known after fork
        if (setenv("LISTEN_PID", buf, 1) != 0) child_fail("setenv");
    }
    // Nothing else goes to the server: not the keeper's own descriptors (CLOEXEC anyway), not the copies above,
    // and not whatever the keeper inherited from its own parent without CLOEXEC.
    if (close_range(3 + (unsigned)n, ~0u, 0) != 0) {
        struct rlimit rl;
        int top = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (int)rl.rlim_cur : 65536;
        for (int fd = 3 + n; fd < top; fd++) close(fd);  // EBADF expected for most
    }
    child_argv[0] = program;
    execv(program, child_argv);
    fprintf(stderr, "inspatialfs-keeper: cannot execute %s: %s\n", program, strerror(errno));
    _exit(127);
}

static void start_child(void) {
    pid_t pid = fork();
    if (pid < 0) { say("fork: %s; closing %d stored descriptors", strerror(errno), nstored); store_clear(); exit(1); }
    if (pid == 0) exec_child();
    child = pid;
    child_ready = child_stopping = 0;
    strcpy(running, program);
}

static void set_next_program(const char *path) {
    struct stat st;
    const char *why = NULL;
    if (path[0] != '/' || strlen(path) >= sizeof program) why = "not an absolute path";
    else if (stat(path, &st) != 0) why = strerror(errno);
    else if (!S_ISREG(st.st_mode)) why = "not a regular file";
    else if (st.st_uid != 0 && st.st_uid != geteuid()) why = "owned by another user";
    else if (st.st_mode & (S_IWGRP | S_IWOTH)) why = "writable by group or others";
    else if (!(st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH))) why = "not executable";
    if (why) { say("X_INSPATIALFS_EXEC=%s refused (%s); keeping %s", path, why, program); return; }
    strcpy(program, path);
    say("the next server will run %s", program);
}

// X_INSPATIALFS_STDIO=1 with one descriptor (the server's log): the keeper's stdout and stderr from now on, stdin
// /dev/null. A keeper its caller started directly (the overlay mount program's) holds the caller's pipes until then,
// and the caller would wait for their end of file as long as the keeper lives.
static void take_stdio(int fd) {
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) say("X_INSPATIALFS_STDIO=1: %s", strerror(errno));
    if (null >= 0) close_fd(null);
    close_fd(fd);
}

// One notification from the current server: KEY=VALUE lines, the fds it carried (ours now; stored or closed).
static void handle_message(char *text, int *fds, int nfds) {
    int ready = 0, stopping = 0, fdstore = 0, fdremove = 0, stdio = 0;
    const char *name = NULL, *exec_path = NULL;
    for (char *line = text, *next; line; line = next) {
        if ((next = strchr(line, '\n'))) *next++ = '\0';
        if (strcmp(line, "READY=1") == 0) ready = 1;
        else if (strcmp(line, "STOPPING=1") == 0) stopping = 1;
        else if (strcmp(line, "FDSTORE=1") == 0) fdstore = 1;
        else if (strcmp(line, "FDSTOREREMOVE=1") == 0) fdremove = 1;
        else if (strncmp(line, "FDNAME=", 7) == 0) name = line + 7;
        else if (strncmp(line, "X_INSPATIALFS_EXEC=", 19) == 0) exec_path = line + 19;
        else if (strcmp(line, "X_INSPATIALFS_STDIO=1") == 0) stdio = 1;
        // STATUS=, MAINPID=, WATCHDOG=1, RELOADING=1, ...: nothing to do
    }
    if (name && !valid_name(name) && (fdstore || fdremove)) { say("invalid FDNAME=%s ignored", name); fdstore = fdremove = 0; }
    if (fdremove) { if (name) store_remove(name); else say("FDSTOREREMOVE=1 without FDNAME= ignored"); }
    if (stdio && !fdstore && nfds == 1) { take_stdio(fds[0]); nfds = 0; }
    else if (stdio) say("X_INSPATIALFS_STDIO=1 wants exactly one descriptor and no FDSTORE=1; ignored");
    for (int i = 0; i < nfds; i++)
        if (fdstore) store_add(fds[i], name ? name : "stored"); else close_fd(fds[i]);
    if (exec_path) set_next_program(exec_path);
    if (stopping) child_stopping = 1;
    if (ready && !child_ready) {
        child_ready = 1;
        ever_ready = 1;
        failed_takeovers = 0;
        strcpy(ready_program, running);
        release_ready_fd(1);  // ready_fd is open only for the first server
    }
}

// Notifications from anyone but the server, logged at most once per IGNORED_LOG_SECONDS with how many came meanwhile:
// any local user can send to the abstract address (it is listed in /proc/net/unix), and a line per datagram would let
// them fill the disk the log is on.
#define IGNORED_LOG_SECONDS 10
static unsigned long ignored_unlogged;
static int ignored_logged;
static struct timespec ignored_logged_at;

static void note_ignored(pid_t sender, const char *why) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (ignored_logged && now.tv_sec - ignored_logged_at.tv_sec < IGNORED_LOG_SECONDS) { ignored_unlogged++; return; }
    if (ignored_unlogged > 0)
        say("notification from pid %d ignored (%s); %lu more ignored since the last such line", (int)sender, why, ignored_unlogged);
    else
        say("notification from pid %d ignored (%s)", (int)sender, why);
    ignored_unlogged = 0;
    ignored_logged = 1;
    ignored_logged_at = now;
}

// Reads every queued notification. Only the current server's are heeded (systemd's NotifyAccess=main): the
// kernel stamps each datagram with the sender's pid (SO_PASSCRED), which no sender can forge.
static void drain_notify(void) {
    for (;;) {
        char data[MSG_MAX + 1];
        union { struct cmsghdr align; char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(253 * sizeof(int))]; } ctl;
        struct iovec iov = {data, MSG_MAX};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
        ssize_t len = recvmsg(nsock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (len < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) say("recvmsg: %s", strerror(errno));
            return;
        }
        int fds[STORE_MAX], nfds = 0;
        pid_t sender = 0;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level != SOL_SOCKET) continue;
            if (cm->cmsg_type == SCM_CREDENTIALS && cm->cmsg_len == CMSG_LEN(sizeof(struct ucred))) {
                struct ucred uc;
                memcpy(&uc, CMSG_DATA(cm), sizeof uc);
                sender = uc.pid;
            } else if (cm->cmsg_type == SCM_RIGHTS) {
                size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < n; i++) {
                    int fd;
                    memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
                    if (nfds < STORE_MAX) fds[nfds++] = fd; else close_fd(fd);
                }
            }
        }
        const char *drop = NULL;
        if (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) drop = "truncated";
        else if (child == 0 || sender != child) drop = "not from the server";
        if (drop) {
            note_ignored(sender, drop);
            for (int i = 0; i < nfds; i++) close_fd(fds[i]);
            continue;
        }
        data[len] = '\0';
        handle_message(data, fds, nfds);
    }
}

// The server is gone: stop, or start the next one on the stored descriptors.
static void child_exited(int status) {
    pid_t pid = child;
    int signaled = WIFSIGNALED(status), code = signaled ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
    char how[64];
    if (signaled) snprintf(how, sizeof how, "killed by signal %d", WTERMSIG(status));
    else snprintf(how, sizeof how, "exited with code %d", code);
    uint64_t died = now_ns();
    child = 0;
    release_ready_fd(0);  // still open only if the first server never sent READY=1
    const char *stop = NULL;
    if (child_stopping) stop = "it sent STOPPING=1";
    else if (stop_requested) stop = "stop requested";
    else if (!signaled && code == EXIT_HANDOVER) stop = NULL;  // planned handover: restart
    else if (nstored == 0) stop = "no stored descriptors";     // a start-up failure does not loop
    else if (!signaled && code == 0 && !child_stopping) stop = "clean exit";
    else if (!signaled && code != 0 && !child_ready && !ever_ready) stop = "exited before READY=1";
    else if (!signaled && code != 0 && !child_ready && ++failed_takeovers > TAKEOVER_TRIES) stop = "no server took over the live mount";
    if (stop) {
        // A server that failed to start has said why on the same stderr (a config error, exit 2): one line, not two.
        int failed_start = !signaled && !child_ready && nstored == 0;
        if (code != 0 && !failed_start) say("server pid %d %s; not restarting (%s); closing %d stored descriptors", (int)pid, how, stop, nstored);
        store_clear();
        exit(code);
    }
    // Budget: more than max_restarts crash restarts within window_s means a loop, not a crash. The ring holds the
    // times of the last max_restarts of them; if the oldest is inside the window, this one is one too many. Planned
    // handovers (exit 75, an upgrade) do not count: a new server that fails before READY=1 is retried at most
    // TAKEOVER_TRIES times in a row, with pauses.
    if (signaled || code != EXIT_HANDOVER) {
        if (max_restarts == 0 || (crashes >= max_restarts && died - restart_times[crashes % max_restarts] < window_s * 1000000000ull)) {
            say("server pid %d %s; giving up after %lu restarts within %lu s; closing %d stored descriptors",
                (int)pid, how, max_restarts, window_s, nstored);
            store_clear();
            exit(1);
        }
        restart_times[crashes % max_restarts] = died;
        crashes++;
    }
    handover_since = died;
    restarts++;
    say("server pid %d %s; restart %lu with %d stored descriptors", (int)pid, how, restarts, nstored);
    // A handover (exit 75) is planned, also from a server that had not sent READY=1 yet (an upgrade asked for just after a
    // restart): its successor starts at once. Counting it as a failed takeover left the keeper waiting with no server,
    // and the mount's callers with it.
    if (!signaled && code != 0 && code != EXIT_HANDOVER && !child_ready) {
        // A failed takeover of the live mount: retried after a pause, on the last program that served.
        unsigned pause_s = failed_takeovers >= 5 ? TAKEOVER_PAUSE_MAX_S : failed_takeovers < 1 ? 1u : 1u << (failed_takeovers - 1);
        if (pause_s > TAKEOVER_PAUSE_MAX_S) pause_s = TAKEOVER_PAUSE_MAX_S;
        if (strcmp(program, ready_program) != 0) {
            say("server pid %d (%s) %s before taking over; the next one runs %s again, the last that served", (int)pid, running, how, ready_program);
            strcpy(program, ready_program);
        }
        say("server pid %d %s before taking over the live mount (try %d of %d); retrying in %u s", (int)pid, how, failed_takeovers, TAKEOVER_TRIES, pause_s);
        // Not a sleep here: the loop keeps serving signals meanwhile (a stop during the pause ends the keeper then).
        restart_at = died + pause_s * 1000000000ull;
        paused_code = code;
    }
    if (restart_at == 0) start_child();  // at once: requests queue on the connection meanwhile
}

static void reap(void) {
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0 && errno == EINTR) continue;
        if (pid < 0 && errno != ECHILD) say("waitpid: %s", strerror(errno));
        if (pid <= 0) return;
        if (pid != child) continue;  // someone else's orphan, inherited through exec: nothing to do
        // The dead server cannot send any more, so everything it sent before dying (FDSTORE=1 then SIGSEGV,
        // STOPPING=1 then exit) is queued now: read it before deciding.
        drain_notify();
        child_exited(status);
    }
}

static void handle_signals(int sfd) {
    for (;;) {
        struct signalfd_siginfo si;
        ssize_t r = read(sfd, &si, sizeof si);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno != EAGAIN) say("signalfd: %s", strerror(errno));
        if (r != (ssize_t)sizeof si) return;
        if (si.ssi_signo == SIGCHLD) { reap(); continue; }
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) stop_requested = 1;
        if (child > 0 && kill(child, (int)si.ssi_signo) != 0) say("kill(%d): %s", (int)child, strerror(errno));
    }
}

static unsigned long parse_number(const char *opt, const char *s, unsigned long max) {
    char *end;
    errno = 0;
    unsigned long v = s ? strtoul(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || *s == '-' || v > max) {
        fprintf(stderr, "inspatialfs-keeper: %s wants a number up to %lu\n%s", opt, max, usage_text);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv) {
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--") == 0) { i++; break; }
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { fputs(usage_text, stdout); return 0; }
        if (strcmp(argv[i], "--max-restarts") == 0) max_restarts = parse_number(argv[i], argv[i + 1], 100000), i++;
        else if (strcmp(argv[i], "--restart-window") == 0) window_s = parse_number(argv[i], argv[i + 1], 86400 * 365), i++;
        else { fprintf(stderr, "inspatialfs-keeper: unknown option %s\n%s", argv[i], usage_text); return 2; }
    }
    if (i >= argc) { fprintf(stderr, "inspatialfs-keeper: no PROGRAM given\n%s", usage_text); return 2; }
    if (strlen(argv[i]) >= sizeof program) { fprintf(stderr, "inspatialfs-keeper: PROGRAM path too long\n"); return 2; }
    strcpy(program, argv[i]);
    child_argv = &argv[i];
    if (!(restart_times = calloc(max_restarts ? max_restarts : 1, sizeof *restart_times))) die("calloc");
    keeper_pid = getpid();

    // Descriptors 0-2 must be taken, or the notify socket could land there and be mistaken for stdio.
    for (;;) {
        int fd = open("/dev/null", O_RDWR);
        if (fd < 0) die("/dev/null");
        if (fd > 2) { close_fd(fd); break; }
    }

    // The launcher's readiness pipe: ours to signal, never the server's.
    const char *rv = getenv("INSPATIALFS_READY_FD");
    if (rv) {
        char *end;
        long fd = strtol(rv, &end, 10);
        struct stat st;
        if (*rv && !*end && fd >= 3 && fd < INT_MAX && fstat((int)fd, &st) == 0 && S_ISFIFO(st.st_mode)) {
            int flags = fcntl((int)fd, F_GETFD);
            if (flags < 0 || fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC) != 0) die("fcntl(INSPATIALFS_READY_FD)");
            ready_fd = (int)fd;
        } else say("INSPATIALFS_READY_FD=%s is not a pipe; ignored", rv);
        if (unsetenv("INSPATIALFS_READY_FD") != 0) die("unsetenv");
    }

    // Signals arrive only through the signalfd, read in the loop; SIGCHLD must not be ignored (or no exit status).
    sigset_t mask;
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR || signal(SIGCHLD, SIG_DFL) == SIG_ERR) die("signal");
    if (sigemptyset(&mask) || sigaddset(&mask, SIGTERM) || sigaddset(&mask, SIGINT) || sigaddset(&mask, SIGHUP) ||
        sigaddset(&mask, SIGUSR2) || sigaddset(&mask, SIGCHLD) || sigprocmask(SIG_BLOCK, &mask, NULL) != 0) die("sigprocmask");
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) die("signalfd");

    // The notify socket: an abstract name (nothing on disk to clean up), random so it cannot be squatted ahead.
    uint64_t rnd;
    ssize_t got;
    do got = getrandom(&rnd, sizeof rnd, 0); while (got < 0 && errno == EINTR);
    if (got != (ssize_t)sizeof rnd) die("getrandom");
    snprintf(notify_addr, sizeof notify_addr, "@inspatialfs-keeper-%d-%016llx", (int)keeper_pid, (unsigned long long)rnd);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t alen = strlen(notify_addr);
    memcpy(sa.sun_path + 1, notify_addr + 1, alen - 1);  // sun_path[0] = '\0': abstract
    int one = 1;
    if ((nsock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) die("socket");
    if (setsockopt(nsock, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0) die("setsockopt(SO_PASSCRED)");
    if (bind(nsock, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + alen)) != 0) die("bind");

    start_child();
    for (;;) {
        struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = nsock, .events = POLLIN}};
        uint64_t now = now_ns();
        uint64_t wait_ms = restart_at == 0 || restart_at <= now ? 0 : (restart_at - now + 999999) / 1000000;
        int timeout = restart_at == 0 ? -1 : wait_ms > INT_MAX ? INT_MAX : (int)wait_ms;  // never negative: -1 is "forever"
        if (poll(p, 2, timeout) < 0) {
            if (errno != EINTR) say("poll: %s", strerror(errno));
            continue;
        }
        if (p[1].revents) drain_notify();  // before signals: a SIGCHLD's decision needs the messages sent before it
        if (p[0].revents) handle_signals(sfd);
        if (restart_at != 0 && stop_requested) {
            say("stop requested while waiting to retry; closing %d stored descriptors", nstored);
            store_clear();
            exit(paused_code);
        }
        if (restart_at != 0 && now_ns() >= restart_at) {
            restart_at = 0;
            start_child();
        }
    }
}
