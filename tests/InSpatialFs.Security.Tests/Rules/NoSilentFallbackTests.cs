using InSpatialFs.Security.Events;
using InSpatialFs.Security.Rules;
using static InSpatialFs.Security.Tests.Rules.RuleTestKit;

namespace InSpatialFs.Security.Tests.Rules;

/// <summary>
/// Every place the rule language turns text into an operator (or a transformer) refuses what it does not know, with
/// a coded error, instead of falling back to something else (the old complaint: an unknown operator became glob).
/// Each case sits next to a positive control that loads and matches, so a case cannot pass because loading broke.
/// </summary>
public sealed class NoSilentFallbackTests
{
    private static IReadOnlyList<RuleDiagnostic> ConditionErrors(string condition) => Errors("- rule: r\n  condition: " + Quote(condition) + "\n");

    [TestCase("fs.path ~= /x", "fs.path = /x")]               // a run of operator characters none of them starts
    [TestCase("fs.path like /x", "fs.path glob /x")]          // a word that is no operator
    [TestCase("fs.path 5", "fs.path = 5")]                    // no operator at all
    [TestCase("fs.path globb /x*", "fs.path glob /x*")]       // near-miss spelling
    public void A_condition_with_an_unknown_operator_does_not_load(string bad, string good)
    {
        Assert.That(ConditionErrors(good), Is.Empty, "positive control");
        Assert.That(ConditionErrors(bad).Select(e => e.Code), Does.Contain(RuleDiagnosticCodes.BadOperator));
    }

    [TestCase("[=, like]", "[=, startswith]")]
    [TestCase("[=, Startswith]", "[=, startswith]")]
    public void An_exception_tuple_with_an_unknown_comp_does_not_load(string badComps, string goodComps)
    {
        static string Yaml(string comps) => $"""
            - rule: r
              condition: evt.op = open
              exceptions:
                - name: known
                  fields: [proc.name, fs.path]
                  comps: {comps}
                  values:
                    - [sshd, /etc/ssh]
            """;
        Assert.That(Errors(Yaml(goodComps)), Is.Empty, "positive control");
        Assert.That(Errors(Yaml(badComps)).Select(e => e.Code), Does.Contain(RuleDiagnosticCodes.BadOperator));
    }

    [Test]
    public void A_single_field_exception_with_a_comp_other_than_a_list_operator_does_not_load()
    {
        static string Yaml(string comp) => $"""
            - rule: r
              condition: evt.op = open
              exceptions:
                - name: single
                  fields: proc.name
                  comps: {comp}
                  values: [backup]
            """;
        Assert.That(Errors(Yaml("in")), Is.Empty, "positive control");
        Assert.That(Errors(Yaml("glob")).Select(e => e.Code), Does.Contain(RuleDiagnosticCodes.BadOperator));
    }

    [TestCase("glob")]
    [TestCase("iglob")]
    [TestCase("regex")]
    [TestCase("bcontains")]
    [TestCase("bstartswith")]
    public void An_operator_that_needs_a_literal_does_not_load_against_another_field(string op)
    {
        // Before, these loaded and compared as "false" on every event.
        Assert.That(ConditionErrors($"fd.name {op} val(fd.filename)").Select(e => e.Code), Does.Contain(RuleDiagnosticCodes.BadOperator));
        Assert.That(Matches("fd.name endswith val(fd.filename)", Ev(FsOp.Open, "/etc/shadow")), Is.True, "positive control: a text test two fields can do");
    }

    [Test]
    public void A_sequence_step_may_not_glob_against_a_captured_field()
    {
        static string Yaml(string op) => $"""
            - rule: seq
              condition: evt.op = open
              sequence:
                by: [container.id]
                maxspan: 60s
                steps:
                  - {"{"}name: a, condition: evt.op = create{"}"}
                  - {"{"}name: b, condition: evt.op = open and fs.path {op} $a.fs.path{"}"}
            """;
        Assert.That(Errors(Yaml("startswith")), Is.Empty, "positive control");
        Assert.That(Errors(Yaml("bcontains")).Select(e => e.Code), Does.Contain(RuleDiagnosticCodes.BadOperator));
    }

    [Test]
    public void Every_operator_has_its_own_name_and_the_name_parses_back()
    {
        foreach (CmpOp op in Enum.GetValues<CmpOp>())
        {
            Assert.That(CmpOps.TryParse(op.Name(), out CmpOp back) && back == op, Is.True, op.ToString());
        }

        Assert.That(() => ((CmpOp)200).Name(), Throws.TypeOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public void An_unknown_transformer_is_an_error_not_base64()
    {
        Assert.That(EventFields.Resolve("fd.name", null, out EventField? field), Is.EqualTo(FieldLookup.Found));
        Assert.That(FieldTransformers.Apply("b64", field!, out string? ok), Is.Not.Null, "positive control: " + ok);
        Assert.That(FieldTransformers.Apply("rot13", field!, out string? error), Is.Null);
        Assert.That(error, Does.Contain("unknown transformer 'rot13'"));
    }
}
