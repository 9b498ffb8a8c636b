namespace InSpatialFs.Daemon;

internal static class Program
{
    /// <summary>Installed under this name (a link to the daemon), it is the overlay mount program: `overlay-mount ARGS`.</summary>
    private const string OverlayMountProgram = "inspatialfs-overlay";

    private static int Main(string[] args)
    {
        // Container engines exec the mount program by path; answering to the link's name spares them a shell script
        // (three execs) in front of every container start.
        string invokedAs = Path.GetFileName(Environment.GetCommandLineArgs()[0]);
        return Cli.CommandLine.Run(invokedAs == OverlayMountProgram ? ["overlay-mount", .. args] : args);
    }
}
