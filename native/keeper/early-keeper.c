// Linked into bin/inspatialfs (the NativeAOT daemon) as an ELF constructor, so it runs before the .NET runtime starts.
//
// A kept foreground mount (`inspatialfs mount --source DIR MOUNTPOINT`) used to start the runtime twice: once to read
// the command line and exec inspatialfs-keeper, and once more as the server the keeper starts. Starting the runtime is
// most of a server's start (10-20 ms here), so for command lines that plainly ask for a kept mount this constructor
// execs the keeper at once, exactly as the managed code would have (same pid, argv `inspatialfs-keeper -- SELF ARGS`,
// same environment). The server then reads and checks the command line, and its errors reach the same stderr with the
// same exit code (the keeper exits with a server's code when it fails before serving).
//
// It only acts when every option is one of the options below: the quick form's, which all make host or memory mounts,
// and --config, whose mounts (host, memory, overlay) a new server can rebuild as well. A config that cannot be kept
// after all (`io_uring: true`, a memory mount the kernel will not give a private tmpfs) is served unkept under the
// keeper: the server stores no descriptors, and a keeper with none ends with its server. Anything else -- --direct,
// -o, --background, --no-keeper, --io-uring, help, a response file, an option added later -- falls through to the
// managed code, which decides as it always has. So an unknown command line costs the old start, never a wrong keeper.
#define _GNU_SOURCE
#include <stdlib.h>

#include "early-common.h"

static const char *const quick_form_options[] = {
    "--source", "--memory", "--memory-size", "--memory-at", "--read-only", "--isolation", "--forbid", "--readonly",
    "--allow", "--state-dir", "--control", "--no-control", "--name", "--rules", "--log-level", "--readers",
    "--no-passthrough", "--cache-timeout", "--relax", "--resource", "--exec-runtime-written", "--suspend-on",
    "--allow-relax", "--config", NULL,
};

// An option of the list, alone or as --option=value / --option:value.
static int quick_form_option(const char *arg) {
    size_t len = strcspn(arg, "=:");
    for (int i = 0; quick_form_options[i]; i++)
        if (strlen(quick_form_options[i]) == len && strncmp(arg, quick_form_options[i], len) == 0) return 1;
    return 0;
}

__attribute__((constructor)) static void become_keeper_early(int argc, char **argv, char **envp) {
    if (argc < 3 || !argv || strcmp(argv[1], "mount") != 0) return;
    const char *base = strrchr(argv[0], '/');
    if (strcmp(base ? base + 1 : argv[0], "inspatialfs-overlay") == 0) return;  // the overlay mount program's "mount" is a target
    const char *notify = getenv("NOTIFY_SOCKET");
    if (notify && *notify) return;  // started by the keeper or by systemd: this process is the server
    for (int i = 2; i < argc; i++) {
        // Values (a directory, a size, the mountpoint) do not start with '-'; a value that does is not ours to judge.
        if (argv[i][0] == '@') return;  // a response file: its options are unknown here
        if (argv[i][0] == '-' && !quick_form_option(argv[i])) return;
    }

    char self[PATH_MAX], keeper[PATH_MAX];
    if (!early_keeper_next_to_self(self, keeper)) return;  // not installed: the managed code serves without it and says so

    char **keeper_argv = calloc((size_t)argc + 3, sizeof *keeper_argv);
    if (!keeper_argv) return;
    keeper_argv[0] = keeper;
    keeper_argv[1] = "--";
    keeper_argv[2] = self;
    for (int i = 1; i < argc; i++) keeper_argv[i + 2] = argv[i];
    execve(keeper, keeper_argv, envp);
    free(keeper_argv);  // exec failed: the managed code tries once more and reports why
}
