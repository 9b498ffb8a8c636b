using System.Reflection;

namespace InSpatialFs.Security.Rules;

/// <summary>A rules document: its name for diagnostics (a path, or builtin:NAME) and its YAML text.</summary>
public sealed record RuleSource(string Name, string Yaml)
{
    /// <summary>Reads a rules file; a missing or unreadable file becomes an R020 diagnostic at load.</summary>
    public static RuleSource FromFile(string path)
    {
        try
        {
            return new RuleSource(path, File.ReadAllText(path));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return new RuleSource(path, "") { ReadError = ex.Message };
        }
    }

    internal string? ReadError { get; init; }
}

/// <summary>The outcome of a load: a rule set when there were no errors, and every diagnostic either way.</summary>
public sealed record RuleLoadResult(RuleSet? RuleSet, IReadOnlyList<RuleDiagnostic> Diagnostics)
{
    public bool Succeeded => RuleSet != null;
}

/// <summary>Runs the pipeline: reader → collector → compiler → rule set. Built-in files come first, so later files override them.</summary>
public static class RuleLoader
{
    private const string BuiltInPrefix = "InSpatialFs.Security.Rules.BuiltIn.";

    private static readonly Lazy<IReadOnlyList<RuleSource>> BuiltIns = new(ReadBuiltIns);

    private static readonly Lazy<IReadOnlyList<RuleSource>> BuiltInsWithoutTests = new(() => [.. BuiltIns.Value.Select(WithoutTests)]);

    /// <summary>The embedded rule files, in name order.</summary>
    public static IReadOnlyList<RuleSource> BuiltInSources => BuiltIns.Value;

    /// <summary>Marks diagnostics of a load that failed inside the loader itself (a bug, never a rule author's mistake).</summary>
    public const string InternalErrorPrefix = "internal error while loading rules: ";

    /// <param name="sources">Rule files in load order (later ones override earlier ones).</param>
    /// <param name="includeBuiltIns">Load the embedded rules first (Falco's <c>-r</c> semantics when false: only the files given).</param>
    /// <param name="appendOutput">Text appended to every rule's output (Falco's <c>-p</c>), with its own <c>%fields</c>.</param>
    /// <param name="builtInTests">Read the built-in rules' embedded tests. A serving engine leaves them out: it never runs
    /// them (`rules test` and the test suite do), and they are almost half of the text it would otherwise parse at every
    /// start. The tests of the files given are always read, so a bad one is reported wherever the file is loaded.</param>
    public static RuleLoadResult Load(IEnumerable<RuleSource> sources, bool includeBuiltIns = true, string? appendOutput = null, bool builtInTests = true)
    {
        var diagnostics = new DiagnosticBag();
        try
        {
            return LoadCore(sources, includeBuiltIns, appendOutput, builtInTests, diagnostics);
        }
        catch (Exception ex) when (ex is not (OutOfMemoryException or StackOverflowException))
        {
            // Every malformed input has its own positioned diagnostic; this only keeps a loader bug from taking a daemon down.
            diagnostics.Error(RuleDiagnosticCodes.BadItem, new SourcePosition("<rules>", 1, 1), InternalErrorPrefix + ex.GetType().Name + ": " + ex.Message);
            return new RuleLoadResult(null, diagnostics.Items);
        }
    }

    private static void Read(IEnumerable<RuleSource> sources, RuleReader reader, List<RuleFileSpec> files, DiagnosticBag diagnostics)
    {
        foreach (RuleSource source in sources)
        {
            if (source.ReadError != null)
            {
                diagnostics.Error(RuleDiagnosticCodes.FileNotFound, new SourcePosition(source.Name, 0, 0), source.ReadError);
                continue;
            }

            files.Add(reader.Read(source.Name, source.Yaml));
        }
    }

    private static RuleLoadResult LoadCore(IEnumerable<RuleSource> sources, bool includeBuiltIns, string? appendOutput, bool builtInTests, DiagnosticBag diagnostics)
    {
        var files = new List<RuleFileSpec>();
        if (includeBuiltIns)
        {
            Read(builtInTests ? BuiltInSources : BuiltInsWithoutTests.Value, new RuleReader(diagnostics, readTests: builtInTests), files, diagnostics);
        }

        Read(sources, new RuleReader(diagnostics), files, diagnostics);
        CollectedRules collected = new RuleCollector(diagnostics).Collect(files);
        var compiler = new RuleCompiler(collected, diagnostics, appendOutput);
        List<CompiledRule> rules = compiler.CompileAll();
        foreach (CompiledRule rule in rules)
        {
            rule.Runtime = new RuleRuntime();
        }

        return diagnostics.HasErrors
            ? new RuleLoadResult(null, diagnostics.Items)
            : new RuleLoadResult(new RuleSet(rules, collected, diagnostics.Items, compiler.Skipped), diagnostics.Items);
    }

    public static RuleLoadResult LoadFiles(IEnumerable<string> paths, bool includeBuiltIns = true, string? appendOutput = null) =>
        Load(paths.Select(RuleSource.FromFile), includeBuiltIns, appendOutput);

    /// <summary>
    /// A built-in file with its rules' <c>tests:</c> blocks blanked, line for line, so every position stays where it was.
    /// Our own files only, written in one layout (a <c>tests:</c> key on its own line, its block indented deeper); the
    /// reader skips the key's value anyway, and ServingLoadTests checks that each file loads to the same rules either way.
    /// </summary>
    internal static RuleSource WithoutTests(RuleSource builtIn)
    {
        string[] lines = builtIn.Yaml.Split('\n');
        int blockIndent = -1;
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i];
            int indent = line.Length - line.TrimStart(' ').Length;
            if (blockIndent >= 0 && (line.Trim().Length == 0 || indent > blockIndent))
            {
                lines[i] = "";
                continue;
            }

            blockIndent = -1;
            if (indent > 0 && line.Trim() == "tests:")
            {
                lines[i] = "";
                blockIndent = indent;
            }
        }

        return builtIn with { Yaml = string.Join('\n', lines) };
    }

    private static IReadOnlyList<RuleSource> ReadBuiltIns()
    {
        Assembly assembly = typeof(RuleLoader).Assembly;
        var sources = new List<RuleSource>();
        foreach (string name in assembly.GetManifestResourceNames().Where(n => n.StartsWith(BuiltInPrefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            using Stream stream = assembly.GetManifestResourceStream(name)!;
            using var reader = new StreamReader(stream);
            sources.Add(new RuleSource("builtin:" + name[BuiltInPrefix.Length..], reader.ReadToEnd()));
        }

        return sources;
    }
}
