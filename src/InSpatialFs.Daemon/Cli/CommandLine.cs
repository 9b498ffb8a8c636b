using System.CommandLine;
using System.Reflection;

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

        foreach (VersionOption version in root.Options.OfType<VersionOption>())
        {
            version.Action = new PrintVersion();
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

    /// <summary>
    /// `--version`: the version and, on a second line, the source stamp of the tree this binary was built from (the test
    /// kit compares it with the tree under test).
    /// </summary>
    private sealed class PrintVersion : System.CommandLine.Invocation.SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            string version = typeof(PrintVersion).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
            parseResult.InvocationConfiguration.Output.WriteLine(version);
            parseResult.InvocationConfiguration.Output.WriteLine("sources " + SourceStamp.Value);
            return ExitCodes.Ok;
        }
    }

    /// <summary>Commands added by later layers (ctl, rules, config, oci-spec, overlay-mount, prune).</summary>
    private static IEnumerable<Command> ExtraCommands() => [CtlCommand.Create(), RulesCommand.Create(), ConfigCommand.Create(), OciSpecCommand.Create(), OverlayMountCommand.Create(), PruneCommand.Create()];
}
