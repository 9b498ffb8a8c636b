using System.Runtime.InteropServices;

namespace InSpatialFs.Interop;

// Replacing the process image (the mount command becomes its keeper) and leaving without any clean-up (a server that
// hands its live connection to the next one must not unmount it on the way out).
public static unsafe partial class LibC
{
    [LibraryImport(Lib, SetLastError = true)]
    private static partial int execve(byte* path, byte** argv, byte** envp);

    [LibraryImport(Lib, EntryPoint = "_exit")]
    public static partial void ExitImmediately(int status);

    /// <summary>execve(2) of <paramref name="path"/>; returns only on failure, with the errno.</summary>
    public static Errno Execute(string path, IReadOnlyList<string> argv, IReadOnlyList<string> environment)
    {
        var strings = new List<nint>(argv.Count + environment.Count + 1);
        try
        {
            nint Native(string s)
            {
                nint p = Marshal.StringToCoTaskMemUTF8(s);
                strings.Add(p);
                return p;
            }

            byte** args = stackalloc byte*[argv.Count + 1];
            byte** env = stackalloc byte*[environment.Count + 1];
            for (int i = 0; i < argv.Count; i++)
            {
                args[i] = (byte*)Native(argv[i]);
            }

            args[argv.Count] = null;
            for (int i = 0; i < environment.Count; i++)
            {
                env[i] = (byte*)Native(environment[i]);
            }

            env[environment.Count] = null;
            execve((byte*)Native(path), args, env);
            return ErrnoExtensions.LastPInvoke();
        }
        finally
        {
            strings.ForEach(Marshal.FreeCoTaskMem);
        }
    }
}
