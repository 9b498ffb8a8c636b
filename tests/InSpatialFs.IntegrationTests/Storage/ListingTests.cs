using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Storage;

/// <summary>
/// Directory listings (READDIRPLUS): entries the kernel has not seen come with their attributes; entries it already
/// holds are listed by name only and keep the nodeid the kernel knows. Either way every name is listed once, its
/// d_ino is what stat reports, and forbidden entries stay hidden wherever a forbidden pattern can reach.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class ListingTests
{
    private const int Files = 300;

    [TestCase(true)]
    [TestCase(false)]
    public void A_relisting_of_entries_the_kernel_holds_lists_each_once_with_its_stat_inode(bool host)
    {
        using ControlledMount m = host
            ? ControlledMount.Start("/dev/shm", withSource: true)
            : ControlledMount.Start("/dev/shm", withSource: false, "--memory");
        string dir = Path.Combine(m.MountPoint, "d");
        Directory.CreateDirectory(dir);
        Shell.Check($"cd '{dir}' && for i in $(seq -w 1 {Files}); do echo $i > f$i; done");

        // First listing: unseen entries (host) or entries just created (memory); then stat every file so the kernel
        // holds them all, and list again: the second listing is served by name.
        Dictionary<string, string> first = InodesByName(Shell.Check($"ls -ai '{dir}'"));
        Dictionary<string, string> stats = InodesByName(Shell.Check($"cd '{dir}' && stat -c '%i %n' . .. f*"));
        Dictionary<string, string> second = InodesByName(Shell.Check($"ls -ai '{dir}'"));
        string longListing = Shell.Check($"ls -l '{dir}' | grep -c '^-rw'");

        Assert.Multiple(() =>
        {
            Assert.That(first.Keys, Is.EquivalentTo(stats.Keys), "first listing: every name once");
            Assert.That(second.Keys, Is.EquivalentTo(stats.Keys), "relisting: every name once");
            foreach ((string name, string ino) in stats)
            {
                Assert.That(first[name], Is.EqualTo(ino), $"listed d_ino of {name} is its stat inode");
                Assert.That(second[name], Is.EqualTo(ino), $"relisted d_ino of {name} is its stat inode");
            }

            Assert.That(longListing.Trim(), Is.EqualTo(Files.ToString(System.Globalization.CultureInfo.InvariantCulture)), "ls -l stats every listed file");
        });
        m.AssertAlive();
    }

    [Test]
    public void Forbidden_entries_stay_hidden_in_listings_while_other_directories_list_in_full()
    {
        using ControlledMount m = ControlledMount.Start("/dev/shm", withSource: true, "--forbid", "/keys/*.pem", "--forbid", "/keys/private");
        Shell.Check($"mkdir -p '{m.Source}/keys/private' '{m.Source}/data' && cd '{m.Source}/keys' && touch a.pem b.pem readme && cd '{m.Source}/data' && touch a.pem b.pem readme");

        // Twice each: the second listing meets entries the kernel already holds.
        for (int pass = 0; pass < 2; pass++)
        {
            string keys = Shell.Check($"ls -a '{m.MountPoint}/keys'");
            string data = Shell.Check($"ls -a '{m.MountPoint}/data'");
            Assert.Multiple(() =>
            {
                Assert.That(Names(keys), Is.EquivalentTo(new[] { ".", "..", "readme" }), $"pass {pass}: forbidden entries hidden");
                Assert.That(Names(data), Is.EquivalentTo(new[] { ".", "..", "a.pem", "b.pem", "readme" }), $"pass {pass}: nothing hidden where no pattern reaches");
            });
            Shell.Check($"stat '{m.MountPoint}/keys/readme' '{m.MountPoint}/data/a.pem' '{m.MountPoint}/data/readme' >/dev/null");
        }

        m.AssertAlive();
    }

    private static string[] Names(string listing) => listing.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>Parses "INODE NAME" lines (ls -ai with one entry per line, or stat -c '%i %n').</summary>
    private static Dictionary<string, string> InodesByName(string output)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] parts = line.Trim().Split(' ', 2, StringSplitOptions.RemoveEmptyEntries);
            Assert.That(result.TryAdd(parts[1], parts[0]), Is.True, $"name listed twice: {parts[1]}");
        }

        return result;
    }
}
