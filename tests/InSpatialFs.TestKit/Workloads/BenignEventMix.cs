using InSpatialFs.Security.Events;

namespace InSpatialFs.TestKit.Workloads;

/// <summary>
/// The benign event mix the rule-engine tests and benchmarks share: what a web container does all day, at a rate
/// well below every built-in threshold, so a rule that fires on it is a false positive.
/// </summary>
public static class BenignEventMix
{
    /// <summary>A web container's traffic: lookups, stats, reads of code and config, writes of logs and data, a few execs.</summary>
    public static FsEvent[] Create(int count)
    {
        (FsOp Op, string Path, bool Write, bool Exec)[] shapes =
        [
            (FsOp.Lookup, "/usr/lib/python3.12/json/__init__.py", false, false),
            (FsOp.GetAttr, "/srv/app/main.py", false, false),
            (FsOp.Open, "/srv/app/templates/index.html", false, false),
            (FsOp.Read, "/srv/app/templates/index.html", false, false),
            (FsOp.Release, "/srv/app/templates/index.html", false, false),
            (FsOp.Open, "/etc/resolv.conf", false, false),
            (FsOp.Open, "/var/log/app/access.log", true, false),
            (FsOp.Write, "/var/log/app/access.log", true, false),
            (FsOp.Create, "/srv/data/upload-17.tmp", true, false),
            (FsOp.Write, "/srv/data/upload-17.tmp", true, false),
            (FsOp.OpenDir, "/srv/app/static", false, false),
            (FsOp.ReadDir, "/srv/app/static", false, false),
            (FsOp.Open, "/usr/bin/python3.12", false, true),
            (FsOp.GetXattr, "/srv/app/main.py", false, false),
            (FsOp.Read, "/srv/app/main.py", false, false),
        ];
        var events = new FsEvent[count];
        long t = FsEventJson.ParseTime("2026-11-27T12:00:00Z");
        for (int i = 0; i < count; i++)
        {
            // Renames and deletes are rarer (3 per second per process), as in a web app handling uploads.
            (FsOp op, string path, bool write, bool exec) = (i % 64) switch
            {
                10 => (FsOp.Rename, "/srv/data/upload-17.tmp", true, false),
                42 => (FsOp.Unlink, "/srv/data/cache/old-1", true, false),
                _ => shapes[i % shapes.Length],
            };
            events[i] = new FsEvent
            {
                Op = op,
                Path = path,
                Target = op == FsOp.Rename ? "/srv/data/upload-17" : null,
                IsWrite = write,
                IsExec = exec,
                Mode = 0x81A4,
                Pid = 1000 + ((i / 64) % 8),
                ProcName = exec ? "gunicorn" : "python3",
                ContainerId = "web-1",
                Seq = (ulong)i + 1,
                // 200 events per second per process: well below every threshold.
                TimeUnixNanos = t + (i * 625_000L),
            };
        }

        return events;
    }
}
