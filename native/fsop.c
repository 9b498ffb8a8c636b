/*
 * fsop: performs exactly one filesystem system call and prints its outcome, so a test can see the errno a
 * real program gets (one process per call: a response that blocks a process never leaks into the next).
 *
 *   fsop read PATH                open O_RDONLY and read one byte
 *   fsop write PATH               open O_WRONLY (no create) and write one byte
 *   fsop create PATH MODE         open O_CREAT|O_EXCL|O_WRONLY with octal MODE
 *   fsop truncate PATH LENGTH     truncate(2)
 *   fsop unlink PATH | rmdir PATH | mkdir PATH MODE
 *   fsop rename FROM TO | link FROM TO | symlink TARGET PATH
 *   fsop mknod PATH fifo|chr      a fifo, or the character device 1:3
 *   fsop chmod PATH MODE          octal MODE (04755 sets setuid)
 *   fsop chown PATH UID GID       lchown(2)
 *   fsop utimens PATH             utimensat(2) to now
 *   fsop setxattr PATH NAME VALUE | removexattr PATH NAME
 *   fsop fallocate PATH LENGTH    open O_WRONLY, then fallocate(fd, 0, 0, LENGTH)
 *   fsop fallocate-keep PATH LENGTH  the same with FALLOC_FL_KEEP_SIZE (allocates without growing the size)
 *   fsop exec PATH                fork + execve(PATH); OK when it ran and exited 0, "EXIT n" when it ran and failed
 *
 * Prints "OK" or the errno's name (EACCES, EROFS, EPERM, ...) and exits 0; 2 on usage errors.
 * Built statically (make native), so a test can copy it into a busybox image and run it in a container.
 * Test tool only; never part of the product.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

extern char **environ;

static int usage(void)
{
    fprintf(stderr, "usage: fsop OP ARGS... (see the comment at the top of fsop.c)\n");
    return 2;
}

static int report(int rc)
{
    if (rc == 0)
        puts("OK");
    else
        puts(strerrorname_np(errno) ? strerrorname_np(errno) : "E?");
    return 0;
}

static unsigned octal(const char *s) { return (unsigned)strtoul(s, NULL, 8); }

static int open_and(const char *path, int flags, int write_byte)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char c = 'x';
    ssize_t n = write_byte ? write(fd, &c, 1) : read(fd, &c, 1);
    int saved = errno;
    close(fd);
    errno = saved;
    return n < 0 ? -1 : 0;
}

static int run_exec(const char *path)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return -1;
    pid_t child = fork();
    if (child < 0)
        return -1;
    if (child == 0) {
        char *argv[] = { (char *)path, NULL };
        execve(path, argv, environ);
        int e = errno;
        if (write(pipefd[1], &e, sizeof e) != (ssize_t)sizeof e)
            _exit(126);
        _exit(127);
    }
    close(pipefd[1]);
    int e = 0;
    ssize_t n = read(pipefd[0], &e, sizeof e);
    close(pipefd[0]);
    int status = 0;
    waitpid(child, &status, 0);
    if (n == (ssize_t)sizeof e) {
        errno = e;
        return -1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    printf("EXIT %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    exit(0);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    const char *op = argv[1], *path = argv[2];
    int n = argc - 3; /* arguments after PATH */

    if (!strcmp(op, "read") && n == 0) return report(open_and(path, O_RDONLY, 0));
    if (!strcmp(op, "write") && n == 0) return report(open_and(path, O_WRONLY, 1));
    if (!strcmp(op, "create") && n == 1) {
        int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, octal(argv[3]));
        if (fd >= 0)
            close(fd);
        return report(fd < 0 ? -1 : 0);
    }
    if (!strcmp(op, "truncate") && n == 1) return report(truncate(path, atoll(argv[3])));
    if (!strcmp(op, "unlink") && n == 0) return report(unlink(path));
    if (!strcmp(op, "rmdir") && n == 0) return report(rmdir(path));
    if (!strcmp(op, "mkdir") && n == 1) return report(mkdir(path, octal(argv[3])));
    if (!strcmp(op, "rename") && n == 1) return report(rename(path, argv[3]));
    if (!strcmp(op, "link") && n == 1) return report(link(path, argv[3]));
    if (!strcmp(op, "symlink") && n == 1) return report(symlink(path, argv[3]));
    if (!strcmp(op, "mknod") && n == 1) {
        if (!strcmp(argv[3], "fifo")) return report(mknod(path, S_IFIFO | 0644, 0));
        if (!strcmp(argv[3], "chr")) return report(mknod(path, S_IFCHR | 0644, makedev(1, 3)));
        return usage();
    }
    if (!strcmp(op, "chmod") && n == 1) return report(chmod(path, octal(argv[3])));
    if (!strcmp(op, "chown") && n == 2) return report(lchown(path, (uid_t)atol(argv[3]), (gid_t)atol(argv[4])));
    if (!strcmp(op, "utimens") && n == 0) return report(utimensat(AT_FDCWD, path, NULL, 0));
    if (!strcmp(op, "setxattr") && n == 2) return report(lsetxattr(path, argv[3], argv[4], strlen(argv[4]), 0));
    if (!strcmp(op, "removexattr") && n == 1) return report(lremovexattr(path, argv[3]));
    if ((!strcmp(op, "fallocate") || !strcmp(op, "fallocate-keep")) && n == 1) {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            return report(-1);
        int rc = fallocate(fd, strcmp(op, "fallocate") ? FALLOC_FL_KEEP_SIZE : 0, 0, atoll(argv[3]));
        int saved = errno;
        close(fd);
        errno = saved;
        return report(rc);
    }
    if (!strcmp(op, "exec") && n == 0) return report(run_exec(path));
    return usage();
}
