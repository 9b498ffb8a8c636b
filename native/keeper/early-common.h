// Shared by the early-*.c constructors (linked into bin/inspatialfs, run before the .NET runtime starts).
#ifndef INSPATIALFS_EARLY_COMMON_H
#define INSPATIALFS_EARLY_COMMON_H
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEEPER_NAME "inspatialfs-keeper"

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
#endif
