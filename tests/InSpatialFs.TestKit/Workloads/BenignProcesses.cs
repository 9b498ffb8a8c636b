using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;

namespace InSpatialFs.TestKit.Workloads;

/// <summary>
/// Process context for <see cref="BenignEventMix"/>: the web container's processes (gunicorn workers under a shell
/// under the runtime's init), as the daemon pins them, so rules on proc.cmdline, proc.pname, proc.aname[N] and
/// user.name see what they would live.
/// </summary>
public static class BenignProcesses
{
    /// <summary>Gives every event of the mix the context of its process (one shared object per pid, as when pinned).</summary>
    public static FsEvent[] Attach(FsEvent[] events)
    {
        var accounts = AccountNames.FromText("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/srv/app:/bin/false\n", "root:x:0:\napp:x:1000:\n");
        var init = new ProcessContext { Pid = 1, Name = "tini", Exe = "/sbin/tini", ExePath = "/sbin/tini", Args = "-- /entrypoint.sh", Accounts = accounts };
        var shell = new ProcessContext { Pid = 7, PPid = 1, Name = "sh", Exe = "/bin/sh", ExePath = "/bin/dash", Args = "/entrypoint.sh", Parent = init, Accounts = accounts };
        var master = new ProcessContext { Pid = 20, PPid = 7, Name = "gunicorn", Exe = "/usr/bin/python3", ExePath = "/usr/bin/python3.12", Args = "/usr/local/bin/gunicorn app:app", Parent = shell, Accounts = accounts };
        var byPid = new Dictionary<int, ProcessContext>();
        foreach (FsEvent e in events)
        {
            if (!byPid.TryGetValue(e.Pid, out ProcessContext? context))
            {
                context = new ProcessContext
                {
                    Pid = e.Pid,
                    PPid = 20,
                    Name = e.ProcName ?? "python3",
                    Exe = "/usr/bin/python3",
                    ExePath = "/usr/bin/python3.12",
                    Args = "/usr/local/bin/gunicorn app:app --worker",
                    Cwd = "/srv/app/",
                    Parent = master,
                    Uid = 1000,
                    Accounts = accounts,
                };
                _ = context.CmdLine; // rendered once per process, as the first rule that reads it would
                byPid[e.Pid] = context;
            }

            e.Process = context;
            e.Uid = 1000;
            e.Gid = 1000;
        }

        return events;
    }
}
