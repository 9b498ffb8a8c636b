using InSpatialFs.Daemon.Runtime;

namespace InSpatialFs.Daemon.Tests.Hardening;

/// <summary>Crash recovery reads /proc/self/mountinfo: the mountpoint, the FUSE connection (device minor), type and source.</summary>
public sealed class MountInfoTests
{
    [Test]
    public void A_fuse_line_gives_mountpoint_connection_type_and_source_with_escapes_undone()
    {
        MountInfoEntry? entry = MountInfoEntry.Parse(
            "43 27 0:40 / /var/tmp/with\\040space/mnt rw,nosuid,nodev,relatime shared:5 - fuse.inspatialfs inspatialfs:web-1 rw,user_id=0,group_id=0");
        Assert.That(entry, Is.EqualTo(new MountInfoEntry("/var/tmp/with space/mnt", 40, "fuse.inspatialfs", "inspatialfs:web-1")));
    }

    [TestCase("")]
    [TestCase("43 27 0:40 / /mnt rw")]
    [TestCase("43 27 0:40 / /mnt rw - fuse")]
    public void A_short_or_malformed_line_is_skipped(string line)
    {
        Assert.That(MountInfoEntry.Parse(line), Is.Null);
        Assert.That(MountInfoEntry.Parse("1 2 8:1 / / rw - ext4 /dev/vda rw"), Is.Not.Null, "positive control");
    }
}
