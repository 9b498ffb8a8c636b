using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Restart;

/// <summary>
/// inspatialfs-keeper on its own (native/keeper/test-keeper.sh drives the built binary with a scripted server): the
/// descriptor store and LISTEN_FDS hand-back, who may notify it, when it restarts and when it gives up, the exec switch
/// of an upgrade, the readiness pipe, and that nothing else leaks into the server.
/// </summary>
[TestFixture]
public sealed class KeeperTests
{
    [Test]
    public void The_keeper_passes_its_own_suite()
    {
        string keeper = Path.Combine(Path.GetDirectoryName(DaemonProcess.Binary)!, "inspatialfs-keeper");
        Assert.That(File.Exists(keeper), Is.True, "make build builds bin/inspatialfs-keeper");
        ShellResult r = Shell.Run($"bash '{DaemonProcess.RepoRoot}/native/keeper/test-keeper.sh' '{keeper}'", TimeSpan.FromMinutes(3));
        TestContext.Out.WriteLine(r.StdOut);
        Assert.Multiple(() =>
        {
            Assert.That(r.ExitCode, Is.Zero, r.ToString());
            Assert.That(r.StdOut, Does.Match(@"(?m)^\d+ passed, 0 failed$"));
        });
    }
}
