using System.Runtime.InteropServices;
using System.Text;

namespace InSpatialFs.Interop;

// posix_spawn for starting the detached server: no shell and no setsid(1) in between (each exec costs milliseconds of
// the container's start), and the child's descriptors are exactly the ones named here.
public static unsafe partial class LibC
{
    private const short POSIX_SPAWN_SETSIGDEF = 0x04, POSIX_SPAWN_SETSIGMASK = 0x08, POSIX_SPAWN_SETSID = 0x80;

    // glibc's opaque types, over-allocated (posix_spawnattr_t is 336 bytes, posix_spawn_file_actions_t 80, sigset_t 128).
    private const int SpawnAttrSize = 512, FileActionsSize = 256, SigSetSize = 128;

    [LibraryImport(Lib)]
    private static partial int posix_spawn(int* pid, byte* path, void* fileActions, void* attr, byte** argv, byte** envp);

    [LibraryImport(Lib)]
    private static partial int posix_spawnattr_init(void* attr);

    [LibraryImport(Lib)]
    private static partial int posix_spawnattr_destroy(void* attr);

    [LibraryImport(Lib)]
    private static partial int posix_spawnattr_setflags(void* attr, short flags);

    [LibraryImport(Lib)]
    private static partial int posix_spawnattr_setsigmask(void* attr, void* mask);

    [LibraryImport(Lib)]
    private static partial int posix_spawnattr_setsigdefault(void* attr, void* set);

    [LibraryImport(Lib)]
    private static partial int posix_spawn_file_actions_init(void* actions);

    [LibraryImport(Lib)]
    private static partial int posix_spawn_file_actions_destroy(void* actions);

    [LibraryImport(Lib)]
    private static partial int posix_spawn_file_actions_adddup2(void* actions, int fd, int newFd);

    /// <summary>
    /// Starts <paramref name="path"/> with <paramref name="argv"/> and <paramref name="environment"/> in a new session, its
    /// signal mask empty and the daemon-relevant signals at their defaults; descriptor i of the child is
    /// <paramref name="descriptors"/>[i] (0, 1, 2, then any extra), every other descriptor of ours is close-on-exec.
    /// </summary>
    public static Errno SpawnDetached(string path, IReadOnlyList<string> argv, IReadOnlyList<string> environment, IReadOnlyList<int> descriptors, out int pid)
    {
        pid = 0;
        byte* attr = stackalloc byte[SpawnAttrSize];
        byte* actions = stackalloc byte[FileActionsSize];
        byte* emptyMask = stackalloc byte[SigSetSize];
        byte* defaults = stackalloc byte[SigSetSize];
        new Span<byte>(emptyMask, SigSetSize).Clear();
        new Span<byte>(defaults, SigSetSize).Clear();
        foreach (int signal in new[] { 1, 2, 3, 10, 12, 13, 15, 17 }) // HUP INT QUIT USR1 USR2 PIPE TERM CHLD
        {
            defaults[(signal - 1) / 8] |= (byte)(1 << ((signal - 1) % 8));
        }

        if (posix_spawnattr_init(attr) is int attrError and not 0)
        {
            return (Errno)attrError;
        }

        var strings = new List<nint>();
        int rc = posix_spawn_file_actions_init(actions);
        bool actionsMade = rc == 0;
        try
        {
            rc = rc != 0 ? rc
                : posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF) is int f and not 0 ? f
                : posix_spawnattr_setsigmask(attr, emptyMask) is int m and not 0 ? m
                : posix_spawnattr_setsigdefault(attr, defaults);
            for (int i = 0; rc == 0 && i < descriptors.Count; i++)
            {
                // Applied in order: a source must not be a target of an earlier entry (callers pass fresh descriptors, all > 2).
                rc = posix_spawn_file_actions_adddup2(actions, descriptors[i], i);
            }

            if (rc != 0)
            {
                return (Errno)rc;
            }

            byte** args = CStrings(argv, strings);
            byte** env = CStrings(environment, strings);
            byte* file = CString(path, strings);
            int child;
            rc = posix_spawn(&child, file, actions, attr, args, env);
            pid = child;
            return (Errno)rc;
        }
        finally
        {
            // Both only free what init allocated; their results say nothing we could act on.
            _ = actionsMade ? posix_spawn_file_actions_destroy(actions) : 0;
            _ = posix_spawnattr_destroy(attr);
            strings.ForEach(p => NativeMemory.Free((void*)p));
        }
    }

    private static byte* CString(string s, List<nint> owned)
    {
        int length = Encoding.UTF8.GetByteCount(s);
        byte* p = (byte*)NativeMemory.Alloc((nuint)length + 1);
        owned.Add((nint)p);
        Encoding.UTF8.GetBytes(s, new Span<byte>(p, length));
        p[length] = 0;
        return p;
    }

    private static byte** CStrings(IReadOnlyList<string> items, List<nint> owned)
    {
        byte** array = (byte**)NativeMemory.Alloc((nuint)(items.Count + 1), (nuint)sizeof(nint));
        owned.Add((nint)array);
        for (int i = 0; i < items.Count; i++)
        {
            array[i] = CString(items[i], owned);
        }

        array[items.Count] = null;
        return array;
    }
}
