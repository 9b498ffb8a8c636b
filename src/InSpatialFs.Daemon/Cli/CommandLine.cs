namespace InSpatialFs.Daemon.Cli;

/// <summary>Exit codes documented in the README.</summary>
internal static class ExitCodes
{
    public const int Ok = 0;
    public const int RuntimeFailure = 1;
    public const int UsageError = 2;
}

internal static class CommandLine
{
    public static int Run(string[] args)
    {
        Console.Error.WriteLine("inspatialfs: not built yet");
        return args.Length == 0 ? ExitCodes.UsageError : ExitCodes.RuntimeFailure;
    }
}
