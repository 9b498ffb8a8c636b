using System.Globalization;
using System.Text;
using InSpatialFs.Daemon.Config;
using InSpatialFs.Daemon.Control;
using InSpatialFs.Daemon.Hosting;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.Daemon.Tests.Hardening;

/// <summary>
/// Issue 10, "Malformed input never crashes anything": a fixed-seed generator of mutated inputs for the config loader and
/// the control-command parser. `make test` runs a short pass; `FUZZ_ITERATIONS=1000000 make fuzz` a long one
/// (FUZZ_SEED picks another sequence). Every config refusal must be a ConfigException with a line and column; the command
/// parser must answer every line with a command or a positioned reason; nothing else may escape.
/// </summary>
[TestFixture]
public sealed class InputFuzzTests
{
    private const string Specials = "{}[]:,-&*!|>'\"%@#?~\n\t \\\0\u001b\u00a0\uFFFD\ud800/.";

    private static readonly string[] Words =
    [
        "name", "mountpoint", "control", "mounts", "path", "source", "memory", "size", "isolation", "maximum", "paths", "forbidden",
        "resources", "disk", "1GiB", "99999999999999999999", "controls", "refuse_setuid", "exec_runtime_written", "alert", "state_dir",
        "rules", "files", "true", "null", "~", "&anchor", "*anchor", "!!binary", "<<", "---", "...", "/", "/..", "../..",
    ];

    private static int Iterations(int shortPass) =>
        int.TryParse(Environment.GetEnvironmentVariable("FUZZ_ITERATIONS"), NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0 ? n : shortPass;

    private static int Seed =>
        int.TryParse(Environment.GetEnvironmentVariable("FUZZ_SEED"), NumberStyles.None, CultureInfo.InvariantCulture, out int s) ? s : 20261202;

    private string _dir = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "isfs-fuzz-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Path.Combine(_dir, "image", "usr"));
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    private string[] ConfigSeeds() =>
    [
        $"""
        name: web-1
        mountpoint: /srv/fuzz/rootfs
        mounts:
          - {"{"} path: /, source: {_dir}/image, readonly: false {"}"}
          - {"{"} path: /usr, source: {_dir}/image/usr, readonly: true, direct: true {"}"}
          - {"{"} path: /tmp, memory: {"{"} size: 64MiB {"}"} {"}"}
        isolation: enhanced
        paths: {"{"} forbidden: [/etc/shadow], readonly: [/usr/**], allowed: [/tmp/**] {"}"}
        resources: {"{"} memory: 256MiB, disk: 1GiB, inodes: 1000, open_files: 64, ops_per_second: 10, bytes_per_second: 1M {"}"}
        exec: {"{"} runtime_written: deny {"}"}
        controls: {"{"} refuse_setuid: false, allow_direct: true {"}"}
        response: {"{"} suspend_on: high {"}"}
        state_dir: /var/lib/inspatialfs/web-1
        container: {"{"} cgroup: /sys/fs/cgroup/web-1 {"}"}
        rules: {"{"} files: [a.yaml] {"}"}
        """,
        File.ReadAllText(Path.Combine(DaemonProcess.RepoRoot, "scripts", "examples", "web-1.yaml")),
        "mounts: [ { path: /, memory: { size: 1M } }\n",
        "a: {\n",
    ];

    [Test]
    public void Mutated_config_files_are_refused_with_positions_and_never_crash_the_loader()
    {
        var random = new Random(Seed);
        string[] seeds = ConfigSeeds();
        int refused = 0, loaded = 0;
        int iterations = Iterations(3000);
        for (int i = 0; i < iterations; i++)
        {
            string input = Mutate(seeds[random.Next(seeds.Length)], random);
            try
            {
                ConfigLoader.Load(input, "fuzz.yaml");
                loaded++;
            }
            catch (ConfigException e)
            {
                refused++;
                if (e.Line < 1 || e.Column < 1 || !e.Message.StartsWith("fuzz.yaml:", StringComparison.Ordinal))
                {
                    Assert.Fail($"iteration {i}: an unpositioned refusal '{e.Message}' for:\n{TerminalText.Escape(input)}");
                }
            }
            catch (Exception e)
            {
                Assert.Fail($"iteration {i}: {e.GetType().Name} escaped the loader: {e.Message}\ninput:\n{TerminalText.Escape(input)}");
            }
        }

        TestContext.Out.WriteLine($"{iterations} mutated configs (seed {Seed}): {loaded} loaded, {refused} refused with a position");
        Assert.That(refused, Is.GreaterThan(0), "the mutations reach the error paths");
        Assert.That(loaded, Is.GreaterThan(0), "and some still load (positive control: the seeds are valid)");
    }

    [Test]
    public void Mutated_control_lines_get_a_command_or_a_positioned_reason()
    {
        var random = new Random(Seed);
        string[] seeds = ["suspend", "resume", "reload", "ack inc-000001", "resolve inc-000002", "isolation maximum", "  ack\tinc-7  ", "upgrade", "upgrade /usr/local/lib/inspatialfs/inspatialfs"];
        int accepted = 0, refused = 0;
        int iterations = Iterations(50_000);
        for (int i = 0; i < iterations; i++)
        {
            string line = Mutate(seeds[random.Next(seeds.Length)], random);
            if (line.Length > ControlCommand.MaxLineBytes)
            {
                line = line[..ControlCommand.MaxLineBytes];
            }

            if (ControlCommand.TryParse(line, out ControlCommand command, out int column, out string error))
            {
                accepted++;
                Assert.That(ControlCommand.TryParse(command.ToString(), out ControlCommand again, out _, out _) && again == command, Is.True,
                    $"'{TerminalText.Escape(line)}' parsed as '{command}', which does not parse back");
            }
            else
            {
                refused++;
                Assert.That(column, Is.InRange(1, line.Length + 1), $"column of '{TerminalText.Escape(line)}': {error}");
                Assert.That(error, Is.Not.Empty);
            }
        }

        TestContext.Out.WriteLine($"{iterations} mutated command lines (seed {Seed}): {accepted} accepted, {refused} refused with a column");
        Assert.That(accepted, Is.GreaterThan(0));
        Assert.That(refused, Is.GreaterThan(0));
    }

    [TestCase("", 1, "an empty command")]
    [TestCase("frobnicate", 1, "unknown command 'frobnicate'")]
    [TestCase("ack", 4, "needs an incident ID")]
    [TestCase("suspend now", 9, "takes no argument")]
    [TestCase("isolation relaxed", 11, "unknown isolation level 'relaxed'")]
    [TestCase("ack inc-1\u001b[2J", 10, "control character")]
    [TestCase("ack ../../etc", 5, "is not an incident id")]
    [TestCase("upgrade bin/inspatialfs", 9, "is not an absolute path")]
    [TestCase("upgrade /usr/../tmp/x", 9, "is not an absolute path")]
    [TestCase("upgrade /a /b", 12, "takes one argument")]
    public void Malformed_commands_name_the_column(string line, int column, string reason)
    {
        Assert.That(ControlCommand.TryParse(line, out _, out int at, out string error), Is.False);
        Assert.That((at, error), Is.EqualTo((column, error)));
        Assert.That(error, Does.Contain(reason));
        Assert.That(ControlCommand.TryParse("ack inc-000001", out ControlCommand ok, out _, out _) && ok == new ControlCommand(ControlVerb.Ack, "inc-000001"), Is.True);
    }

    /// <summary>One to four edits: special characters, deletions, duplications, deep nesting, key words, truncation.</summary>
    private static string Mutate(string seed, Random random)
    {
        var s = new StringBuilder(seed);
        int edits = random.Next(1, 5);
        for (int e = 0; e < edits; e++)
        {
            int at = s.Length == 0 ? 0 : random.Next(s.Length + 1);
            switch (random.Next(8))
            {
                case 0:
                    if (s.Length > 0) s[Math.Min(at, s.Length - 1)] = Specials[random.Next(Specials.Length)];
                    break;
                case 1:
                    s.Insert(at, Specials[random.Next(Specials.Length)]);
                    break;
                case 2:
                    if (s.Length > 0) s.Remove(Math.Min(at, s.Length - 1), Math.Min(random.Next(1, 40), s.Length - Math.Min(at, s.Length - 1)));
                    break;
                case 3:
                {
                    int len = Math.Min(random.Next(1, 60), s.Length - Math.Min(at, s.Length));
                    s.Insert(at, s.ToString(Math.Min(at, s.Length), len));
                    break;
                }

                case 4:
                {
                    int depth = random.Next(1, 300);
                    s.Insert(at, random.Next(2) == 0 ? new string('[', depth) : string.Concat(Enumerable.Repeat("{a: ", depth)));
                    break;
                }

                case 5:
                    s.Insert(at, Words[random.Next(Words.Length)] + (random.Next(2) == 0 ? ": " : " "));
                    break;
                case 6:
                    s.Length = at;
                    break;
                default:
                    s.Insert(at, (char)random.Next(0, 0x3000));
                    break;
            }
        }

        return s.ToString();
    }
}
