using System.Text.Json;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Rules;

/// <summary>
/// The rule author's tools behind <c>inspatialfs rules validate|test|replay|explain|list</c>. Each method
/// writes human-readable (or JSON) text and returns a process exit code: 0 success, 1 a failing test, an unreadable
/// event line or an unknown rule, 2 rule files that do not load (every error printed as FILE:LINE:COLUMN).
/// Built-in rules are loaded first, as in the daemon, so files may override them; <c>includeBuiltIns: false</c>
/// loads only the files given (Falco's <c>-r</c>).
/// </summary>
public static class RuleTooling
{
    /// <summary>Exit code of a command whose rule files do not load.</summary>
    public const int LoadFailed = 2;

    /// <summary>Validates <paramref name="files"/> (on top of the built-in set); prints every diagnostic with its position.</summary>
    public static int Validate(IReadOnlyList<string> files, TextWriter output, bool includeBuiltIns = true)
    {
        RuleLoadResult result = RuleLoader.LoadFiles(files, includeBuiltIns);
        foreach (RuleDiagnostic d in result.Diagnostics)
        {
            output.WriteLine(d.ToString());
        }

        int errors = result.Diagnostics.Count(d => d.IsError), warnings = result.Diagnostics.Count - errors;
        output.WriteLine(result.Succeeded
            ? $"ok: {result.RuleSet!.Count} rules{Skipped(result.RuleSet)}, {warnings} warning(s)"
            : $"failed: {errors} error(s), {warnings} warning(s)");
        return result.Succeeded ? 0 : LoadFailed;
    }

    private static string Skipped(RuleSet set) => set.Skipped.Count == 0 ? "" : $" ({set.Skipped.Count} skipped)";

    /// <summary>Runs the <c>tests:</c> of the rules defined in <paramref name="files"/>, or of the built-in rules when none are given.</summary>
    public static int Test(IReadOnlyList<string> files, TextWriter output, bool includeBuiltIns = true)
    {
        RuleLoadResult result = RuleLoader.LoadFiles(files, includeBuiltIns);
        if (!PrintErrors(result, output))
        {
            return LoadFailed;
        }

        RuleSet set = result.RuleSet!;
        var testedFiles = new HashSet<string>(files, StringComparer.Ordinal);
        int passed = 0, failed = 0;
        foreach (CompiledRule rule in set.Rules)
        {
            bool selected = files.Count == 0 ? rule.DefinedIn.StartsWith("builtin:", StringComparison.Ordinal) : testedFiles.Contains(rule.DefinedIn);
            if (!selected)
            {
                continue;
            }

            foreach (RuleTestSpec test in rule.Tests)
            {
                string? failure = RunTest(set, rule, test);
                if (failure == null)
                {
                    passed++;
                    output.WriteLine($"PASS {rule.Name}: {test.Name}");
                }
                else
                {
                    failed++;
                    output.WriteLine($"FAIL {rule.Name}: {test.Name} ({test.At.File}:{test.At.Line}:{test.At.Column}): {failure}");
                }
            }
        }

        output.WriteLine($"{passed} passed, {failed} failed");
        return failed == 0 ? 0 : 1;
    }

    /// <summary>Runs one rule test on fresh engine state; null when it passes, else why not.</summary>
    internal static string? RunTest(RuleSet set, CompiledRule rule, RuleTestSpec test)
    {
        if (!rule.Enabled)
        {
            return "the rule is disabled";
        }

        var engine = RuleEngine.FromRuleSet(set);
        var detections = new List<Detection>();
        long previousTime = RuleReader.TestBaseTime - 1_000_000L;
        for (int i = 0; i < test.Events.Count; i++)
        {
            FsEvent e;
            try
            {
                e = ParseTestEvent(test.Events[i].Text, i, previousTime);
                previousTime = e.TimeUnixNanos;
            }
            catch (Exception ex) when (ex is FormatException or JsonException)
            {
                return $"event {i + 1}: {ex.Message}";
            }

            engine.EvaluateInline(e, detections);
            engine.Analyze(e, detections);
        }

        Detection? hit = detections.Find(d => d.Rule == rule.Name);
        if (test.ExpectMatch && hit == null)
        {
            string others = detections.Count == 0 ? "nothing fired" : "fired: " + string.Join(", ", detections.Select(d => d.Rule).Distinct());
            return $"expected a match, got none ({others})";
        }

        if (!test.ExpectMatch && hit != null)
        {
            return $"expected no match, but it matched at evt.seq {hit.CompletingSeq}";
        }

        if (hit != null && test.ExpectActions is { } actions && hit.Actions != actions)
        {
            return $"expected actions [{string.Join(", ", ActionNames(actions))}], got [{string.Join(", ", ActionNames(hit.Actions))}]";
        }

        return null;
    }

    /// <summary>A test event; without evt.time it comes 1 ms after the previous one, without evt.seq it is numbered from 1.</summary>
    internal static FsEvent ParseTestEvent(string json, int index, long previousTime)
    {
        using var doc = JsonDocument.Parse(json);
        foreach (JsonProperty p in doc.RootElement.EnumerateObject())
        {
            // A test event names fields: a misspelt key would silently leave the field empty and the test meaningless.
            int bracket = p.Name.IndexOf('[', StringComparison.Ordinal);
            string name = bracket < 0 ? p.Name : p.Name[..bracket];
            string? arg = bracket < 0 ? null : p.Name[(bracket + 1)..].TrimEnd(']');
            if (p.Name is not ("evt.time" or "evt.seq") && EventFields.Resolve(name, arg, out _) is FieldLookup.Unknown or FieldLookup.BadArgument)
            {
                throw new FormatException($"unknown field '{p.Name}'");
            }
        }

        FsEvent e = FsEventJson.Parse(doc.RootElement);
        if (!doc.RootElement.TryGetProperty("evt.time", out _))
        {
            e.TimeUnixNanos = previousTime + 1_000_000L;
        }

        if (!doc.RootElement.TryGetProperty("evt.seq", out _))
        {
            e.Seq = (ulong)index + 1;
        }

        return e;
    }

    /// <summary>Replays a JSON-lines journal through the rules and prints each detection (one JSON object per line with <paramref name="json"/>).</summary>
    public static int Replay(IReadOnlyList<string> rulesFiles, string eventsJsonlPath, bool json, TextWriter output, bool includeBuiltIns = true)
    {
        RuleLoadResult result = RuleLoader.LoadFiles(rulesFiles, includeBuiltIns);
        if (!PrintErrors(result, output))
        {
            return LoadFailed;
        }

        IEnumerable<string> lines;
        try
        {
            lines = File.ReadLines(eventsJsonlPath);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            output.WriteLine($"{eventsJsonlPath}: {ex.Message}");
            return 1;
        }

        var engine = RuleEngine.FromRuleSet(result.RuleSet!);
        var detections = new List<Detection>();
        int lineNumber = 0, bad = 0, total = 0;
        foreach (string line in lines)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            FsEvent e;
            try
            {
                e = FsEventJson.Parse(line);
            }
            catch (Exception ex) when (ex is FormatException or JsonException)
            {
                output.WriteLine($"{eventsJsonlPath}:{lineNumber}: {ex.Message}");
                bad++;
                continue;
            }

            detections.Clear();
            engine.EvaluateInline(e, detections);
            engine.Analyze(e, detections);
            foreach (Detection d in detections)
            {
                total++;
                output.WriteLine(json ? DetectionJson(d) : DetectionText(d));
            }
        }

        if (!json)
        {
            output.WriteLine($"{total} detection(s), {bad} unreadable line(s)");
        }

        return bad == 0 ? 0 : 1;
    }

    /// <summary>Prints a rule's condition with macros and lists expanded.</summary>
    public static int Explain(string ruleName, IReadOnlyList<string> files, TextWriter output, bool includeBuiltIns = true)
    {
        RuleLoadResult result = RuleLoader.LoadFiles(files, includeBuiltIns);
        if (!PrintErrors(result, output))
        {
            return LoadFailed;
        }

        CompiledRule? rule = result.RuleSet!.Find(ruleName);
        if (rule == null)
        {
            SkippedRule? skipped = result.RuleSet.Skipped.FirstOrDefault(r => r.Name == ruleName);
            output.WriteLine(skipped != null ? $"rule '{ruleName}' is skipped: {skipped.Reason}" : $"no rule named '{ruleName}'");
            return 1;
        }

        output.WriteLine($"rule: {rule.Name}");
        output.WriteLine($"kind: {rule.Kind}{(rule.Inline ? " (inline)" : "")}, severity: {SeverityName(rule.Severity)}, actions: [{string.Join(", ", ActionNames(rule.Actions))}], mode: {ModeName(rule.Mode)}, enabled: {(rule.Enabled ? "true" : "false")}");
        output.WriteLine($"defined in: {rule.DefinedIn}");
        output.WriteLine("condition: " + rule.Explain());
        return 0;
    }

    /// <summary>Lists the built-in and loaded rules with severity, actions and mode, and the skipped ones with why.</summary>
    public static int List(IReadOnlyList<string> files, bool json, TextWriter output, bool includeBuiltIns = true)
    {
        RuleLoadResult result = RuleLoader.LoadFiles(files, includeBuiltIns);
        if (!PrintErrors(result, output))
        {
            return LoadFailed;
        }

        RuleSet set = result.RuleSet!;
        if (json)
        {
            using var stream = new MemoryStream();
            using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = false }))
            {
                w.WriteStartArray();
                foreach (CompiledRule r in set.Rules)
                {
                    w.WriteStartObject();
                    w.WriteString("rule", r.Name);
                    w.WriteString("severity", SeverityName(r.Severity));
                    w.WriteString("priority", r.Priority);
                    WriteActions(w, r.Actions);
                    w.WriteString("mode", ModeName(r.Mode));
                    w.WriteBoolean("enabled", r.Enabled);
                    w.WriteString("kind", r.Kind);
                    w.WriteBoolean("inline", r.Inline);
                    w.WriteString("source", r.DefinedIn);
                    w.WriteStartArray("tags");
                    foreach (string t in r.Tags)
                    {
                        w.WriteStringValue(t);
                    }

                    w.WriteEndArray();
                    w.WriteEndObject();
                }

                foreach (SkippedRule r in set.Skipped)
                {
                    w.WriteStartObject();
                    w.WriteString("rule", r.Name);
                    w.WriteString("skipped", r.Reason);
                    w.WriteBoolean("enabled", r.Enabled);
                    w.WriteString("source", r.Source);
                    w.WriteEndObject();
                }

                w.WriteEndArray();
            }

            output.WriteLine(System.Text.Encoding.UTF8.GetString(stream.ToArray()));
            return 0;
        }

        foreach (CompiledRule r in set.Rules)
        {
            output.WriteLine($"{r.Name,-48} {SeverityName(r.Severity),-8} {ModeName(r.Mode),-7} {(r.Enabled ? "enabled" : "disabled"),-8} {r.Kind,-9} [{string.Join(",", ActionNames(r.Actions))}] {r.DefinedIn}");
        }

        foreach (SkippedRule r in set.Skipped)
        {
            output.WriteLine($"{r.Name,-48} skipped: {r.Reason} {r.Source}:{r.Line}");
        }

        return 0;
    }

    private static bool PrintErrors(RuleLoadResult result, TextWriter output)
    {
        if (result.Succeeded)
        {
            return true;
        }

        foreach (RuleDiagnostic d in result.Diagnostics.Where(d => d.IsError))
        {
            output.WriteLine(d.ToString());
        }

        return false;
    }

    public static string SeverityName(Severity s) => s.ToString().ToLowerInvariant();

    public static string ModeName(RuleMode m) => m == RuleMode.Monitor ? "monitor" : "enforce";

    public static IEnumerable<string> ActionNames(ResponseAction a)
    {
        if (a.HasFlag(ResponseAction.Log)) yield return "log";
        if (a.HasFlag(ResponseAction.Alert)) yield return "alert";
        if (a.HasFlag(ResponseAction.Deny)) yield return "deny";
        if (a.HasFlag(ResponseAction.BlockProcess)) yield return "block-process";
        if (a.HasFlag(ResponseAction.Suspend)) yield return "suspend";
        if (a.HasFlag(ResponseAction.Kill)) yield return "kill";
    }

    private static void WriteActions(Utf8JsonWriter w, ResponseAction actions)
    {
        w.WriteStartArray("actions");
        foreach (string a in ActionNames(actions))
        {
            w.WriteStringValue(a);
        }

        w.WriteEndArray();
    }

    /// <summary>One detection as a JSON object: rule, severity, actions, mode, evt.seq and evt.time of the completing event, output.</summary>
    public static string DetectionJson(Detection d)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("rule", d.Rule);
            w.WriteString("severity", SeverityName(d.Severity));
            WriteActions(w, d.Actions);
            w.WriteString("mode", ModeName(d.Mode));
            w.WriteNumber("evt.seq", d.CompletingSeq);
            if (d.Evidence.Count > 0)
            {
                w.WriteString("evt.time", FsEventJson.FormatTime(d.Evidence[^1].TimeUnixNanos));
            }

            w.WriteString("output", d.Output);
            w.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static string DetectionText(Detection d) =>
        $"{(d.Evidence.Count > 0 ? FsEventJson.FormatTime(d.Evidence[^1].TimeUnixNanos) : "-")} {SeverityName(d.Severity)} {d.Rule} seq={d.CompletingSeq} actions=[{string.Join(",", ActionNames(d.Actions))}]{(d.Mode == RuleMode.Monitor ? " (monitor)" : "")}: {d.Output}";
}
