using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests;

/// <summary>
/// Once per run of this assembly (a set-up fixture in the root namespace covers every fixture below it): removes the default state
/// directories the run's instances created, which a stopped instance keeps by design (see `inspatialfs prune`).
/// </summary>
[SetUpFixture]
public sealed class TestRunCleanup
{
    [OneTimeTearDown]
    public void RemoveStateDirectories()
    {
        int removed = DaemonProcess.RemoveCreatedStateDirectories();
        TestContext.Progress.WriteLine($"removed {removed} state directories this run created below /var/lib/inspatialfs");
    }
}
