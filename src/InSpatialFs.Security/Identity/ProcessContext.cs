using System.Text.Json;

namespace InSpatialFs.Security.Identity;

/// <summary>
/// What Falco calls the process context of an event (<c>proc.*</c>, <c>user.loginuid</c>): read once from /proc when
/// a caller is pinned and shared by every event of that process, so a rule on <c>proc.cmdline</c> costs a field
/// read, not a syscall. Immutable; the parent chain (<see cref="Parent"/>) gives <c>proc.pname</c> and
/// <c>proc.aname[N]</c>. Replayed events carry one built from their JSON. Values are as the process's own
/// namespace shows them (paths inside the container).
/// </summary>
public sealed class ProcessContext
{
    /// <summary>Ancestors kept above a process (<c>proc.aname[1..16]</c>); Falco's rules look at most 7 up.</summary>
    public const int MaxAncestors = 16;

    /// <summary>proc.pid: the process (thread group) id.</summary>
    public int Pid { get; init; }
    /// <summary>proc.vpid: the pid inside the process's own pid namespace (NSpid's last value).</summary>
    public int VPid { get; init; }
    /// <summary>proc.ppid</summary>
    public int PPid { get; init; }
    /// <summary>proc.sid: session id.</summary>
    public int Sid { get; init; }
    /// <summary>proc.vpgid: process group id (as /proc shows it).</summary>
    public int Pgid { get; init; }
    /// <summary>proc.name: /proc/PID/comm (15 characters at most).</summary>
    public string Name { get; init; } = "";
    /// <summary>proc.exe: argv[0].</summary>
    public string Exe { get; init; } = "";
    /// <summary>proc.exepath: the executable's path (/proc/PID/exe).</summary>
    public string ExePath { get; init; } = "";
    /// <summary>proc.args: argv[1..] joined by spaces.</summary>
    public string Args { get; init; } = "";
    /// <summary>proc.cwd: the working directory, with a trailing '/' as Falco shows it.</summary>
    public string Cwd { get; init; } = "";
    /// <summary>proc.tty: the controlling terminal's device number (0: none).</summary>
    public long Tty { get; init; }
    /// <summary>user.loginuid: the audit login uid, -1 when unset.</summary>
    public long LoginUid { get; init; } = -1;
    /// <summary>Effective uid of the process (for user.name when an event carries none).</summary>
    public uint Uid { get; init; }
    /// <summary>Start time (clock ticks since boot): with the pid, the process's identity.</summary>
    public ulong StartTime { get; init; }
    /// <summary>Start time as Unix nanoseconds (for proc.duration); 0 when unknown.</summary>
    public long StartUnixNanos { get; init; }
    /// <summary>thread.cap_effective, cap_permitted, cap_inheritable as Falco prints them: capability names, space separated.</summary>
    public string CapEffective { get; init; } = "";
    public string CapPermitted { get; init; } = "";
    public string CapInheritable { get; init; } = "";
    /// <summary>The parent's context (null at the top of the chain, past <see cref="MaxAncestors"/>, or when the parent was gone).</summary>
    public ProcessContext? Parent { get; init; }
    /// <summary>The account names of the container (user.name, group.name), or null when not known.</summary>
    public AccountNames? Accounts { get; init; }

    /// <summary>proc.cmdline: proc.name followed by the arguments, as Falco renders it.</summary>
    public string CmdLine => _cmdLine ??= Args.Length == 0 ? Name : Name + " " + Args;

    private string? _cmdLine;

    /// <summary>
    /// The strings every event of this process writes (its own, and as a parent or ancestor of others), escaped and
    /// encoded as JSON once: the event consumer otherwise transcodes and escapes them again for each event.
    /// </summary>
    internal EncodedStrings Encoded => _encoded ??= new EncodedStrings(this);

    private EncodedStrings? _encoded;

    internal sealed class EncodedStrings(ProcessContext c)
    {
        public JsonEncodedText Name { get; } = JsonEncodedText.Encode(c.Name);
        public JsonEncodedText Exe { get; } = JsonEncodedText.Encode(c.Exe);
        public JsonEncodedText ExePath { get; } = JsonEncodedText.Encode(c.ExePath);
        public JsonEncodedText CmdLine { get; } = JsonEncodedText.Encode(c.CmdLine);
        public JsonEncodedText Cwd { get; } = JsonEncodedText.Encode(c.Cwd);
    }

    /// <summary>The ancestor <paramref name="level"/> up (0: this process, 1: the parent), or null.</summary>
    public ProcessContext? Ancestor(int level)
    {
        ProcessContext? p = this;
        for (int i = 0; i < level && p != null; i++)
        {
            p = p.Parent;
        }

        return p;
    }

    /// <summary>The session leader's context, when it is among the ancestors (proc.sname).</summary>
    public ProcessContext? SessionLeader
    {
        get
        {
            for (ProcessContext? p = this; p != null; p = p.Parent)
            {
                if (p.Pid == Sid)
                {
                    return p;
                }
            }

            return null;
        }
    }
}
