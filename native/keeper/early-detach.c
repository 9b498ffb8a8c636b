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
#include "early-common.h"

#define PROGRAM "inspatialfs-overlay"

// Options after which this process must not detach: it serves in the foreground or only answers.
static int stays_in_foreground(const char *arg) {
    return strcmp(arg, "-f") == 0 || strncmp(arg, "--foreground", 12) == 0 || strcmp(arg, "-h") == 0 ||
           strcmp(arg, "-?") == 0 || strcmp(arg, "--help") == 0 || strcmp(arg, "--version") == 0 || arg[0] == '@';
}

// The kept mount (the default): the detached child becomes inspatialfs-keeper at once, and the keeper starts the server
// as `inspatialfs overlay-mount ARGS` (the same options; restarted the same way). So the runtime starts once, in the
// server, instead of once here to exec the keeper and once more in the server. The server's stdio is the caller's until
// it serves, so a bad option or profile is reported to the caller as without a keeper, and the keeper's exit status
// (the server's, when it fails before serving) reaches the parent. Returns only when there is no keeper to exec.
static void become_keeper(int argc, char **argv, int first, int ready) {
    for (int i = first; i < argc; i++)
        if (early_keeping_decided_later(argv[i])) return;
    char **args = calloc((size_t)(argc - first) + 1, sizeof *args);
    if (!args) return;
    args[0] = "overlay-mount";
    for (int i = first; i < argc; i++) args[i - first + 1] = argv[i];
    early_exec_keeper(args, argc - first + 1, ready);
    free(args);
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

    int ready = early_detach(PROGRAM, argv[argc - 1]);
    if (ready < 0) return;  // the managed code starts the server the old way
    become_keeper(argc, argv, first, ready);
    setenv(DETACHED_VARIABLE, "1", 1);
}
