using System.CommandLine;
using InSpatialFs.Daemon.Config;
using InSpatialFs.Security.Rules;
using YamlDotNet.RepresentationModel;

namespace InSpatialFs.Daemon.Cli;

/// <summary>
/// `inspatialfs config validate|print|schema`: check a config without mounting it, show the configuration an instance
/// would run with, and write the config file's JSON Schema. Exit codes: 0 valid, 2 refused (each error as
/// FILE:LINE:COLUMN: reason on stderr), as `mount` refuses a config.
/// </summary>
internal static class ConfigCommand
{
    public static Command Create()
    {
        var command = new Command("config", "Check a config file without mounting it, print the effective config, or write its JSON Schema.");
        command.Subcommands.Add(Validate());
        command.Subcommands.Add(Print());
        command.Subcommands.Add(Schema());
        return command;
    }

    private static Argument<string> File() => new("FILE") { Description = "Instance config (YAML)." };

    private static Command Validate()
    {
        var file = File();
        var noBuiltIns = new Option<bool>("--no-builtins") { Description = "Check the rule files without the built-in rules (as the config's rules.builtins: false does)." };
        var command = new Command(
            "validate",
            "Load FILE as `mount --config FILE` would (every key, value and path checked; mount sources and overlay layers must " +
            "exist), then load its rule files with the built-in rules. Prints each error as FILE:LINE:COLUMN: reason and exits 2, " +
            "or prints a one-line summary and exits 0. Nothing is mounted.")
        { file };
        command.SetAction(p => RunValidate(p.GetValue(file)!, Console.Out, Console.Error));
        return command;
    }

    private static Command Print()
    {
        var file = File();
        var mountpoint = new Option<string?>("--mountpoint") { Description = "Override the mountpoint (mount's MOUNTPOINT argument)." };
        var name = new Option<string?>("--name") { Description = "Override the instance name (moves the default control and state directories)." };
        var control = new Option<string?>("--control") { Description = "Override the control directory." };
        var stateDir = new Option<string?>("--state-dir") { Description = "Override the state directory." };
        var isolation = new Option<string?>("--isolation") { Description = "Override the isolation level: standard, enhanced or maximum." };
        isolation.AcceptOnlyFromAmong("standard", "enhanced", "maximum");
        var rules = new Option<string[]>("--rules") { Description = "Extra rule file, as mount's --rules (added to rules.files); repeatable." };
        var command = new Command(
            "print",
            "Print the effective configuration of FILE after defaults and the overrides mount takes on its command line, as YAML " +
            "that `config validate` and `mount --config` accept. Exit 2 when FILE is refused.")
        { file, mountpoint, name, control, stateDir, isolation, rules };
        command.SetAction(p => RunPrint(p.GetValue(file)!, new ConfigOverrides
        {
            Mountpoint = p.GetValue(mountpoint) is { } m ? Path.GetFullPath(m) : null,
            Name = p.GetValue(name),
            Control = p.GetValue(control),
            StateDir = p.GetValue(stateDir),
            Isolation = p.GetValue(isolation),
        }, p.GetValue(rules) ?? [], Console.Out, Console.Error));
        return command;
    }

    private static Command Schema()
    {
        var command = new Command("schema", "Print the JSON Schema (draft 2020-12) of the config file, generated from the loader's key tables (for editors and CI).");
        command.SetAction(_ =>
        {
            Console.Out.Write(ConfigSchema.ToJson());
            return ExitCodes.Ok;
        });
        return command;
    }

    internal static int RunPrint(string file, ConfigOverrides overrides, IReadOnlyList<string> extraRules, TextWriter output, TextWriter errors)
    {
        try
        {
            InstanceConfig config = ConfigLoader.LoadFile(file, overrides);
            if (extraRules.Count > 0)
            {
                config = config with { Rules = config.Rules with { Files = [.. config.Rules.Files, .. extraRules.Select(Path.GetFullPath)] } };
            }

            output.Write(ConfigWriter.ToYaml(config));
            return ExitCodes.Ok;
        }
        catch (ConfigException e)
        {
            errors.WriteLine(e.Message);
            return ExitCodes.UsageError;
        }
    }

    /// <summary>The config, then everything the daemon would only find while mounting: its rule files.</summary>
    internal static int RunValidate(string file, TextWriter output, TextWriter errors)
    {
        (InstanceConfig? loaded, IReadOnlyList<ConfigException> refused) = ConfigLoader.ValidateFile(file);
        if (loaded is not { } config)
        {
            foreach (ConfigException e in refused)
            {
                errors.WriteLine(e.Message);
            }

            errors.WriteLine($"{file}: invalid ({refused.Count} error(s))");
            return ExitCodes.UsageError;
        }

        var problems = new List<string>();
        YamlNode[] ruleNodes = RuleFileNodes(file);
        var readable = new List<string>();
        for (int i = 0; i < config.Rules.Files.Count; i++)
        {
            string rulesFile = config.Rules.Files[i];
            string at = i < ruleNodes.Length ? $"{file}:{ruleNodes[i].Start.Line}:{ruleNodes[i].Start.Column}" : file;
            if (!System.IO.File.Exists(rulesFile))
            {
                problems.Add($"{at}: rules.files: {rulesFile} does not exist");
            }
            else
            {
                readable.Add(rulesFile);
            }
        }

        if (Directory.Exists(config.Mountpoint) is false && System.IO.File.Exists(config.Mountpoint))
        {
            problems.Add($"{file}: mountpoint {config.Mountpoint} is a file, not a directory");
        }

        RuleLoadResult rules = RuleLoader.LoadFiles(readable, config.Rules.BuiltIns, config.Outputs.Append);
        foreach (RuleDiagnostic d in rules.Diagnostics)
        {
            if (d.IsError) problems.Add(d.ToString());
            else output.WriteLine(d.ToString());
        }

        foreach (string p in problems)
        {
            errors.WriteLine(p);
        }

        if (problems.Count > 0)
        {
            errors.WriteLine($"{file}: invalid ({problems.Count} error(s))");
            return ExitCodes.UsageError;
        }

        output.WriteLine($"{file}: ok: instance '{config.Name}' at {config.Mountpoint}, {config.Mounts.Count} mount(s), " +
            $"{config.Rules.Files.Count} rule file(s), {rules.RuleSet?.Count ?? 0} rules");
        return ExitCodes.Ok;
    }

    /// <summary>The nodes of rules.files, to position a missing file at its line (the loader has checked the shape).</summary>
    private static YamlNode[] RuleFileNodes(string file)
    {
        try
        {
            var stream = new YamlStream();
            stream.Load(new StringReader(System.IO.File.ReadAllText(file)));
            if (stream.Documents[0].RootNode is YamlMappingNode root
                && root.Children.TryGetValue(new YamlScalarNode("rules"), out YamlNode? rules) && rules is YamlMappingNode r
                && r.Children.TryGetValue(new YamlScalarNode("files"), out YamlNode? files) && files is YamlSequenceNode seq)
            {
                return [.. seq.Children];
            }
        }
        catch (Exception e) when (e is IOException or YamlDotNet.Core.YamlException)
        {
            // loaded a moment ago; a file changed under us only loses the positions
        }

        return [];
    }
}
