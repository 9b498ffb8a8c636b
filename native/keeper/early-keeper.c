// Linked into bin/inspatialfs (the NativeAOT daemon) as an ELF constructor, so it runs before the .NET runtime starts.
//
// A kept foreground mount (`inspatialfs mount --source DIR MOUNTPOINT`) used to start the runtime twice: once to read
// the command line and exec inspatialfs-keeper, and once more as the server the keeper starts. Starting the runtime is
// most of a server's start (10-20 ms here), so for command lines that plainly ask for a kept mount this constructor
// execs the keeper at once, exactly as the managed code would have (same pid, argv `inspatialfs-keeper -- SELF ARGS`,
// same environment). The server then reads and checks the command line, and its errors reach the same stderr with the
// same exit code (the keeper exits with a server's code when it fails before serving).
//
// It only acts when every option is one of the options below: the quick form's, which all make host (DirectFS too) or
// memory mounts, and --config, whose mounts (host, memory, overlay) a new server can rebuild as well; and -o (mount(8)'s
// options, which the server applies) unless it names no_keeper or io_uring. A config that cannot be kept after all
// (`io_uring: true`, a memory mount the kernel will not give a private tmpfs) is served unkept under the keeper: the
// server stores no descriptors, and a keeper with none ends with its server. Anything else -- --no-keeper, --io-uring,
// help, a response file, an option added later -- falls through to the managed code, which decides as it always has.
// So an unknown command line costs the old start, never a wrong keeper.
//
// `mount --background` (mount(8)'s fuse.inspatialfs helper, fstab) is detached here as the overlay mount program is
// (early-common.h): the parent returns once the keeper says the mount serves, the detached child execs the keeper
// on the same command line without --background, and the server moves its stdio to its log once it knows where that
// is (until then a bad option or config reaches the caller's stderr, with its exit code).
#define _GNU_SOURCE
#include <stdlib.h>

#include "early-common.h"

static const char *const quick_form_options[] = {
    "--source", "--memory", "--memory-size", "--memory-at", "--read-only", "--isolation", "--forbid", "--readonly",
    "--allow", "--state-dir", "--control", "--no-control", "--name", "--rules", "--log-level", "--readers",
    "--no-passthrough", "--cache-timeout", "--relax", "--resource", "--exec-runtime-written", "--suspend-on",
    "--allow-relax", "--config", "--direct", NULL,
};

// An option of the list, alone or as --option=value / --option:value.
static int quick_form_option(const char *arg) {
    size_t len = strcspn(arg, "=:");
    for (int i = 0; quick_form_options[i]; i++)
        if (strlen(quick_form_options[i]) == len && strncmp(arg, quick_form_options[i], len) == 0) return 1;
    return 0;
}

__attribute__((constructor)) static void become_keeper_early(int argc, char **argv, char **envp) {
    (void)envp;
    if (argc < 3 || !argv || strcmp(argv[1], "mount") != 0) return;
    const char *base = strrchr(argv[0], '/');
    if (strcmp(base ? base + 1 : argv[0], "inspatialfs-overlay") == 0) return;  // the overlay mount program's "mount" is a target
    // A server its keeper started: whether it is detached from a caller (the keeper of `mount --background`) is in the
    // environment the keeper passed on. For anyone else only these constructors say so: never a variable the caller passed.
    if (early_started_by_keeper()) return;
    unsetenv(DETACHED_VARIABLE);
    int background = 0;
    char **args = calloc((size_t)argc, sizeof *args);  // the command line for the server: mount ARGS, without --background
    if (!args) return;
    int count = 0;
    args[count++] = "mount";
    for (int i = 2; i < argc; i++) {
        // Values (a directory, a size, the mountpoint) do not start with '-'; a value that does is not ours to judge.
        if (argv[i][0] == '@') goto managed;  // a response file: its options are unknown here
        if (strcmp(argv[i], "--background") == 0 || strcmp(argv[i], "-b") == 0) {
            background = 1;
            continue;
        }
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {  // mount(8)'s options: the server applies them
            if (early_keeping_decided_later(argv[i + 1])) goto managed;
            args[count++] = argv[i++];
        } else if (argv[i][0] == '-' && !quick_form_option(argv[i])) {
            goto managed;
        }
        args[count++] = argv[i];
    }

    if (background) {
        // mount --background (mount(8), fstab): detach here, and the detached child becomes the keeper, whose server
        // tells the caller why it failed, or the keeper says it serves. Its own server (restarted or not) is not
        // started with --background, so it never gets here.
        int ready = early_detach("inspatialfs", argv[argc - 1]);
        if (ready < 0) goto managed;
        setenv(DETACHED_VARIABLE, "1", 1);
        early_exec_keeper(args, count, ready);
        // No keeper to exec: this detached process serves without one, as the managed code decides and says.
        goto managed;
    }

    const char *notify = getenv("NOTIFY_SOCKET");
    if (!(notify && *notify)) early_exec_keeper(args, count, -1);  // set: started by the keeper or by systemd, the server
managed:
    free(args);  // the managed code decides, as it always has
}
