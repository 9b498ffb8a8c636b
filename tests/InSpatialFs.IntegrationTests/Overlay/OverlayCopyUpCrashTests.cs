using InSpatialFs.TestKit.Processes;

using InSpatialFs.IntegrationTests.Security;

namespace InSpatialFs.IntegrationTests.Overlay;

/// <summary>
/// Issue 13: the daemon is killed (SIGKILL) while it copies a large lower file up; the next mount of the same layers
/// shows either the old file or the whole new one, never a torn copy, and the work directory holds nothing afterwards.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class OverlayCopyUpCrashTests
{
    [Test]
    public void A_kill_during_copy_up_leaves_the_old_or_the_new_file_never_a_torn_one()
    {
        DaemonProcess.RequireMountable();
        string work = Path.Combine("/var/tmp", "isfs-ovlcrash-" + Guid.NewGuid().ToString("N")[..8]);
        string mnt = Path.Combine(work, "mnt"), upper = Path.Combine(work, "upper");
        Shell.Check($"mkdir -p '{work}'/lower '{upper}' '{work}'/work '{mnt}' && head -c 384M /dev/urandom > '{work}/lower/big'", TimeSpan.FromMinutes(2));
        string lowerHash = Shell.Check($"sha256sum < '{work}/lower/big'").Split(' ')[0];
        string newHash = Shell.Check($"(cat '{work}/lower/big'; echo appended) | sha256sum").Split(' ')[0];
        string config = Path.Combine(work, "overlay.yaml");
        File.WriteAllText(config, $$"""
            name: ovc-{{Path.GetFileName(work)[^8..]}}
            mountpoint: {{mnt}}
            control: {{work}}/control
            state_dir: {{work}}/state
            mounts:
              - { path: /, overlay: { lower: [{{work}}/lower], upper: {{upper}}, work: {{work}}/work } }
            """);
        try
        {
            var seen = new List<string>();
            foreach (int delayMs in new[] { 30, 400, 1500, 6000 })
            {
                Shell.Run($"rm -f '{upper}/big'");
                using DaemonProcess daemon = DaemonProcess.Start(mnt, ["--config", config], appendMountPoint: false);
                ControlFiles.WaitUntilServing(Path.Combine(work, "control"), daemon);
                // The append forces a copy-up of 384 MiB; the daemon dies somewhere in it (or just after).
                Shell.Run($"(echo appended >> '{mnt}/big') 2>/dev/null & sleep {delayMs / 1000.0:0.000}; kill -9 {daemon.Pid}", TimeSpan.FromMinutes(1));
                Assert.That(ControlFiles.Eventually(() => daemon.HasExited, TimeSpan.FromSeconds(10)), Is.True);

                string state = File.Exists(Path.Combine(upper, "big"))
                    ? Shell.Check($"sha256sum < '{upper}/big'").Split(' ')[0] switch
                    {
                        var h when h == lowerHash => "copied (append not yet applied)",
                        var h when h == newHash => "copied and appended",
                        _ => "TORN",
                    }
                    : "not copied";
                seen.Add($"{delayMs} ms: {state}");
                Assert.That(state, Is.Not.EqualTo("TORN"), string.Join("; ", seen));

                // The same config starts again by itself (the dead mount is detached), and the tree is whole.
                using DaemonProcess again = DaemonProcess.Start(mnt, ["--config", config], appendMountPoint: false);
                ControlFiles.WaitUntilServing(Path.Combine(work, "control"), again); // the dead mounts are replaced by then
                string merged = Shell.Check($"sha256sum < '{mnt}/big'", TimeSpan.FromMinutes(1)).Split(' ')[0];
                Assert.That(merged, Is.EqualTo(lowerHash).Or.EqualTo(newHash), string.Join("; ", seen));
                Assert.That(Shell.Check($"ls -A '{work}/work/work'").Trim(), Is.Empty, "interrupted copies are cleaned at mount");
                Assert.That(again.Stop(), Is.Zero, again.Output);
            }

            TestContext.Out.WriteLine(string.Join("\n", seen));
        }
        finally
        {
            Shell.Run($"umount -l '{mnt}' 2>/dev/null; umount -l '{work}/control' 2>/dev/null; rm -rf '{work}'", TimeSpan.FromMinutes(1));
        }
    }
}
