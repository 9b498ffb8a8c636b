namespace InSpatialFs.Daemon.Config;

/// <summary>A configuration refused at load: names the file, the 1-based line and column, and the reason.
/// Line 0 means the problem has no position (command-line flags, a missing file).</summary>
public sealed class ConfigException : Exception
{
    public ConfigException(string file, int line, int column, string reason)
        : base(line > 0 ? $"{file}:{line}:{column}: {reason}" : $"{file}: {reason}")
    {
        File = file;
        Line = line;
        Column = column;
        Reason = reason;
    }

    public ConfigException(string file, int line, int column, string reason, Exception inner)
        : base(line > 0 ? $"{file}:{line}:{column}: {reason}" : $"{file}: {reason}", inner)
    {
        File = file;
        Line = line;
        Column = column;
        Reason = reason;
    }

    public string File { get; }
    public int Line { get; }
    public int Column { get; }
    public string Reason { get; }
}
