namespace InSpatialFs.Security.Rules;

/// <summary>
/// The names of Falco's own fields (libsinsp's field classes, engine 0.57) and the namespaces of its plugins
/// (container, k8s, k8saudit, cloud sources). A field we do not provide is a load error when nothing knows it
/// (a typo), but when Falco knows it the rule is skipped with "needs FIELD" instead: Falco's
/// <c>skip-if-unknown-filter</c>, applied to fields a filesystem cannot have (network ports, k8s metadata...).
/// </summary>
internal static class FalcoFieldCatalog
{
    private static readonly HashSet<string> Names = new(string.Join(' ',
    [
        "evt.abspath evt.arg evt.args evt.asynctype evt.buffer evt.buflen evt.buflen.file evt.buflen.file.in",
        "evt.buflen.file.out evt.buflen.in evt.buflen.net evt.buflen.net.in evt.buflen.net.out evt.buflen.out",
        "evt.category evt.count evt.count.error evt.count.error.file evt.count.error.memory evt.count.error.net",
        "evt.count.error.other evt.count.exit evt.count.procinfo evt.count.threadinfo evt.cpu evt.datetime",
        "evt.datetime.s evt.deltatime evt.deltatime.ns evt.deltatime.s evt.dir evt.failed evt.hostname evt.info",
        "evt.infra.docker.container.id evt.infra.docker.container.image evt.infra.docker.container.name",
        "evt.infra.docker.name evt.io_dir evt.is_async evt.is_io evt.is_io_read evt.is_io_write evt.is_open_create",
        "evt.is_open_exec evt.is_open_read evt.is_open_write evt.is_syslog evt.is_wait evt.latency evt.latency.human",
        "evt.latency.ns evt.latency.quantized evt.latency.s evt.num evt.outputtime evt.plugininfo evt.pluginname",
        "evt.rawarg evt.rawres evt.rawtime evt.rawtime.ns evt.rawtime.s evt.reltime evt.reltime.ns evt.reltime.s",
        "evt.res evt.source evt.time evt.time.iso8601 evt.time.s evt.type evt.type.is evt.wait_latency fd.cip",
        "fd.cip.name fd.cnet fd.connected fd.containerdirectory fd.containername fd.cport fd.cproto fd.dev",
        "fd.dev.major fd.dev.minor fd.directory fd.filename fd.ino fd.ip fd.is_lower_layer fd.is_server",
        "fd.is_upper_layer fd.l4proto fd.lip fd.lip.name fd.lnet fd.lport fd.lproto fd.name fd.name_changed fd.nameraw",
        "fd.net fd.num fd.port fd.proto fd.rip fd.rip.name fd.rnet fd.rport fd.rproto fd.sip fd.sip.name fd.snet",
        "fd.sockfamily fd.sport fd.sproto fd.type fd.typechar fd.types fd.uid fdlist.cips fdlist.cports fdlist.names",
        "fdlist.nums fdlist.sips fdlist.sports fs.path.name fs.path.nameraw fs.path.source fs.path.sourceraw",
        "fs.path.target fs.path.targetraw group.gid group.name proc.aargs proc.acmdline proc.aenv proc.aexe",
        "proc.aexepath proc.aname proc.apid proc.args proc.cmdlenargs proc.cmdline proc.cmdnargs proc.cwd",
        "proc.duration proc.env proc.exe proc.exe_ino proc.exe_ino.ctime proc.exe_ino.ctime_duration_pidns_start",
        "proc.exe_ino.ctime_duration_proc_start proc.exe_ino.mtime proc.exeline proc.exepath proc.fdlimit",
        "proc.fdopencount proc.fdusage proc.is_exe_from_memfd proc.is_exe_lower_layer proc.is_exe_upper_layer",
        "proc.is_exe_writable proc.is_pgid_leader proc.is_sid_leader proc.is_vpgid_leader proc.loginshellid proc.name",
        "proc.nchilds proc.nthreads proc.pcmdline proc.pexe proc.pexepath proc.pgid proc.pgid.exe proc.pgid.exepath",
        "proc.pgid.name proc.pid proc.pid.ts proc.pidns_init_start_ts proc.pname proc.ppid proc.ppid.duration",
        "proc.ppid.ts proc.pvpid proc.sid proc.sid.exe proc.sid.exepath proc.sname proc.stderr.name proc.stderr.type",
        "proc.stdin.name proc.stdin.type proc.stdout.name proc.stdout.type proc.tty proc.vmrss proc.vmsize proc.vmswap",
        "proc.vpgid proc.vpgid.exe proc.vpgid.exepath proc.vpgid.name proc.vpid syscall.type thread.cap_effective",
        "thread.cap_inheritable thread.cap_permitted thread.cgroup thread.cgroups thread.cpu thread.cpu.system",
        "thread.cpu.user thread.exectime thread.ismain thread.nametid thread.pfmajor thread.pfminor thread.tid",
        "thread.totexectime thread.vmrss thread.vmrss.b thread.vmsize thread.vmsize.b thread.vtid user.homedir",
        "user.loginname user.loginuid user.name user.shell user.uid",    ]).Split(' ', StringSplitOptions.RemoveEmptyEntries), StringComparer.Ordinal);

    /// <summary>Namespaces of Falco plugins (container, k8smeta, k8saudit, cloudtrail, ...): every field in them is Falco's.</summary>
    private static readonly string[] PluginPrefixes =
    [
        "container.", "k8s.", "ka.", "k8smeta.", "kubernetes.", "ct.", "aws.", "s3.", "okta.", "github.", "gcp.", "json.",
        "jevt.", "span.", "mesos.", "marathon.", "syslog.", "docker.", "cri.", "podman.", "falco.", "evt.plugininfo",
        "proc.is_container_", "proc.is_exe_", "thread.",
    ];

    /// <summary>True when Falco (or one of its plugins) defines the field, so a rule using it is skipped rather than refused.</summary>
    public static bool IsFalcoField(string name)
    {
        if (Names.Contains(name) || name.StartsWith("evt.arg.", StringComparison.Ordinal) || name.StartsWith("evt.rawarg.", StringComparison.Ordinal))
        {
            return true; // evt.arg.NAME is any argument of any system call
        }

        foreach (string prefix in PluginPrefixes)
        {
            if (name.StartsWith(prefix, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }
}
