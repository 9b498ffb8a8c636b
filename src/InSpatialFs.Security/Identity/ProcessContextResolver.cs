using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace InSpatialFs.Security.Identity;

/// <summary>
/// Reads <see cref="ProcessContext"/> from /proc, once per process: the result is cached by (pid, start time, comm),
/// so every event of a process and every child that names it as parent share one object. A new comm (after execve)
/// is a new key, so an exec'd process gets a fresh context. Each read is bounded (cmdline at 4 KiB); a process that
/// is gone gives null rather than an error. The cache holds at most <see cref="Capacity"/> processes and is
/// cleared when full (contexts already handed out stay valid).
/// <para>
/// A context whose comm and arguments disagree (a process caught inside execve, or renamed without one) is read once
/// more after a millisecond. If they still disagree it is kept apart with the arguments it was read with, and reused
/// only while /proc/PID/cmdline still reads the same: a process that was mid-exec has new arguments by then and is read
/// afresh, while one that is simply named so (a renamed worker) costs one cmdline read, not a sleep and a dozen reads,
/// for every child that names it as parent.
/// </para>
/// </summary>
public sealed class ProcessContextResolver
{
    private const int MaxCmdline = 4096;

    private readonly string _procRoot;
    private readonly ConcurrentDictionary<(int Pid, ulong Start, string Comm), ProcessContext> _cache = new();
    // Contexts whose comm and arguments disagreed on two reads, with the raw cmdline they were read with.
    private readonly ConcurrentDictionary<(int Pid, ulong Start, string Comm), (ProcessContext Context, byte[] Cmdline)> _unsettled = new();
    // The cache's size, kept apart: ConcurrentDictionary.Count takes every bucket lock (up to 1024 at this capacity), and
    // every new caller asks. Approximate under races, which is all a capacity bound needs.
    private int _count;

    public ProcessContextResolver(string procRoot = "/proc", AccountNames? accounts = null, int capacity = 8192)
    {
        _procRoot = procRoot;
        Accounts = accounts;
        Capacity = capacity;
    }

    public int Capacity { get; }

    /// <summary>The container's account names (user.name, group.name); the daemon sets it once the mounts exist.</summary>
    public AccountNames? Accounts { get; set; }

    public int Count => _cache.Count;

    /// <summary>Contexts kept apart because their comm and arguments disagree (see the class remarks).</summary>
    public int UnsettledCount => _unsettled.Count;

    /// <summary>The context of process <paramref name="pid"/> with its ancestors, or null when it cannot be read.</summary>
    public ProcessContext? Resolve(int pid) => Resolve(pid, ProcessContext.MaxAncestors, null);

    /// <summary>As <see cref="Resolve(int)"/> within a pin: stat files that pin read already are not read again.</summary>
    internal ProcessContext? Resolve(int pid, StatReads reads) => Resolve(pid, ProcessContext.MaxAncestors, reads);

    private ProcessContext? Resolve(int pid, int ancestorsLeft, StatReads? reads)
    {
        if (pid <= 0)
        {
            return null;
        }

        string dir = Path.Combine(_procRoot, pid.ToString(CultureInfo.InvariantCulture));
        string comm;
        int ppid, pgid, sid;
        long tty;
        ulong start;
        string exe, args;
        bool consistent;
        byte[] cmdline;
        for (int attempt = 0; ; attempt++)
        {
            // The retry reads afresh: it is there to see what execve changed since the first read.
            string? stat = attempt == 0 && reads is not null ? reads.Read(pid) : ProcFs.ReadText(Path.Combine(dir, "stat"), ProcFs.StatMax);
            if (stat is null || !TryParseStat(stat, out comm, out ppid, out pgid, out sid, out tty, out start))
            {
                return null;
            }

            if (_cache.TryGetValue((pid, start, comm), out ProcessContext? known))
            {
                if (!ImageMayHaveChanged(pid, known, dir))
                {
                    return known;
                }

                Forget(known); // a program of the same name now runs in this pid: read it afresh
            }

            // Caught inside execve (the new name is set before the new arguments are): read once more shortly. A process
            // renamed without an exec stays inconsistent and is kept apart (see the class remarks).
            cmdline = ReadCmdlineBytes(Path.Combine(dir, "cmdline"));
            if (_unsettled.TryGetValue((pid, start, comm), out var unsettled) && cmdline.AsSpan().SequenceEqual(unsettled.Cmdline))
            {
                return unsettled.Context;
            }

            (exe, args) = SplitCmdline(cmdline);
            consistent = Consistent(comm, cmdline);
            if (consistent || attempt == 1)
            {
                break;
            }

            Thread.Sleep(1);
        }
        Status status = ReadStatus(Path.Combine(dir, "status"));
        var context = new ProcessContext
        {
            Pid = pid,
            VPid = status.VPid == 0 ? pid : status.VPid,
            PPid = ppid,
            Pgid = pgid,
            Sid = sid,
            Tty = tty,
            StartTime = start,
            StartUnixNanos = BootUnixNanos.Value == 0 ? 0 : BootUnixNanos.Value + (long)(start * (1_000_000_000UL / ClockTicks)),
            CapEffective = Capabilities.Names(status.CapEff),
            CapPermitted = Capabilities.Names(status.CapPrm),
            CapInheritable = Capabilities.Names(status.CapInh),
            Name = comm,
            Exe = exe,
            ExePath = ProcFs.TryReadLink(Path.Combine(dir, "exe")) ?? "",
            Args = args,
            Cwd = ProcFs.TryReadLink(Path.Combine(dir, "cwd")) is { } cwd ? (cwd.EndsWith('/') ? cwd : cwd + "/") : "",
            LoginUid = ReadLoginUid(Path.Combine(dir, "loginuid")),
            Uid = status.Uid,
            Parent = ancestorsLeft > 0 && ppid > 0 && ppid != pid ? Resolve(ppid, ancestorsLeft - 1, reads) : null,
            Accounts = Accounts,
        };

        if (Volatile.Read(ref _count) >= Capacity)
        {
            _cache.Clear();
            _unsettled.Clear();
            Volatile.Write(ref _count, 0);
        }

        if (!consistent)
        {
            if (_unsettled.TryAdd((pid, start, comm), (context, cmdline)))
            {
                Interlocked.Increment(ref _count);
            }

            return context;
        }

        if (_cache.TryAdd((pid, start, comm), context))
        {
            Interlocked.Increment(ref _count);
            return context;
        }

        return _cache.TryGetValue((pid, start, comm), out ProcessContext? winner) ? winner : context;
    }

    /// <summary>
    /// Pids that opened a file for exec a moment ago (set by the caller registry). The cache key survives an exec of a
    /// same-named program, so for these pids a hit is checked against /proc/PID/exe: a child's request may name the
    /// exec'd process as parent before that process makes a request of its own.
    /// </summary>
    public Func<int, bool>? MayHaveExeced { get; set; }

    private bool ImageMayHaveChanged(int pid, ProcessContext known, string dir) =>
        known.ExePath.Length > 0 && MayHaveExeced?.Invoke(pid) == true &&
        ProcFs.TryReadLink(Path.Combine(dir, "exe")) is string image && image != known.ExePath;

    /// <summary>Drops <paramref name="context"/> from the cache (its process exec'd a program of the same name).</summary>
    public void Forget(ProcessContext context)
    {
        var key = (context.Pid, context.StartTime, context.Name);
        if (_cache.TryRemove(new KeyValuePair<(int, ulong, string), ProcessContext>(key, context)) ||
            (_unsettled.TryGetValue(key, out var kept) && kept.Context == context && _unsettled.TryRemove(key, out _)))
        {
            Interlocked.Decrement(ref _count);
        }
    }

    /// <summary>
    /// comm (its first 15 bytes) names the program /proc/PID/cmdline shows: argv[0]'s base name, or for a script run
    /// through its interpreter the script's, which the kernel passes as argv[1] (argv[2] after the one option a
    /// <c>#!</c> line may give) and makes the comm: <c>#!/bin/sh</c> in ./entrypoint.sh runs as
    /// "/bin/sh ./entrypoint.sh" named "entrypoint.sh".
    /// </summary>
    internal static bool Consistent(string comm, ReadOnlySpan<byte> cmdline)
    {
        for (int i = 0; i < 3 && !cmdline.IsEmpty; i++)
        {
            int end = cmdline.IndexOf((byte)0);
            ReadOnlySpan<byte> arg = end < 0 ? cmdline : cmdline[..end];
            if (SameProgram(comm, Encoding.UTF8.GetString(arg), isArgv0: i == 0))
            {
                return true;
            }

            cmdline = end < 0 ? [] : cmdline[(end + 1)..];
        }

        return false;
    }

    private static bool SameProgram(string comm, string arg, bool isArgv0)
    {
        // A login shell's argv[0] starts with '-'; a later argument that does is an option, never the script.
        if (!isArgv0 && arg.StartsWith('-'))
        {
            return false;
        }

        string name = Path.GetFileName(arg).TrimStart('-');
        if (name.Length == 0)
        {
            return false;
        }

        return name.StartsWith(comm, StringComparison.Ordinal) || comm.StartsWith(name, StringComparison.Ordinal);
    }

    /// <summary>Fields 2 (comm), 4 (ppid), 5 (pgrp), 6 (session), 7 (tty_nr), 22 (starttime) of /proc/PID/stat.</summary>
    internal static bool TryParseStat(string stat, out string comm, out int ppid, out int pgid, out int sid, out long tty, out ulong start)
    {
        comm = "";
        ppid = pgid = sid = 0;
        tty = 0;
        start = 0;
        int open = stat.IndexOf('(', StringComparison.Ordinal), close = stat.LastIndexOf(')');
        if (open < 0 || close < open)
        {
            return false;
        }

        comm = stat[(open + 1)..close];
        // Walked in place (no Split): every new caller's ancestors have their stat parsed.
        ReadOnlySpan<char> rest = stat.AsSpan(close + 1);
        int field = 2;
        bool ok = true;
        foreach (Range r in rest.Split(' '))
        {
            ReadOnlySpan<char> f = rest[r];
            if (f.IsEmpty) continue;
            switch (++field)
            {
                case 4: ok &= int.TryParse(f, NumberStyles.Integer, CultureInfo.InvariantCulture, out ppid); break;
                case 5: ok &= int.TryParse(f, NumberStyles.Integer, CultureInfo.InvariantCulture, out pgid); break;
                case 6: ok &= int.TryParse(f, NumberStyles.Integer, CultureInfo.InvariantCulture, out sid); break;
                case 7: ok &= long.TryParse(f, NumberStyles.Integer, CultureInfo.InvariantCulture, out tty); break;
                case 22: return ok && ulong.TryParse(f, NumberStyles.Integer, CultureInfo.InvariantCulture, out start);
                default: break;
            }
        }

        return false;
    }

    /// <summary>argv[0] and argv[1..] joined by spaces (NULs in /proc/PID/cmdline separate the arguments).</summary>
    internal static (string Exe, string Args) SplitCmdline(ReadOnlySpan<byte> raw)
    {
        while (raw.Length > 0 && raw[^1] == 0)
        {
            raw = raw[..^1];
        }

        int first = raw.IndexOf((byte)0);
        string exe = Encoding.UTF8.GetString(first < 0 ? raw : raw[..first]);
        if (first < 0)
        {
            return (exe, "");
        }

        byte[] rest = raw[(first + 1)..].ToArray();
        for (int i = 0; i < rest.Length; i++)
        {
            if (rest[i] == 0)
            {
                rest[i] = (byte)' ';
            }
        }

        return (exe, Encoding.UTF8.GetString(rest));
    }

    /// <summary>/proc/PID/cmdline's bytes (at most <see cref="MaxCmdline"/>); empty when it cannot be read.</summary>
    private static byte[] ReadCmdlineBytes(string path)
    {
        Span<byte> buffer = stackalloc byte[MaxCmdline];
        int n = ProcFs.ReadBytes(path, buffer);
        return n <= 0 ? [] : buffer[..n].ToArray();
    }

    /// <summary>USER_HZ: /proc/PID/stat counts in clock ticks of 1/100 s on Linux.</summary>
    private const ulong ClockTicks = 100;

    /// <summary>Boot time (btime of /proc/stat) as Unix nanoseconds, read once.</summary>
    private static readonly Lazy<long> BootUnixNanos = new(() =>
    {
        string? stat = ProcFs.ReadText("/proc/stat", 64 * 1024);
        foreach (string line in stat?.Split('\n') ?? [])
        {
            if (line.StartsWith("btime ", StringComparison.Ordinal) && long.TryParse(line.AsSpan(6), NumberStyles.Integer, CultureInfo.InvariantCulture, out long btime))
            {
                return btime * 1_000_000_000L;
            }
        }

        return 0;
    });

    private readonly record struct Status(int VPid, uint Uid, ulong CapEff, ulong CapPrm, ulong CapInh);

    /// <summary>NSpid's last value (the pid in the innermost namespace), the effective uid and the capability sets.</summary>
    private static Status ReadStatus(string path)
    {
        int vpid = 0;
        uint uid = 0;
        ulong eff = 0, prm = 0, inh = 0;
        string? text = ProcFs.ReadText(path, ProcFs.StatusMax);
        // "Key:\tvalue[\tvalue...]" lines, walked in place: about 60 lines, of which 5 are wanted.
        ReadOnlySpan<char> all = text;
        foreach (Range l in all.Split('\n'))
        {
            ReadOnlySpan<char> line = all[l];
            int colon = line.IndexOf(':');
            if (colon <= 0)
            {
                continue;
            }

            ReadOnlySpan<char> key = line[..colon], value = line[(colon + 1)..].Trim();
            switch (key)
            {
                case "NSpid": _ = int.TryParse(value[(value.LastIndexOfAny('\t', ' ') + 1)..], NumberStyles.Integer, CultureInfo.InvariantCulture, out vpid); break;
                case "Uid": _ = uint.TryParse(Second(value), NumberStyles.Integer, CultureInfo.InvariantCulture, out uid); break;
                case "CapEff": _ = ulong.TryParse(value, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out eff); break;
                case "CapPrm": _ = ulong.TryParse(value, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out prm); break;
                case "CapInh": _ = ulong.TryParse(value, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out inh); break;
                default: break;
            }
        }

        return new Status(vpid, uid, eff, prm, inh);
    }

    /// <summary>The second of whitespace-separated values ("real effective saved fs" of Uid:): the effective one.</summary>
    private static ReadOnlySpan<char> Second(ReadOnlySpan<char> values)
    {
        int first = values.IndexOfAny('\t', ' ');
        if (first < 0)
        {
            return [];
        }

        ReadOnlySpan<char> rest = values[(first + 1)..].TrimStart();
        int end = rest.IndexOfAny('\t', ' ');
        return end < 0 ? rest : rest[..end];
    }

    private static long ReadLoginUid(string path)
    {
        string? text = ProcFs.ReadText(path, 32)?.Trim();
        return text != null && long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out long v) && v != uint.MaxValue ? v : -1;
    }

}
