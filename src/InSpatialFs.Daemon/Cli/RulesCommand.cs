using System.CommandLine;
using InSpatialFs.Security.Rules;

namespace InSpatialFs.Daemon.Cli;

/// <summary>
/// `inspatialfs rules validate|test|replay|explain|list`: the rule author's tools (issue 5). The work is done by
/// <see cref="RuleTooling"/>; this file only maps the command line onto it. The built-in rules are loaded first, as
/// in the daemon, so the files given may override them; `--no-builtins` loads only the files given (Falco's -r).
/// Exit codes: 0 success, 1 failure (a failing test, an unreadable event line, an unknown rule), 2 rule files that
/// do not load (each error as FILE:LINE:COLUMN) or a usage error.
/// </summary>
internal static class RulesCommand
{
    public static Command Create()
    {
        var command = new Command("rules", "Rule tooling: validate, test, replay, explain and list behavioural rules (YAML).");
        command.Subcommands.Add(Validate());
        command.Subcommands.Add(Test());
        command.Subcommands.Add(Replay());
        command.Subcommands.Add(Explain());
        command.Subcommands.Add(List());
        return command;
    }

    private static Option<bool> NoBuiltIns() => new("--no-builtins")
    {
        Description = "Load only the files given, without the built-in rules (Falco's -r): for Falco rule files on their own.",
    };

    private static Command Validate()
    {
        var files = new Argument<string[]>("FILE")
        {
            Description = "Rule files (YAML) to check, loaded in order on top of the built-in rules.",
            Arity = ArgumentArity.OneOrMore,
        };
        var command = new Command(
            "validate",
            "Load the files fully (parse, expand lists and macros, type-check conditions) and print every error and " +
            "warning as FILE:LINE:COLUMN: CODE message; rules that need fields or events a filesystem cannot have are " +
            "skipped with an R023 warning naming what they need. Exit 0 when they load, 2 when any error is found.")
        { files };
        var noBuiltIns = NoBuiltIns();
        command.Options.Add(noBuiltIns);
        command.SetAction(p => RuleTooling.Validate(p.GetValue(files) ?? [], Console.Out, !p.GetValue(noBuiltIns)));
        return command;
    }

    private static Command Test()
    {
        var files = new Argument<string[]>("FILE")
        {
            Description = "Rule files whose rules' `tests:` are run; none runs the tests shipped with the built-in rules.",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var command = new Command(
            "test",
            "Run each rule's embedded tests (sample events with the expected match and actions) on fresh engine state " +
            "and print PASS/FAIL per test. Exit 0 when all pass, 1 when one fails, 2 when the files do not load.")
        { files };
        var noBuiltIns = NoBuiltIns();
        command.Options.Add(noBuiltIns);
        command.SetAction(p => RuleTooling.Test(p.GetValue(files) ?? [], Console.Out, !p.GetValue(noBuiltIns)));
        return command;
    }

    private static Command Replay()
    {
        var rules = RulesOption("Rule file to use on top of the built-in rules; repeatable (FILE... accepted after one --rules).");
        var events = new Option<string>("--events")
        {
            Description = "Recorded events, one JSON object per line (the journal / `ctl events --json` format).",
            Required = true,
        };
        var json = new Option<bool>("--json") { Description = "One JSON object per detection: rule, severity, actions, mode, evt.seq, evt.time, output." };
        var command = new Command(
            "replay",
            "Replay a recorded event journal through the rules (windows and sequences use evt.time, so the result is " +
            "what the live engine would have detected) and print each detection. Events may use our field names or " +
            "Falco's (fd.name, evt.type, evt.res, proc.cmdline...). Exit 1 when an event line cannot be read, 2 when a " +
            "rule file fails to load.")
        { rules, events, json };
        var noBuiltIns = NoBuiltIns();
        command.Options.Add(noBuiltIns);
        command.SetAction(p => RuleTooling.Replay(p.GetValue(rules) ?? [], p.GetValue(events)!, p.GetValue(json), Console.Out, !p.GetValue(noBuiltIns)));
        return command;
    }

    private static Command Explain()
    {
        var rule = new Argument<string>("RULE") { Description = "The rule's name (quote it: names contain spaces)." };
        var rules = RulesOption("Rule file loaded on top of the built-in rules (to explain its rules or overrides); repeatable.");
        var command = new Command(
            "explain",
            "Print a rule's kind, severity, actions, mode and its condition with every macro and list expanded. Exit 1 " +
            "when no rule has that name (or it is skipped: the reason is printed), 2 when the files do not load.")
        { rule, rules };
        var noBuiltIns = NoBuiltIns();
        command.Options.Add(noBuiltIns);
        command.SetAction(p => RuleTooling.Explain(p.GetValue(rule)!, p.GetValue(rules) ?? [], Console.Out, !p.GetValue(noBuiltIns)));
        return command;
    }

    private static Command List()
    {
        var rules = RulesOption("Rule file loaded on top of the built-in rules; repeatable.");
        var json = new Option<bool>("--json") { Description = "A JSON array of {rule, severity, priority, actions, mode, enabled, kind, inline, source, tags}, then {rule, skipped, enabled, source} per skipped rule." };
        var command = new Command(
            "list",
            "List the built-in and loaded rules with severity, mode, enabled state, kind, actions and source, then the " +
            "skipped ones as 'skipped: needs fd.sport' (Falco rules on fields or events a filesystem cannot have). Exit 2 " +
            "when the files do not load.")
        { rules, json };
        var noBuiltIns = NoBuiltIns();
        command.Options.Add(noBuiltIns);
        command.SetAction(p => RuleTooling.List(p.GetValue(rules) ?? [], p.GetValue(json), Console.Out, !p.GetValue(noBuiltIns)));
        return command;
    }

    private static Option<string[]> RulesOption(string description) =>
        new("--rules") { Description = description, AllowMultipleArgumentsPerToken = true };
}
