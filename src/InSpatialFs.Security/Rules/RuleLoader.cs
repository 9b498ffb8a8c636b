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

    /// <summary>The embedded rule files, in name order.</summary>
    public static IReadOnlyList<RuleSource> BuiltInSources => BuiltIns.Value;

    /// <summary>Marks diagnostics of a load that failed inside the loader itself (a bug, never a rule author's mistake).</summary>
    public const string InternalErrorPrefix = "internal error while loading rules: ";

    /// <param name="sources">Rule files in load order (later ones override earlier ones).</param>
    /// <param name="includeBuiltIns">Load the embedded rules first (Falco's <c>-r</c> semantics when false: only the files given).</param>
    /// <param name="appendOutput">Text appended to every rule's output (Falco's <c>-p</c>), with its own <c>%fields</c>.</param>
    public static RuleLoadResult Load(IEnumerable<RuleSource> sources, bool includeBuiltIns = true, string? appendOutput = null)
    {
        var diagnostics = new DiagnosticBag();
        try
        {
            return LoadCore(sources, includeBuiltIns, appendOutput, diagnostics);
        }
        catch (Exception ex) when (ex is not (OutOfMemoryException or StackOverflowException))
        {
            // Every malformed input has its own positioned diagnostic; this only keeps a loader bug from taking a daemon down.
            diagnostics.Error(RuleDiagnosticCodes.BadItem, new SourcePosition("<rules>", 1, 1), InternalErrorPrefix + ex.GetType().Name + ": " + ex.Message);
            return new RuleLoadResult(null, diagnostics.Items);
        }
    }

    private static RuleLoadResult LoadCore(IEnumerable<RuleSource> sources, bool includeBuiltIns, string? appendOutput, DiagnosticBag diagnostics)
    {
        var reader = new RuleReader(diagnostics);
        var files = new List<RuleFileSpec>();
        foreach (RuleSource source in (includeBuiltIns ? BuiltInSources : []).Concat(sources))
        {
            if (source.ReadError != null)
            {
                diagnostics.Error(RuleDiagnosticCodes.FileNotFound, new SourcePosition(source.Name, 0, 0), source.ReadError);
                continue;
            }

            files.Add(reader.Read(source.Name, source.Yaml));
        }

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
