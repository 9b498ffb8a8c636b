using System.Diagnostics;
using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Transport;
using InSpatialFs.Interop;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.TestKit;

/// <summary>
/// Mounts an <see cref="IFuseFileSystem"/> on a fresh temp directory (as root, /dev/fuse), serves it on background
/// reader threads, and always unmounts in Dispose: lazy umount, then a fusectl abort if the server does not stop.
/// Never touch the mount from a handler of the same file system (it would deadlock).
/// </summary>
public sealed class TestMount : IDisposable
{
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(5);
    private bool _disposed;

    private TestMount(string path, FuseMount mount, ProtocolServer server)
    {
        Path = path;
        Mount = mount;
        Server = server;
    }

    public string Path { get; }

    public FuseMount Mount { get; }

    public ProtocolServer Server { get; }

    /// <summary>Why a mounted test cannot run here, or null when it can (root and /dev/fuse present).</summary>
    public static string? UnavailableReason()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "FUSE mounts need Linux";
        }

        if (LibC.geteuid() != 0)
        {
            return "mounting with mount(2) needs root";
        }

        return File.Exists("/dev/fuse") ? null : "/dev/fuse is missing";
    }

    /// <summary>Marks the calling test ignored, with the reason, when it cannot mount here.</summary>
    public static void RequireRootAndFuse()
    {
        string? reason = UnavailableReason();
        if (reason is not null)
        {
            Assert.Ignore(reason);
        }
    }

    public static TestMount Start(IFuseFileSystem fileSystem, FuseMountOptions? mountOptions = null, ProtocolServerOptions? serverOptions = null,
        ILogger? logger = null)
    {
        string path = Directory.CreateTempSubdirectory("inspatialfs-mnt-").FullName;
        FuseMount? mount = null;
        try
        {
            mount = FuseMount.Mount(path, mountOptions, logger);
            var server = new ProtocolServer(mount.Device, fileSystem, serverOptions, logger);
            server.Start();
            return new TestMount(path, mount, server);
        }
        catch
        {
            mount?.Abort();
            mount?.Dispose();
            TryRemove(path);
            throw;
        }
    }

    /// <summary>Runs a program (never from a handler thread) and returns its exit code, stdout and stderr.</summary>
    public static (int ExitCode, string Stdout, string Stderr) Run(string program, params string[] args)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in args)
        {
            start.ArgumentList.Add(a);
        }

        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(30_000))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish in 30 s");
        }

        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Mount.Unmount(lazy: true);
        if (!Server.Completion.Wait(StopTimeout, out _))
        {
            Mount.Abort();
            Server.Completion.Wait(StopTimeout, out _);
        }

        Mount.Dispose();
        TryRemove(Path);
    }

    private static void TryRemove(string path)
    {
        try
        {
            Directory.Delete(path);
        }
        catch (IOException)
        {
            // still busy (a lazy unmount in progress): leave the empty directory behind
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}

internal static class TaskWaitExtensions
{
    /// <summary>Waits without throwing on a faulted task; returns whether it completed.</summary>
    public static bool Wait(this Task task, TimeSpan timeout, out Exception? failure)
    {
        try
        {
            bool done = task.Wait(timeout);
            failure = null;
            return done;
        }
        catch (AggregateException ex)
        {
            failure = ex.InnerException;
            return true;
        }
    }
}
