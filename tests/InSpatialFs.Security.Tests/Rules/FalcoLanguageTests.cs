using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;
using InSpatialFs.Security.Rules;
using static InSpatialFs.Security.Tests.Rules.RuleTestKit;

namespace InSpatialFs.Security.Tests.Rules;

/// <summary>Falco's field names, grammar and value types, as Falco's engine (libsinsp filter parser) defines them.</summary>
public sealed class FalcoLanguageTests
{
    private static ProcessContext Chain()
    {
        var accounts = AccountNames.FromText("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/ash\n", "root:x:0:\napp:x:1000:\n");
        var init = new ProcessContext { Pid = 1, Name = "runc:[2:INIT]", Exe = "runc", Accounts = accounts };
        var bash = new ProcessContext { Pid = 7, PPid = 1, Name = "bash", Exe = "/bin/bash", ExePath = "/usr/bin/bash", Args = "-l", Parent = init, Accounts = accounts };
        return new ProcessContext
        {
            Pid = 42,
            VPid = 3,
            PPid = 7,
            Sid = 7,
            Tty = 34816,
            Name = "cat",
            Exe = "cat",
            ExePath = "/usr/bin/cat",
            Args = "/etc/shadow",
            Cwd = "/root/",
            LoginUid = -1,
            Parent = bash,
            Accounts = accounts,
            CapEffective = "CAP_CHOWN CAP_SYS_ADMIN",
        };
    }

    private static FsEvent Sample(FsOp op = FsOp.Open, string path = "/ETC/Shadow")
    {
        FsEvent e = Ev(op, path, proc: "cat");
        e.Process = Chain();
        e.Uid = 0;
        e.Flags = 0x8000;
        return e;
    }

    [TestCase("fd.name = /ETC/Shadow", true)]
    [TestCase("fd.directory = /ETC and fd.filename = Shadow", true)]
    [TestCase("fd.nameraw = /ETC/Shadow and fs.path.name = /ETC/Shadow", true)]
    [TestCase("fd.typechar = 'f' and fd.type = file and fd.num >= 0", true)]
    [TestCase("evt.dir=<", true)]
    [TestCase("evt.dir = < and evt.category = file", true)]
    [TestCase("evt.is_open_read = true and evt.is_open_write = false", true)]
    [TestCase("evt.arg.flags contains O_LARGEFILE and evt.arg.name = /ETC/Shadow", true)]
    [TestCase("proc.cmdline = \"cat /etc/shadow\" and proc.args = /etc/shadow", true)]
    [TestCase("proc.exe = cat and proc.exepath = /usr/bin/cat and proc.cwd = /root/", true)]
    [TestCase("proc.pname = bash and proc.pcmdline = \"bash -l\" and proc.pexepath = /usr/bin/bash", true)]
    [TestCase("proc.aname[1] = bash and proc.aname[2] = runc:[2:INIT] and proc.apid[2] = 1", true)]
    [TestCase("proc.aname[3] exists", false)]
    [TestCase("proc.aname = bash", true)]
    [TestCase("proc.aname in (sshd, bash)", true)]
    [TestCase("proc.aname intersects (sshd, nginx)", false)]
    [TestCase("proc.pid = 42 and proc.vpid = 3 and proc.ppid = 7 and proc.sid = 7 and proc.sname = bash", true)]
    [TestCase("proc.tty != 0 and user.loginuid = -1", true)]
    [TestCase("user.name = root and group.name = root and user.shell = /bin/sh and user.homedir = /root", true)]
    [TestCase("thread.cap_effective contains CAP_SYS_ADMIN", true)]
    [TestCase("container.id = web-1 and container.name = web-1", true)]
    [TestCase("container.image.repository exists", false)]
    [TestCase("not container.image.repository in (trusted)", true)]
    public void Falco_fields_read_the_event_and_its_process(string condition, bool expected) =>
        Assert.That(Matches(condition, Sample()), Is.EqualTo(expected), condition);

    [TestCase("tolower(fd.name) = /etc/shadow", true)]
    [TestCase("toupper(fd.filename) = SHADOW", true)]
    [TestCase("basename(fd.name) = Shadow", true)]
    [TestCase("len(fd.name) = 11", true)]
    [TestCase("tolower(basename(fd.name)) in (shadow, gshadow)", true)]
    [TestCase("fd.filename = val(fd.filename)", true)]
    [TestCase("fd.name iglob /etc/sh*", true)]
    [TestCase("fd.name glob /etc/sh*", false)]
    [TestCase("fd.name regex '^/ETC/[A-Z][a-z]+$'", true)]
    [TestCase("fd.name regex 'x$'", false)]
    [TestCase("fd.name bcontains 2f455443", true)]
    [TestCase("fd.name bstartswith 2f455443", true)]
    [TestCase("fd.name bstartswith 455443", false)]
    [TestCase("fd.name pmatch (/ETC)", true)]
    [TestCase("fd.name pmatch (/E*/Shadow)", true)]
    [TestCase("fd.name pmatch (/ET)", false)]
    [TestCase("not(fd.name = /x) and not   not fd.name = /ETC/Shadow", true)]
    [TestCase("(fd.name = /x) or(fd.name = /ETC/Shadow)", true)]
    public void Operators_and_transformers_as_Falco_defines_them(string condition, bool expected) =>
        Assert.That(Matches(condition, Sample()), Is.EqualTo(expected), condition);

    [Test]
    public void Evt_res_is_Falco_s_string_and_evt_rawres_the_number_old_numeric_comparisons_still_work()
    {
        FsEvent failed = Sample();
        failed.Result = 2;
        Assert.That(Matches("evt.res = ENOENT and evt.res startswith E and evt.rawres = -2 and evt.failed = true", failed), Is.True);
        Assert.That(Matches("evt.res = 2", failed), Is.True, "a number compares the legacy errno");
        Assert.That(Matches("evt.res = SUCCESS or evt.rawres >= 0", failed), Is.False);
        Assert.That(Matches("evt.res = SUCCESS and evt.rawres = 0 and fd.num = 0", Sample()), Is.True);
        failed.Result = 0;
        Assert.That(Matches("evt.res = ENOENT", failed), Is.False);
    }

    [TestCase(FsOp.Open, "open")]
    [TestCase(FsOp.Open, "openat")]
    [TestCase(FsOp.Open, "openat2")]
    [TestCase(FsOp.Create, "creat")]
    [TestCase(FsOp.Create, "openat")]
    [TestCase(FsOp.Rename, "rename")]
    [TestCase(FsOp.Rename, "renameat2")]
    [TestCase(FsOp.Unlink, "unlinkat")]
    [TestCase(FsOp.RmDir, "unlinkat")]
    [TestCase(FsOp.Symlink, "symlinkat")]
    [TestCase(FsOp.Link, "linkat")]
    [TestCase(FsOp.Chmod, "fchmodat")]
    [TestCase(FsOp.MkDir, "mkdirat")]
    public void Evt_type_is_Falco_s_system_call_vocabulary(FsOp op, string syscall)
    {
        Assert.That(Matches($"evt.type = {syscall}", Sample(op)), Is.True);
        Assert.That(Matches($"evt.type in (execve, {syscall})", Sample(op)), Is.True);
        Assert.That(Matches($"syscall.type = {syscall}", Sample(op)), Is.True);
        Assert.That(Matches("evt.type = execve", Sample(op)), Is.False);
    }

    [Test]
    public void Evt_type_in_an_output_is_the_first_system_call_of_the_operation()
    {
        RuleEngine engine = Engine("- rule: r\n  condition: evt.type = rename\n  output: \"%evt.type %fs.path.source -> %fs.path.target by %proc.cmdline (%user.name)\"\n");
        FsEvent e = Sample(FsOp.Rename, "/a");
        e.Target = "/b";
        var detections = new List<Detection>();
        engine.Analyze(e, detections);
        Assert.That(detections.Single().Output, Is.EqualTo("renameat2 /a -> /b by cat /etc/shadow (root)"));
    }

    [Test]
    public void A_host_process_is_container_id_host_as_in_Falco()
    {
        FsEvent host = Sample();
        host.ContainerId = null;
        Assert.That(Matches("container.id = host", host), Is.True);
        Assert.That(Matches("container.id != host", host), Is.False);
        Assert.That(Matches("container.id = host", Sample()), Is.False);
    }

    [Test]
    public void Quoted_list_items_lose_their_quotes_as_when_Falco_pastes_them_into_the_condition()
    {
        const string preamble = """
            - list: login_binaries
              items: [login, '"(systemd)"', "'su do'"]
            """;
        FsEvent e = Sample();
        e.ProcName = "(systemd)";
        Assert.That(Matches("proc.name in (login_binaries)", e, preamble), Is.True);
        e.ProcName = "su do";
        Assert.That(Matches("proc.name in (login_binaries)", e, preamble), Is.True);
        e.ProcName = "\"(systemd)\"";
        Assert.That(Matches("proc.name in (login_binaries)", e, preamble), Is.False);
    }

    [Test]
    public void A_field_argument_is_parsed_as_such_and_a_bad_one_is_a_positioned_error()
    {
        Assert.That(Matches("proc.aname[1] in (bash)", Sample()), Is.True);
        RuleDiagnostic d = Errors("- rule: r\n  condition: proc.aname[x] = bash\n").Single();
        Assert.That((d.Code, d.Line, d.Column), Is.EqualTo((RuleDiagnosticCodes.BadValue, 2, 14)));
    }

    [TestCase("fd.name contains", RuleDiagnosticCodes.BadCondition)]
    [TestCase("fd.name startwith x", RuleDiagnosticCodes.BadOperator)]
    [TestCase("fd.name regex '(unclosed'", RuleDiagnosticCodes.BadValue)]
    [TestCase("fd.name bcontains xyz", RuleDiagnosticCodes.BadValue)]
    [TestCase("evt.rawres contains 1", RuleDiagnosticCodes.BadOperator)]
    [TestCase("len(evt.rawres) = 1", RuleDiagnosticCodes.BadOperator)]
    [TestCase("fd.name = 'a\\q'", RuleDiagnosticCodes.BadCondition)]
    [TestCase("proc.nmae = x", RuleDiagnosticCodes.UnknownField)]
    public void Malformed_Falco_conditions_are_coded_errors(string condition, string code)
    {
        IReadOnlyList<RuleDiagnostic> errors = Errors("- rule: r\n  condition: " + Quote(condition) + "\n");
        Assert.That(errors.Select(e => e.Code), Does.Contain(code), string.Join("\n", errors));
    }

    [Test]
    public void Replayed_events_may_use_Falco_s_keys()
    {
        FsEvent e = FsEventJson.Parse("""
            {"evt.type": "openat", "fd.name": "/etc/shadow", "evt.res": "EACCES", "proc.name": "cat", "proc.cmdline": "cat /etc/shadow",
             "proc.pname": "bash", "proc.aname[2]": "sshd", "user.name": "root", "container.id": "host", "evt.is_open_write": true}
            """);
        Assert.That((e.Op, e.Path, e.Result, e.ContainerId, e.IsWrite), Is.EqualTo((FsOp.Open, "/etc/shadow", 13, (string?)null, true)));
        Assert.That(Matches("proc.cmdline = \"cat /etc/shadow\" and proc.pname = bash and proc.aname[2] = sshd and user.name = root and evt.res = EACCES", e), Is.True);
        FsEvent roundTrip = FsEventJson.Parse(FsEventJson.ToJsonLine(e));
        Assert.That(Matches("proc.cmdline = \"cat /etc/shadow\" and proc.pname = bash and proc.aname[2] = sshd and evt.type = openat", roundTrip), Is.True);
    }

    [Test]
    public void Where_a_new_link_leads_survives_the_journal_so_a_replay_decides_as_the_daemon_did()
    {
        var e = new FsEvent { Op = FsOp.Symlink, Path = "/srv/www/x", LinkTarget = "../../../../etc/passwd", LinkResolved = "/.." };
        FsEvent roundTrip = FsEventJson.Parse(FsEventJson.ToJsonLine(e));
        Assert.That(roundTrip.LinkResolved, Is.EqualTo("/.."));
        Assert.That(Matches("fs.link_resolved = \"/..\" and fs.link_target contains \"../../../\"", roundTrip), Is.True);
        Assert.That(Matches("fs.link_resolved exists", new FsEvent { Op = FsOp.Open, Path = "/etc/passwd" }), Is.False, "only links have it");
    }

    [Test]
    public void Positions_inside_a_folded_condition_are_exact()
    {
        const string yaml = """
            - macro: m
              condition: evt.type = open
            - rule: r
              desc: d
              condition: >
                m and
                (fd.name startswith /etc or
                   fd.nmae = /x)
              output: o
              priority: WARNING
            """;
        RuleDiagnostic d = Errors(yaml).Single();
        Assert.That((d.Code, d.Line, d.Column), Is.EqualTo((RuleDiagnosticCodes.UnknownField, 8, 8)));
    }

    [Test]
    public void Positions_inside_a_literal_block_and_a_quoted_multi_line_condition_are_exact()
    {
        RuleDiagnostic literal = Errors("- rule: r\n  condition: |\n    evt.type = open\n      and  fd.nmae = /x\n").Single();
        Assert.That((literal.Line, literal.Column), Is.EqualTo((4, 12)));
        RuleDiagnostic quoted = Errors("- rule: r\n  condition: \"evt.type = open\n    and fd.nmae = /x\"\n").Single();
        Assert.That((quoted.Line, quoted.Column), Is.EqualTo((3, 9)));
    }
}
