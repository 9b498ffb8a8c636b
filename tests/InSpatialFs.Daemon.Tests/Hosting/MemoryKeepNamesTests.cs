using System.Security.Cryptography;
using System.Text;
using InSpatialFs.Daemon.Hosting;

namespace InSpatialFs.Daemon.Tests.Hosting;

public sealed class MemoryKeepNamesTests
{
    [Test]
    public void Names_are_stable_short_ascii_and_differ_per_mount_path()
    {
        (string volume, string journal) = MemoryKeepNames.For("/tmp");
        Assert.Multiple(() =>
        {
            Assert.That(MemoryKeepNames.For("/tmp"), Is.EqualTo((volume, journal)), "the same path gives the same names in every server");
            Assert.That(volume, Does.Match("^memory-data\\.[0-9a-f]{16}$"), "a store name: short ASCII (FDNAME rules)");
            Assert.That(journal, Is.EqualTo("memory-" + volume["memory-data.".Length..] + ".log"));
            Assert.That(MemoryKeepNames.For("/tmp/").Volume, Is.Not.EqualTo(volume));
            Assert.That(MemoryKeepNames.For("/").Volume, Is.Not.EqualTo(volume));
            Assert.That(MemoryKeepNames.For("/täst").Volume, Does.Match("^memory-data\\.[0-9a-f]{16}$"), "any UTF-8 path");
        });
    }

    [Test]
    public void The_legacy_names_are_the_sha256_ones_an_earlier_server_stored()
    {
        // What servers before 2026-12 computed; an upgrade under a live mount looks the memory mount up by these.
        string key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes("/scratch")))[..16];
        Assert.Multiple(() =>
        {
            Assert.That(MemoryKeepNames.Legacy("/scratch"), Is.EqualTo(($"memory-data.{key}", $"memory-{key}.log")));
            Assert.That(MemoryKeepNames.For("/scratch"), Is.Not.EqualTo(MemoryKeepNames.Legacy("/scratch")),
                "new names differ, so the fallback is only taken where the new name was not handed over");
        });
    }
}
