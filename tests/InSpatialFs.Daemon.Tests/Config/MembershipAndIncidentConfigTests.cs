using InSpatialFs.Daemon.Config;
using InSpatialFs.Security.Identity;

namespace InSpatialFs.Daemon.Tests.Config;

/// <summary>container.init_pid, host_users, incidents and events: parsed, defaulted and refused with positions.</summary>
[TestFixture]
public sealed class MembershipAndIncidentConfigTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "isfs-cfg-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    private InstanceConfig Load(string extra) => ConfigLoader.Load($"mountpoint: /srv/c1\nmounts:\n  - {{ path: /, source: {_dir} }}\n{extra}", "c.yaml");

    private ConfigException Refused(string extra) => Assert.Throws<ConfigException>(() => Load(extra))!;

    [Test]
    public void The_keys_load_into_the_config()
    {
        InstanceConfig cfg = Load("""
            container: { cgroup: /ctr/web-1, init_pid: 4242 }
            host_users: { root: read-only, others: none }
            incidents: { rate: 0.5, max_burst: 7, rotate_bytes: 2MiB, keep: 3 }
            """);
        Assert.Multiple(() =>
        {
            Assert.That((cfg.Container.Cgroup, cfg.Container.InitPid), Is.EqualTo(("/ctr/web-1", (int?)4242)));
            Assert.That((cfg.HostUsers.Root, cfg.HostUsers.Others), Is.EqualTo((HostAccess.ReadOnly, HostAccess.None)));
            Assert.That(cfg.Incidents, Is.EqualTo(new IncidentsConfig { Rate = 0.5, MaxBurst = 7, RotateBytes = 2L << 20, Keep = 3 }));
        });
    }

    [Test]
    public void Events_keys_load_and_default_to_a_journal_of_64_MiB_keeping_4()
    {
        Assert.That(Load("events: { journal: false, rotate_bytes: 1MiB, keep: 1 }\n").Events,
            Is.EqualTo(new EventsConfig { Journal = false, RotateBytes = 1L << 20, Keep = 1 }));
        Assert.That(Load("").Events, Is.EqualTo(new EventsConfig()));
        Assert.That(Refused("events: { journal: maybe }\n").Message, Does.Contain("events.journal: 'maybe'"));
        Assert.That(Refused("events: { rotate: 3 }\n").Message, Does.Contain("unknown key 'rotate' in events; valid keys: journal, rotate_bytes, keep"));
    }

    [Test]
    public void Without_the_keys_root_is_the_operator_and_other_users_may_not_grow_the_container()
    {
        InstanceConfig cfg = Load("");
        Assert.Multiple(() =>
        {
            Assert.That(cfg.Container.InitPid, Is.Null);
            Assert.That((cfg.HostUsers.Root, cfg.HostUsers.Others), Is.EqualTo((HostAccess.Full, HostAccess.NoQuotaWrites)));
            Assert.That(cfg.Incidents, Is.EqualTo(new IncidentsConfig()));
        });
    }

    [TestCase("host_users: { others: everything }\n", 4, "host_users.others: 'everything' is not one of full, no-quota-writes, read-only, none")]
    [TestCase("host_users: { guests: full }\n", 4, "unknown key 'guests' in host_users; valid keys: root, others")]
    [TestCase("container: { init_pid: -3 }\n", 4, "container.init_pid: '-3' is not a positive whole number")]
    [TestCase("incidents: { rate: fast }\n", 4, "incidents.rate: 'fast' is not a positive number")]
    [TestCase("incidents: { rate: 0 }\n", 4, "incidents.rate: '0' is not a positive number")]
    [TestCase("incidents: { rotate_bytes: 0 }\n", 4, "incidents.rotate_bytes: '0' is not")]
    [TestCase("incidents: { retention: 3 }\n", 4, "unknown key 'retention' in incidents; valid keys: rate, max_burst, rotate_bytes, keep")]
    public void Bad_values_are_refused_at_their_position(string extra, int line, string reason)
    {
        ConfigException e = Refused(extra);
        Assert.That(e.Line, Is.EqualTo(line));
        Assert.That(e.Reason, Does.Contain(reason));
    }
}
