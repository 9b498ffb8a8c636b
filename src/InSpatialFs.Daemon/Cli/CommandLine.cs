using System.CommandLine;

namespace InSpatialFs.Daemon.Cli;

/// <summary>Exit codes documented in the README.</summary>
internal static class ExitCodes
{
    public const int Ok = 0;
    public const int RuntimeFailure = 1;
    public const int UsageError = 2;
}

/// <summary>The `inspatialfs` command tree. Each command lives in its own file and builds its own options.</summary>
internal static class CommandLine
{
    public static int Run(string[] args)
    {
        var root = new RootCommand(
            "InSpatialFs: a container root filesystem over FUSE with a secure proxy (path policy, isolation levels, " +
            "resource limits, behavioural rules) in front of in-memory, host and DirectFS storage.");
        root.Subcommands.Add(MountCommand.Create());
        foreach (Command extra in ExtraCommands())
        {
            root.Subcommands.Add(extra);
        }

        ParseResult parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (System.CommandLine.Parsing.ParseError error in parsed.Errors)
            {
                Console.Error.WriteLine("inspatialfs: " + error.Message);
            }

            Console.Error.WriteLine("Try 'inspatialfs --help'.");
            return ExitCodes.UsageError;
        }

        return parsed.Invoke();
    }

    /// <summary>Commands added by later layers (ctl, rules, config, oci-spec, overlay-mount).</summary>
    private static IEnumerable<Command> ExtraCommands() => [CtlCommand.Create(), RulesCommand.Create(), ConfigCommand.Create(), OciSpecCommand.Create(), OverlayMountCommand.Create()];
}
