namespace InSpatialFs.Daemon.Control;

/// <summary>The commands the `control` file takes, one per line.</summary>
internal enum ControlVerb
{
    Suspend,
    Resume,
    Reload,
    Ack,
    Resolve,
    Isolation,
    ContainerInit,
    Upgrade,
}

/// <summary>
/// One parsed line of the `control` file. Parsing is separate from running so the daemon and `inspatialfs ctl` refuse
/// the same malformed lines with the same positioned reason (column of the offending word), and so the parser can be
/// fuzzed on its own. Lines are bounded (<see cref="MaxLineBytes"/>) before they ever reach it.
/// </summary>
internal readonly record struct ControlCommand(ControlVerb Verb, string? Argument)
{
    /// <summary>The longest command line the daemon buffers; a longer one fails the write with EINVAL.</summary>
    public const int MaxLineBytes = 4096;

    public const string Usage = "suspend, resume, reload, ack ID, resolve ID, container-init PID, isolation LEVEL, upgrade [BINARY]";

    private const int MaxIdLength = 64;

    /// <summary>Parses a line (without its newline). On failure, <paramref name="column"/> is 1-based within the line.</summary>
    public static bool TryParse(string line, out ControlCommand command, out int column, out string error)
    {
        command = default;
        for (int i = 0; i < line.Length; i++)
        {
            if (char.IsControl(line[i]) && line[i] != '\t' || char.IsSurrogate(line[i]) || line[i] == '\uFFFD')
            {
                return Refuse(i + 1, "a control character or invalid UTF-8 in the command", out column, out error);
            }
        }

        var words = new List<(string Text, int Column)>(3);
        for (int i = 0; i < line.Length;)
        {
            while (i < line.Length && line[i] is ' ' or '\t') i++;
            int start = i;
            while (i < line.Length && line[i] is not (' ' or '\t')) i++;
            if (i > start) words.Add((line[start..i], start + 1));
        }

        if (words.Count == 0)
        {
            return Refuse(1, "an empty command", out column, out error);
        }

        (string verbText, int verbColumn) = words[0];
        ControlVerb? verb = verbText switch
        {
            "suspend" => ControlVerb.Suspend,
            "resume" => ControlVerb.Resume,
            "reload" => ControlVerb.Reload,
            "ack" => ControlVerb.Ack,
            "resolve" => ControlVerb.Resolve,
            "isolation" => ControlVerb.Isolation,
            "container-init" => ControlVerb.ContainerInit,
            "upgrade" => ControlVerb.Upgrade,
            _ => null,
        };
        if (verb is not ControlVerb v)
        {
            return Refuse(verbColumn, $"unknown command '{verbText}' ({Usage})", out column, out error);
        }

        int wanted = v is ControlVerb.Ack or ControlVerb.Resolve or ControlVerb.Isolation or ControlVerb.ContainerInit ? 2 : 1;
        if (v == ControlVerb.Upgrade)
        {
            wanted = Math.Min(words.Count, 2); // the binary is optional
            if (wanted == 2 && (words[1].Text[0] != '/' || words[1].Text.Contains("/../", StringComparison.Ordinal) || words[1].Text.EndsWith("/..", StringComparison.Ordinal)))
            {
                return Refuse(words[1].Column, $"'{words[1].Text}' is not an absolute path of a binary", out column, out error);
            }
        }

        if (words.Count > wanted)
        {
            return Refuse(words[wanted].Column, $"'{verbText}' takes {(wanted == 1 ? "no argument" : "one argument")}", out column, out error);
        }

        if (words.Count < wanted)
        {
            return Refuse(line.Length + 1, $"'{verbText}' needs {v switch { ControlVerb.Isolation => "a LEVEL", ControlVerb.ContainerInit => "a PID", _ => "an incident ID" }}", out column, out error);
        }

        string? argument = wanted == 2 ? words[1].Text : null;
        if (argument != null && v == ControlVerb.Isolation && argument is not ("standard" or "enhanced" or "maximum"))
        {
            return Refuse(words[1].Column, $"unknown isolation level '{argument}' (standard, enhanced, maximum)", out column, out error);
        }

        if (argument != null && v == ControlVerb.ContainerInit
            && !(int.TryParse(argument, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int pid) && pid > 0))
        {
            return Refuse(words[1].Column, $"'{argument}' is not a process id", out column, out error);
        }

        if (argument != null && v is not (ControlVerb.Isolation or ControlVerb.ContainerInit or ControlVerb.Upgrade) &&
            (argument.Length > MaxIdLength || !argument.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is '-' or '_' or '.')))
        {
            return Refuse(words[1].Column, $"'{argument}' is not an incident id (letters, digits, '-', '_', '.', at most {MaxIdLength})", out column, out error);
        }

        command = new ControlCommand(v, argument);
        column = 0;
        error = "";
        return true;
    }

    public override string ToString()
    {
        string verb = Verb == ControlVerb.ContainerInit ? "container-init" : Verb.ToString().ToLowerInvariant();
        return Argument == null ? verb : $"{verb} {Argument}";
    }

    private static bool Refuse(int at, string reason, out int column, out string error)
    {
        column = at;
        error = reason;
        return false;
    }
}
