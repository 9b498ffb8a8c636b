using System.Globalization;
using System.Text.Json;
using InSpatialFs.Security.Identity;

namespace InSpatialFs.Security.Events;

/// <summary>
/// Falco's names in the event JSON: an event written with Falco's keys (fd.name, evt.type, evt.res as SUCCESS/ENOENT,
/// evt.rawres, proc.cmdline, proc.pname, proc.aname[N], user.name...) replays as one written with ours. Written
/// events carry evt.type and the process context (when known), so a replayed journal sees what the live rules saw.
/// </summary>
public static partial class FsEventJson
{
    private static class FalcoK
    {
        public static readonly JsonEncodedText EvtType = JsonEncodedText.Encode("evt.type");
        public static readonly JsonEncodedText[] Type = [.. Enumerable.Range(0, FsOpNames.Count).Select(i => JsonEncodedText.Encode(Rules.SyscallMap.TypeOf((FsOp)i)))];
        public static readonly JsonEncodedText ProcExe = JsonEncodedText.Encode("proc.exe");
        public static readonly JsonEncodedText ProcExePath = JsonEncodedText.Encode("proc.exepath");
        public static readonly JsonEncodedText ProcCmdLine = JsonEncodedText.Encode("proc.cmdline");
        public static readonly JsonEncodedText ProcCwd = JsonEncodedText.Encode("proc.cwd");
        public static readonly JsonEncodedText ProcTty = JsonEncodedText.Encode("proc.tty");
        public static readonly JsonEncodedText ProcPPid = JsonEncodedText.Encode("proc.ppid");
        public static readonly JsonEncodedText ProcSid = JsonEncodedText.Encode("proc.sid");
        public static readonly JsonEncodedText ProcVPid = JsonEncodedText.Encode("proc.vpid");
        public static readonly JsonEncodedText ProcPName = JsonEncodedText.Encode("proc.pname");
        public static readonly JsonEncodedText ProcPExePath = JsonEncodedText.Encode("proc.pexepath");
        public static readonly JsonEncodedText ProcPCmdLine = JsonEncodedText.Encode("proc.pcmdline");
        public static readonly JsonEncodedText UserLoginUid = JsonEncodedText.Encode("user.loginuid");
        public static readonly JsonEncodedText UserName = JsonEncodedText.Encode("user.name");
        public static readonly JsonEncodedText GroupName = JsonEncodedText.Encode("group.name");
        public static readonly JsonEncodedText[] AName = [.. Enumerable.Range(0, 8).Select(i => JsonEncodedText.Encode($"proc.aname[{i}]"))];
    }

    /// <summary>Ancestors written as proc.aname[2..N] (the parent is proc.pname); Falco's rules look at most 7 up.</summary>
    private const int WrittenAncestors = 7;

    private static void WriteFalco(Utf8JsonWriter w, FsEvent e)
    {
        w.WriteString(FalcoK.EvtType, V.Of(FalcoK.Type, (int)e.Op, Rules.SyscallMap.TypeOf(e.Op)));
        ProcessContext? c = e.Process ?? e.Caller?.Process;
        if (c is null)
        {
            return;
        }

        ProcessContext.EncodedStrings own = c.Encoded;
        w.WriteString(FalcoK.ProcExe, own.Exe);
        w.WriteString(FalcoK.ProcExePath, own.ExePath);
        w.WriteString(FalcoK.ProcCmdLine, own.CmdLine);
        w.WriteString(FalcoK.ProcCwd, own.Cwd);
        w.WriteNumber(FalcoK.ProcTty, c.Tty);
        w.WriteNumber(FalcoK.ProcPPid, c.PPid);
        w.WriteNumber(FalcoK.ProcSid, c.Sid);
        w.WriteNumber(FalcoK.ProcVPid, c.VPid);
        w.WriteNumber(FalcoK.UserLoginUid, c.LoginUid);
        if (c.Accounts?.User(e.Uid)?.Name is string user) w.WriteString(FalcoK.UserName, user);
        if (c.Accounts?.GroupName(e.Gid) is string group) w.WriteString(FalcoK.GroupName, group);
        if (c.Parent is { } parent)
        {
            ProcessContext.EncodedStrings p = parent.Encoded;
            w.WriteString(FalcoK.ProcPName, p.Name);
            w.WriteString(FalcoK.ProcPExePath, p.ExePath);
            w.WriteString(FalcoK.ProcPCmdLine, p.CmdLine);
        }

        for (int level = 2; level <= WrittenAncestors && c.Ancestor(level) is { } a; level++)
        {
            w.WriteString(FalcoK.AName[level], a.Encoded.Name);
        }
    }

    /// <summary>evt.res as Falco writes it: SUCCESS, or an errno name (ENOENT); a number is taken as the errno.</summary>
    private static int ParseResult(string s) =>
        Rules.FieldRendering.TryParseResult(s, out int errno) ? errno
        : int.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int n) ? Math.Abs(n)
        : throw new FormatException($"unknown result '{s}' (SUCCESS or an errno name such as ENOENT)");

    /// <summary>Collects Falco's keys of one event; <see cref="Finish"/> applies what needs all of them (operation, process context).</summary>
    private sealed class FalcoKeys
    {
        private string? _type;

        public bool HasOp { get; set; }
        private readonly Dictionary<string, JsonElement> _proc = new(StringComparer.Ordinal);

        public void Read(FsEvent e, string key, JsonElement v)
        {
            switch (key)
            {
                case "evt.type" or "syscall.type": _type = v.GetString(); break;
                case "evt.num": e.Seq = v.GetUInt64(); break;
                case "evt.rawres": e.Result = v.GetInt64() < 0 ? (int)-v.GetInt64() : 0; break;
                case "fd.name" or "fd.nameraw" or "fs.path.name" or "evt.arg.name" or "evt.arg.path" or "evt.arg.filename"
                    or "evt.arg.oldpath" or "evt.arg.linkpath" or "fs.path.source":
                    e.Path = v.GetString()!;
                    break;
                case "evt.arg.newpath": e.Target = v.GetString(); break;
                case "evt.arg.target": e.LinkTarget = v.GetString(); break;
                case "evt.is_open_write": e.IsWrite |= v.GetBoolean(); e.Flags |= v.GetBoolean() ? 1 : 0; break;
                case "thread.tid": e.Pid = v.GetInt32(); break;
                default:
                    if (key.StartsWith("proc.", StringComparison.Ordinal) || key.StartsWith("user.", StringComparison.Ordinal)
                        || key.StartsWith("group.", StringComparison.Ordinal) || key.StartsWith("thread.cap", StringComparison.Ordinal))
                    {
                        _proc[key] = v.Clone();
                    }

                    break;
            }
        }

        public void Finish(FsEvent e)
        {
            if (_type != null && !HasOp)
            {
                if (!Rules.SyscallMap.TryParse(_type, out FsOp op))
                {
                    throw new FormatException($"evt.type '{_type}' is not a system call a filesystem sees");
                }

                e.Op = op;
            }

            if (_proc.Count == 0)
            {
                return;
            }

            string? Str(string k) => _proc.TryGetValue(k, out JsonElement v) ? (v.ValueKind == JsonValueKind.String ? v.GetString() : v.GetRawText()) : null;
            long Num(string k, long fallback) => _proc.TryGetValue(k, out JsonElement v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : fallback;

            // Ancestors from the top down: proc.aname[N]..., then the parent (proc.pname, proc.pexe...).
            ProcessContext? parent = null;
            for (int level = ProcessContext.MaxAncestors; level >= 2; level--)
            {
                if (Str($"proc.aname[{level}]") is string name)
                {
                    parent = new ProcessContext { Name = name, Pid = (int)Num($"proc.apid[{level}]", 0), Parent = parent };
                }
            }

            if (Str("proc.pname") is string pname)
            {
                string pcmd = Str("proc.pcmdline") ?? pname;
                parent = new ProcessContext
                {
                    Name = pname,
                    Pid = (int)Num("proc.ppid", 0),
                    Exe = Str("proc.pexe") ?? "",
                    ExePath = Str("proc.pexepath") ?? "",
                    Args = pcmd.StartsWith(pname + " ", StringComparison.Ordinal) ? pcmd[(pname.Length + 1)..] : "",
                    Parent = parent,
                };
            }

            string procName = e.ProcName ?? Str("proc.name") ?? "";
            string cmd = Str("proc.cmdline") ?? procName;
            AccountNames? accounts = Str("user.name") is null && Str("group.name") is null ? null
                : AccountNames.FromText(
                    Str("user.name") is string u ? $"{u}:x:{e.Uid}:{e.Gid}::{Str("user.homedir") ?? ""}:{Str("user.shell") ?? ""}" : "",
                    Str("group.name") is string g ? $"{g}:x:{e.Gid}:" : "");
            e.Process = new ProcessContext
            {
                Pid = (int)Num("proc.pid", e.Pid),
                VPid = (int)Num("proc.vpid", 0),
                PPid = (int)Num("proc.ppid", 0),
                Sid = (int)Num("proc.sid", 0),
                Tty = Num("proc.tty", 0),
                LoginUid = Num("user.loginuid", -1),
                Name = procName,
                Exe = Str("proc.exe") ?? "",
                ExePath = Str("proc.exepath") ?? "",
                Args = Str("proc.args") ?? (cmd.StartsWith(procName + " ", StringComparison.Ordinal) ? cmd[(procName.Length + 1)..] : ""),
                Cwd = Str("proc.cwd") ?? "",
                CapEffective = Str("thread.cap_effective") ?? "",
                CapPermitted = Str("thread.cap_permitted") ?? "",
                CapInheritable = Str("thread.cap_inheritable") ?? "",
                Parent = parent,
                Accounts = accounts,
            };
        }
    }
}
