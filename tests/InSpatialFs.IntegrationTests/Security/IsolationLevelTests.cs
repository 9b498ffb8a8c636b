using System.Text.Json.Nodes;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Security;

/// <summary>
/// One operation of the isolation table: <see cref="Setup"/> (shell, run in the source tree; $M is the
/// mountpoint) prepares, <see cref="Op"/> (fsop arguments) runs it through the mount in a fresh process, and
/// the expectation per level is "OK" or "ERRNO REASON [@OP PATH]" — the errno the program sees, the policy
/// reason the event and the incident carry, and, when the kernel is refused earlier than the op itself (a
/// LOOKUP of a forbidden directory), which event that is. <see cref="Effect"/> is a shell test on the source
/// tree that holds exactly when the operation took effect.
/// </summary>
public sealed record IsolationRow(string Name, string Setup, string Op, string EventOp, string EventPath, string Standard, string Enhanced, string Maximum, string? Effect = null)
{
    public string For(string level) => level switch
    {
        "standard" => Standard,
        "enhanced" => Enhanced,
        _ => Maximum,
    };

    public override string ToString() => Name;
}

/// <summary>
/// Issue 4, "Tests": through a real mount, a table-driven test per isolation level — for each op class what is
/// allowed, what is denied with which errno, and which events and incidents result. Every operation runs in its
/// own process (native/build/fsop), as a host process: under maximum, a high-severity denial blocks that process
/// (never a freeze), which the incident's response shows.
/// </summary>
[TestFixture("standard")]
[TestFixture("enhanced")]
[TestFixture("maximum")]
[NonParallelizable]
[Category("Mount")]
public sealed class IsolationLevelTests(string level)
{
    private const string Ok = "OK";
    private const string ReadOnly = "EROFS readonly:/usr/**";
    private const string Secret = "EACCES forbidden:/secret/** @lookup /secret";
    private const string OptEnhanced = "EROFS default:enhanced";
    private const string OptMaximum = "EACCES default:maximum @lookup /opt";
    private const string EtcMaximum = "EACCES default:maximum @lookup /etc";
    private const string Setuid = "EPERM privilege:setuid";
    private const string XattrWrite = "EPERM privilege:xattr_write";
    private const string SecurityXattr = "EPERM privilege:security_xattr";

    private SecuredMount _mount = null!;

    public static IEnumerable<IsolationRow> Rows =>
    [
        // reads
        new("read_allowed", "echo x > data/read", "read $M/data/read", "open", "/data/read", Ok, Ok, Ok),
        new("read_readonly", "", "read $M/usr/bin/tool", "open", "/usr/bin/tool", Ok, Ok, Ok),
        new("read_unlisted", "", "read $M/etc/hosts", "open", "/etc/hosts", Ok, Ok, EtcMaximum),
        new("read_forbidden_exact", "", "read $M/etc/shadow", "lookup", "/etc/shadow", "EACCES forbidden:/etc/shadow", "EACCES forbidden:/etc/shadow", EtcMaximum),
        new("read_forbidden_glob", "", "read $M/secret/key", "lookup", "/secret", Secret, Secret, Secret),

        // open for write
        new("write_allowed", "echo a > data/write", "write $M/data/write", "open", "/data/write", Ok, Ok, Ok, "grep -q x data/write"),
        new("write_readonly", "", "write $M/usr/bin/tool", "open", "/usr/bin/tool", ReadOnly, ReadOnly, ReadOnly, "! cmp -s /bin/true usr/bin/tool"),
        new("write_unlisted", "echo a > opt/write", "write $M/opt/write", "open", "/opt/write", Ok, OptEnhanced, OptMaximum, "grep -q x opt/write"),

        // create
        new("create_allowed", "", "create $M/data/create 0644", "create", "/data/create", Ok, Ok, Ok, "[ -e data/create ]"),
        new("create_memory", "", "create $M/tmp/create 0644", "create", "/tmp/create", Ok, Ok, Ok),
        new("create_readonly", "", "create $M/usr/create 0644", "create", "/usr/create", ReadOnly, ReadOnly, ReadOnly, "[ -e usr/create ]"),
        new("create_unlisted", "", "create $M/opt/create 0644", "create", "/opt/create", Ok, OptEnhanced, OptMaximum, "[ -e opt/create ]"),
        new("create_setuid", "", "create $M/data/create-suid 04755", "create", "/data/create-suid", Setuid, Setuid, Setuid, "[ -e data/create-suid ]"),

        // truncate
        new("truncate_allowed", "echo abc > data/trunc", "truncate $M/data/trunc 0", "truncate", "/data/trunc", Ok, Ok, Ok, "[ ! -s data/trunc ]"),
        new("truncate_readonly", "", "truncate $M/usr/bin/tool 0", "truncate", "/usr/bin/tool", ReadOnly, ReadOnly, ReadOnly, "[ ! -s usr/bin/tool ]"),

        // unlink, rmdir, mkdir
        new("unlink_allowed", "touch data/unlink", "unlink $M/data/unlink", "unlink", "/data/unlink", Ok, Ok, Ok, "[ ! -e data/unlink ]"),
        new("unlink_readonly", "touch usr/unlink", "unlink $M/usr/unlink", "unlink", "/usr/unlink", ReadOnly, ReadOnly, ReadOnly, "[ ! -e usr/unlink ]"),
        new("unlink_unlisted", "touch opt/unlink", "unlink $M/opt/unlink", "unlink", "/opt/unlink", Ok, OptEnhanced, OptMaximum, "[ ! -e opt/unlink ]"),
        new("unlink_forbidden", "", "unlink $M/secret/key", "lookup", "/secret", Secret, Secret, Secret, "[ ! -e secret/key ]"),
        new("rmdir_allowed", "mkdir data/rmdir", "rmdir $M/data/rmdir", "rmdir", "/data/rmdir", Ok, Ok, Ok, "[ ! -e data/rmdir ]"),
        new("rmdir_readonly", "mkdir usr/rmdir", "rmdir $M/usr/rmdir", "rmdir", "/usr/rmdir", ReadOnly, ReadOnly, ReadOnly, "[ ! -e usr/rmdir ]"),
        new("mkdir_allowed", "", "mkdir $M/data/mkdir 0755", "mkdir", "/data/mkdir", Ok, Ok, Ok, "[ -d data/mkdir ]"),
        new("mkdir_readonly", "", "mkdir $M/usr/mkdir 0755", "mkdir", "/usr/mkdir", ReadOnly, ReadOnly, ReadOnly, "[ -d usr/mkdir ]"),
        new("mkdir_unlisted", "", "mkdir $M/opt/mkdir 0755", "mkdir", "/opt/mkdir", Ok, OptEnhanced, OptMaximum, "[ -d opt/mkdir ]"),

        // rename: both ends are checked
        new("rename_within_allowed", "touch data/ren-a", "rename $M/data/ren-a $M/data/ren-b", "rename", "/data/ren-a", Ok, Ok, Ok, "[ -e data/ren-b ]"),
        new("rename_into_readonly", "touch data/ren-in", "rename $M/data/ren-in $M/usr/ren-in", "rename", "/data/ren-in", ReadOnly, ReadOnly, ReadOnly, "[ -e usr/ren-in ]"),
        new("rename_out_of_readonly", "touch usr/ren-out", "rename $M/usr/ren-out $M/data/ren-out", "rename", "/usr/ren-out", ReadOnly, ReadOnly, ReadOnly, "[ -e data/ren-out ]"),
        new("rename_into_unlisted", "touch data/ren-opt", "rename $M/data/ren-opt $M/opt/ren-opt", "rename", "/data/ren-opt", Ok, OptEnhanced, OptMaximum, "[ -e opt/ren-opt ]"),
        new("rename_into_forbidden", "touch data/ren-f", "rename $M/data/ren-f $M/secret/ren-f", "lookup", "/secret", Secret, Secret, Secret, "[ -e secret/ren-f ]"),

        // hard links
        new("link_own_file", "touch data/link-src", "link $M/data/link-src $M/data/link-dst", "link", "/data/link-src", Ok, Ok, Ok, "[ -e data/link-dst ]"),
        new("link_other_owners_file", "touch data/link-other && chown 1000:1000 data/link-other", "link $M/data/link-other $M/data/link-other2", "link", "/data/link-other",
            Ok, "EPERM privilege:hardlink_not_owner", "EPERM privilege:hardlink_not_owner", "[ -e data/link-other2 ]"),
        new("link_readonly_file", "", "link $M/usr/bin/tool $M/data/tool-link", "link", "/usr/bin/tool", ReadOnly, ReadOnly, ReadOnly, "[ -e data/tool-link ]"),

        // symlinks: a target leaving the namespace
        new("symlink_inside", "", "symlink ../etc/hosts $M/data/sym-in", "symlink", "/data/sym-in", Ok, Ok, Ok, "[ -L data/sym-in ]"),
        new("symlink_to_proc_root", "", "symlink /proc/self/root $M/data/sym-proc", "symlink", "/data/sym-proc",
            Ok, "EPERM privilege:symlink_escape", "EPERM privilege:symlink_escape", "[ -L data/sym-proc ]"),
        new("symlink_climbing_out", "", "symlink ../../../outside $M/data/sym-up", "symlink", "/data/sym-up",
            Ok, "EPERM privilege:symlink_escape", "EPERM privilege:symlink_escape", "[ -L data/sym-up ]"),

        // special files
        new("mknod_fifo", "", "mknod $M/data/fifo fifo", "mknod", "/data/fifo", Ok, Ok, "EPERM privilege:fifo_socket", "[ -p data/fifo ]"),
        new("mknod_device", "", "mknod $M/data/dev chr", "mknod", "/data/dev",
            "EPERM privilege:device_node", "EPERM privilege:device_node", "EPERM privilege:device_node", "[ -e data/dev ]"),

        // attributes
        new("chmod_plain", "touch data/chmod", "chmod $M/data/chmod 0700", "chmod", "/data/chmod", Ok, Ok, Ok, "[ $(stat -c %a data/chmod) = 700 ]"),
        new("chmod_setuid", "touch data/suid", "chmod $M/data/suid 04755", "chmod", "/data/suid", Setuid, Setuid, Setuid, "[ -u data/suid ]"),
        new("chmod_setgid", "touch data/sgid", "chmod $M/data/sgid 02755", "chmod", "/data/sgid", Setuid, Setuid, Setuid, "[ -g data/sgid ]"),
        new("chmod_readonly", "", "chmod $M/usr/bin/tool 0700", "chmod", "/usr/bin/tool", ReadOnly, ReadOnly, ReadOnly, "[ $(stat -c %a usr/bin/tool) = 700 ]"),
        new("chown_allowed", "touch data/chown", "chown $M/data/chown 1000 1000", "chown", "/data/chown", Ok, Ok, Ok, "[ $(stat -c %u data/chown) = 1000 ]"),
        new("chown_readonly", "", "chown $M/usr/bin/tool 1000 1000", "chown", "/usr/bin/tool", ReadOnly, ReadOnly, ReadOnly, "[ $(stat -c %u usr/bin/tool) = 1000 ]"),
        new("utimens_allowed", "touch -d 2000-01-01 data/times", "utimens $M/data/times", "utimens", "/data/times", Ok, Ok, Ok, "[ $(stat -c %Y data/times) -gt 1000000000 ]"),
        new("utimens_readonly", "touch -d 2000-01-01 usr/times", "utimens $M/usr/times", "utimens", "/usr/times", ReadOnly, ReadOnly, ReadOnly, "[ $(stat -c %Y usr/times) -gt 1000000000 ]"),

        // extended attributes (file capabilities live in security.capability)
        new("setxattr_user", "touch data/xu", "setxattr $M/data/xu user.note hello", "setxattr", "/data/xu", Ok, Ok, XattrWrite, "getfattr -n user.note data/xu >/dev/null 2>&1"),
        new("setxattr_security", "touch data/xs", "setxattr $M/data/xs security.evil x", "setxattr", "/data/xs", SecurityXattr, SecurityXattr, XattrWrite,
            "getfattr -n security.evil data/xs >/dev/null 2>&1"),
        new("setxattr_trusted", "touch data/xt", "setxattr $M/data/xt trusted.evil x", "setxattr", "/data/xt", SecurityXattr, SecurityXattr, XattrWrite,
            "getfattr -n trusted.evil data/xt >/dev/null 2>&1"),
        new("setxattr_readonly", "", "setxattr $M/usr/bin/tool user.note x", "setxattr", "/usr/bin/tool", ReadOnly, ReadOnly, ReadOnly,
            "getfattr -n user.note usr/bin/tool >/dev/null 2>&1"),
        new("removexattr_user", "touch data/xr && setfattr -n user.note -v hi data/xr", "removexattr $M/data/xr user.note", "removexattr", "/data/xr", Ok, Ok, XattrWrite,
            "! getfattr -n user.note data/xr >/dev/null 2>&1"),

        // fallocate
        new("fallocate_allowed", "touch data/falloc", "fallocate $M/data/falloc 8192", "fallocate", "/data/falloc", Ok, Ok, Ok, "[ $(stat -c %s data/falloc) = 8192 ]"),

        // exec: files of the image run; files written or modified at run time do not under maximum
        new("exec_image_file", "", "exec $M/usr/bin/tool", "open", "/usr/bin/tool", Ok, Ok, Ok),
        new("exec_host_placed_file", "cp /bin/true data/placed && chmod 0755 data/placed", "exec $M/data/placed", "open", "/data/placed", Ok, Ok, Ok),
        new("exec_runtime_written", "cp /bin/true $M/tmp/dropped", "exec $M/tmp/dropped", "open", "/tmp/dropped", Ok, Ok, "EPERM privilege:exec_runtime_written"),
        new("exec_runtime_modified", "cp /bin/true data/modified && chmod 0755 data/modified && cat /bin/true > $M/data/modified", "exec $M/data/modified", "open", "/data/modified",
            Ok, Ok, "EPERM privilege:exec_runtime_written"),
    ];

    [OneTimeSetUp]
    public void Mount() => _mount = SecuredMount.Start(level);

    [OneTimeTearDown]
    public void Unmount() => _mount?.Dispose();

    [TestCaseSource(nameof(Rows))]
    public void Operation_is_allowed_or_denied_with_the_levels_errno_and_recorded(IsolationRow row)
    {
        var expected = Expectation.Parse(row.For(level), row);
        if (row.Setup.Length > 0)
        {
            ShellResult setup = _mount.Sh(row.Setup);
            Assert.That(setup.ExitCode, Is.Zero, $"setup of {row.Name}: {setup}");
        }

        Assert.That(_mount.Fsop(row.Op), Is.EqualTo(expected.Outcome), $"fsop {row.Op} under {level}");

        if (row.Effect != null)
        {
            bool tookEffect = _mount.Sh(row.Effect).ExitCode == 0;
            Assert.That(tookEffect, Is.EqualTo(expected.Allowed), $"'{row.Effect}' on the source tree after {row.Op}");
        }

        // The event of the operation (or of the lookup that refused it), from the process that made it. An exec's open is
        // told from an earlier row's plain open of the same file by its exec flag: without it, a loaded run could take the
        // older event while the exec's was still on its way.
        bool exec = row.Op.StartsWith("exec", StringComparison.Ordinal);
        JsonObject e = _mount.WaitForEvent(
            x => Str(x, "evt.op") == expected.Op && Str(x, "fs.path") == expected.Path && Str(x, "proc.name") == "fsop"
                 && (!exec || !expected.Allowed || Str(x, "evt.is_exec") == "true")
                 && (expected.Allowed
                     ? Str(x, "evt.decision") is "allow" or "allow_direct" && Str(x, "evt.res") == "0"
                     : Str(x, "evt.decision") == "deny"),
            $"{expected.Op} {expected.Path} by fsop");
        Assert.That(Str(e, "container.level"), Is.EqualTo(level));
        if (row.Op.StartsWith("exec", StringComparison.Ordinal))
        {
            Assert.That(Str(e, "evt.is_exec"), Is.EqualTo("true"), e.ToJsonString());
        }

        if (expected.Allowed)
        {
            return;
        }

        Assert.That(Str(e, "evt.reason"), Is.EqualTo(expected.Reason), e.ToJsonString());
        Assert.That(Str(e, "evt.res"), Is.EqualTo(expected.ErrnoNumber.ToString(System.Globalization.CultureInfo.InvariantCulture)), e.ToJsonString());

        // A policy denial is itself an incident: read-only writes medium, forbidden access and privilege refusals high.
        string pid = Str(e, "proc.pid");
        JsonObject incident = _mount.WaitForIncident(
            i => Str(i, "source") == expected.Reason && Str(i, "pid") == pid && Str(i["evidence"]?[0], "fs.path") == expected.Path,
            $"{expected.Reason} for pid {pid}");
        Assert.That(Str(incident, "severity"), Is.EqualTo(expected.Outcome == "EROFS" ? "medium" : "high"), incident.ToJsonString());
        Assert.That(Str(incident, "process"), Is.EqualTo("fsop"));
        Assert.That(Str(incident, "status"), Is.EqualTo("open"));
        Assert.That(Str(incident["evidence"]?[0], "evt.op"), Is.EqualTo(expected.Op));

        // Under maximum a high-severity incident suspends — but this caller is a host process: it is blocked, never frozen.
        string response = level == "maximum" && expected.Outcome != "EROFS" ? "deny, block-process (host process: suspend refused)" : "deny";
        Assert.That(Str(incident, "response"), Is.EqualTo(response), incident.ToJsonString());
    }

    [Test]
    public void Forbidden_entries_are_absent_from_listings()
    {
        ShellResult root = _mount.Sh("ls -A \"$M\"");
        Assert.That(root.ExitCode, Is.Zero, root.ToString());
        string[] names = root.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        string[] expected = level == "maximum" ? ["data", "tmp", "usr"] : ["data", "etc", "opt", "tmp", "usr"];
        Assert.That(names, Is.EqualTo(expected), "ls / (secret is forbidden; under maximum so is everything not listed)");

        ShellResult etc = _mount.Sh("ls -A \"$M/etc\"");
        if (level == "maximum")
        {
            Assert.That(etc.ExitCode, Is.Not.Zero);
            Assert.That(etc.StdErr, Does.Contain("Permission denied"), etc.ToString());
        }
        else
        {
            Assert.That(etc.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(new[] { "hosts" }), "ls /etc hides shadow");
        }

        // The forbidden name exists in the source all along.
        Assert.That(File.Exists(Path.Combine(_mount.Source, "etc", "shadow")), Is.True);
        _mount.WaitForEvent(x => Str(x, "evt.op") == "readdir" && Str(x, "fs.path") == "/" && Str(x, "proc.name") == "ls", "readdir / by ls");
    }

    [Test]
    public void Status_reports_the_level_and_no_dropped_events()
    {
        Dictionary<string, string> status = _mount.Status();
        Assert.That(status["isolation"], Is.EqualTo(level));
        Assert.That(status["state"], Is.EqualTo("running"), "a host process's denials never suspend the instance");
        Assert.That(status["events_dropped"], Is.EqualTo("0"));
    }

    private static string Str(JsonNode? node, string key) => SecuredMount.Str(node, key);

    /// <summary>"OK" or "ERRNO REASON [@OP PATH]".</summary>
    private sealed record Expectation(string Outcome, string Reason, string Op, string Path)
    {
        public bool Allowed => Outcome == Ok;

        public int ErrnoNumber => Outcome switch
        {
            "EPERM" => 1,
            "EACCES" => 13,
            "EROFS" => 30,
            _ => throw new ArgumentException("no errno " + Outcome),
        };

        public static Expectation Parse(string text, IsolationRow row)
        {
            string[] words = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (words.Length == 1)
            {
                return new Expectation(words[0], "", row.EventOp, row.EventPath);
            }

            return words.Length == 4 && words[2].StartsWith('@')
                ? new Expectation(words[0], words[1], words[2][1..], words[3])
                : new Expectation(words[0], words[1], row.EventOp, row.EventPath);
        }
    }
}
