using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using InSpatialFs.IntegrationTests.Containers;
using InSpatialFs.TestKit.Containers;
using InSpatialFs.TestKit.Processes;
using static InSpatialFs.IntegrationTests.Security.ControlFiles;

namespace InSpatialFs.IntegrationTests.Membership;

/// <summary>
/// A busybox image served by a real instance (<see cref="ContainerRootfs"/>) with <c>/etc/secret</c> forbidden and
/// <c>/work</c> writable, plus what the membership tests need around it: containers that run in the background and
/// wait for the test at numbered gates (<c>/work/goN</c>), host commands as nobody, and the control files.
/// </summary>
internal sealed class MembershipRig : IDisposable
{
    private readonly List<IDisposable> _owned = [];

    private MembershipRig(ContainerRootfs rootfs) => Rootfs = rootfs;

    public ContainerRootfs Rootfs { get; }

    public string MountPoint => Rootfs.MountPoint;

    public string Control => Rootfs.ControlDirectory;

    /// <summary>The config most membership tests share: /etc/secret forbidden, a high-severity denial suspends.</summary>
    public const string SuspendOnSecret = """
        response: { suspend_on: high }
        paths:
          forbidden: [/etc/secret]
        """;

    public static MembershipRig Start(string extraConfig)
    {
        string? why = RuncBundle.WhyCannotRun();
        if (why != null)
        {
            Assert.Ignore(why);
        }

        ContainerRootfs rootfs = ContainerRootfs.Start(extraConfig, directUsr: false);
        WaitUntilServing(rootfs.ControlDirectory, rootfs.Daemon);
        Directory.CreateDirectory(Path.Combine(rootfs.Image, "work"));
        File.WriteAllText(Path.Combine(rootfs.Image, "etc", "secret"), "TOP-SECRET\n");
        InstallFloodops(rootfs.Image);
        return new MembershipRig(rootfs);
    }

    /// <summary>native/floodops.c, linked statically into the image's /bin (a busybox image has no libc).</summary>
    public static void InstallFloodops(string image)
    {
        string source = Path.Combine(DaemonProcess.RepoRoot, "native", "floodops.c");
        Shell.Check($"gcc -O2 -static -o '{image}/bin/floodops' '{source}'", TimeSpan.FromMinutes(2));
    }

    /// <summary>Opens gate N for the containers (they poll for /work/goN).</summary>
    public void Open(int gate) => File.WriteAllText(Path.Combine(Rootfs.Image, "work", "go" + gate.ToString(CultureInfo.InvariantCulture)), "go\n");

    /// <summary>Shell lines that make a container wait at gate N without touching anything the policy refuses.</summary>
    public static string WaitAt(int gate) => $"until [ -e /work/go{gate} ]; do usleep 20000; done";

    /// <summary>Runs a container in the background (runc run in the foreground of a task).</summary>
    public Background RunInBackground(string script, Action<JsonObject>? edit = null)
    {
        var container = new Background(RuncBundle.Create(MountPoint, ["/bin/sh", "-c", script], edit));
        _owned.Add(container);
        return container;
    }

    /// <summary>A host command as nobody (uid 65534, no groups), the A2 attacker.</summary>
    public static ShellResult AsNobody(string command) =>
        Shell.Run($"setpriv --reuid nobody --regid nogroup --clear-groups -- {command}", TimeSpan.FromSeconds(60));

    public Dictionary<string, string> Status() => Security.ControlFiles.Status(Control);

    public List<JsonObject> Incidents() => Security.ControlFiles.Incidents(Control);

    public ShellResult Ctl(string verb) => Security.ControlFiles.Ctl(Control, verb);

    public static long Number(Dictionary<string, string> status, string key) => long.Parse(status[key].Split(' ')[0], CultureInfo.InvariantCulture);

    /// <summary>Grants CAP_SYS_CHROOT to the container process (runc's default set leaves it out).</summary>
    public static void WithChroot(JsonObject config)
    {
        JsonObject caps = config["process"]!["capabilities"]!.AsObject();
        foreach (string set in new[] { "bounding", "effective", "permitted" })
        {
            caps[set]!.AsArray().Add("CAP_SYS_CHROOT");
        }
    }

    public void Dispose()
    {
        for (int gate = 1; gate <= 5; gate++)
        {
            Open(gate);
        }

        Ctl("resume");
        foreach (IDisposable d in _owned)
        {
            d.Dispose();
        }

        Rootfs.Dispose();
    }

    /// <summary>A container running to completion on a task, with its runc state at hand.</summary>
    internal sealed class Background(RuncBundle bundle) : IDisposable
    {
        private readonly Task<ShellResult> _run = Task.Run(() => bundle.Run(TimeSpan.FromMinutes(5)));

        public RuncBundle Bundle => bundle;

        public bool IsCompleted => _run.IsCompleted;

        public string? State() => bundle.State();

        /// <summary>Waits for runc to report <paramref name="state"/> (or the container to finish).</summary>
        public bool Reaches(string state, TimeSpan timeout) => Eventually(() => bundle.State() == state || _run.IsCompleted, timeout) && bundle.State() == state;

        public ShellResult Finish(TimeSpan timeout)
        {
            Assert.That(_run.Wait(timeout), Is.True, "the container did not finish");
            return _run.Result;
        }

        public void Dispose()
        {
            bundle.Dispose();
            _run.Wait(TimeSpan.FromSeconds(30));
        }
    }

    /// <summary>Polls until a member of the container has been seen by the daemon (status callers_members).</summary>
    public void WaitForMember()
    {
        Assert.That(Eventually(() => Number(Status(), "callers_members") > 0, TimeSpan.FromSeconds(30)), Is.True, "the container never showed up as a member");
    }

    /// <summary>The newest incident matching <paramref name="match"/>, waiting for it.</summary>
    public JsonObject Incident(Func<JsonObject, bool> match, string what) => WaitForIncident(Control, match, what, TimeSpan.FromSeconds(20));

    public static Stopwatch Clock() => Stopwatch.StartNew();
}

/// <summary>
/// A fixture around one <see cref="MembershipRig"/> instance (mounted once, always unmounted): the config is the
/// fixture's, by default <see cref="MembershipRig.SuspendOnSecret"/>.
/// </summary>
public abstract class MembershipFixture
{
    internal MembershipRig Rig { get; private set; } = null!;

    protected virtual string Config => MembershipRig.SuspendOnSecret;

    [OneTimeSetUp]
    public void Mount() => Rig = MembershipRig.Start(Config);

    [OneTimeTearDown]
    public void Unmount() => Rig?.Dispose();
}
