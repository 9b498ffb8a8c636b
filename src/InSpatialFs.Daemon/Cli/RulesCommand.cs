using System.CommandLine;
using InSpatialFs.Security.Rules;

namespace InSpatialFs.Daemon.Cli;

/// <summary>
/// `inspatialfs rules validate|test|replay|explain|list`: the rule author's tools (issue 5). The work is done by
/// <see cref="RuleTooling"/>; this file only maps the command line onto it. The built-in rules are always loaded
/// first, as in the daemon, so the files given may override them. Exit codes: 0 success, 1 failure (a rule file
/// that does not load, a failing test, an unreadable event line, an unknown rule), 2 usage error (parser).
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
            "warning as FILE:LINE:COLUMN: CODE message. Exit 0 when they load, 1 when any error is found.")
        { files };
        command.SetAction(p => RuleTooling.Validate(p.GetValue(files) ?? [], Console.Out));
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
            "and print PASS/FAIL per test. Exit 0 when all pass, 1 otherwise.")
        { files };
        command.SetAction(p => RuleTooling.Test(p.GetValue(files) ?? [], Console.Out));
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
            "what the live engine would have detected) and print each detection. Exit 1 when a rule file fails to load " +
            "or an event line cannot be read.")
        { rules, events, json };
        command.SetAction(p => RuleTooling.Replay(p.GetValue(rules) ?? [], p.GetValue(events)!, p.GetValue(json), Console.Out));
        return command;
    }

    private static Command Explain()
    {
        var rule = new Argument<string>("RULE") { Description = "The rule's name (quote it: names contain spaces)." };
        var rules = RulesOption("Rule file loaded on top of the built-in rules (to explain its rules or overrides); repeatable.");
        var command = new Command(
            "explain",
            "Print a rule's kind, severity, actions, mode and its condition with every macro and list expanded. Exit 1 " +
            "when no rule has that name.")
        { rule, rules };
        command.SetAction(p => RuleTooling.Explain(p.GetValue(rule)!, p.GetValue(rules) ?? [], Console.Out));
        return command;
    }

    private static Command List()
    {
        var rules = RulesOption("Rule file loaded on top of the built-in rules; repeatable.");
        var json = new Option<bool>("--json") { Description = "A JSON array of {rule, severity, actions, mode, enabled, kind, inline, source, tags}." };
        var command = new Command("list", "List the built-in and loaded rules with severity, mode, enabled state, kind, actions and source.") { rules, json };
        command.SetAction(p => RuleTooling.List(p.GetValue(rules) ?? [], p.GetValue(json), Console.Out));
        return command;
    }

    private static Option<string[]> RulesOption(string description) =>
        new("--rules") { Description = description, AllowMultipleArgumentsPerToken = true };
}
