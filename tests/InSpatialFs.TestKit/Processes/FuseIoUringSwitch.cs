namespace InSpatialFs.TestKit.Processes;

/// <summary>
/// The fuse module's io_uring switch (/sys/module/fuse/parameters/enable_uring), set for a test and put back as it was
/// when disposed. It only decides what new connections are offered at INIT: a mount already on its rings keeps them.
/// </summary>
public sealed class FuseIoUringSwitch : IDisposable
{
    public const string SwitchPath = "/sys/module/fuse/parameters/enable_uring";

    private readonly string _before;

    private FuseIoUringSwitch(string before) => _before = before;

    /// <summary>Sets the switch (Y or N); ignores the test on a kernel without FUSE over io_uring or without root.</summary>
    public static FuseIoUringSwitch Set(bool on)
    {
        if (!File.Exists(SwitchPath))
        {
            Assert.Ignore($"this kernel has no FUSE over io_uring ({SwitchPath} is missing)");
        }

        string before = File.ReadAllText(SwitchPath).Trim();
        try
        {
            File.WriteAllText(SwitchPath, on ? "Y" : "N");
        }
        catch (UnauthorizedAccessException)
        {
            Assert.Ignore($"{SwitchPath} is root's to set");
        }

        return new FuseIoUringSwitch(before);
    }

    public void Dispose() => File.WriteAllText(SwitchPath, _before);
}
