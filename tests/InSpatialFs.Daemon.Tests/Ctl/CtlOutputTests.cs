using InSpatialFs.Daemon.Cli;

namespace InSpatialFs.Daemon.Tests.Ctl;

/// <summary>What `ctl summary` and `ctl watch` make of the control files' content.</summary>
public sealed class CtlOutputTests
{
    private const string Status = "name: demo\nstate: running\nops: 804\ndenials: 2\nincidents: 3\n";

    private static string Incident(string id, string source, string response) =>
        $"{{\"type\":\"incident\",\"id\":\"{id}\",\"source\":\"{source}\",\"severity\":\"high\",\"pid\":7,\"process\":\"ln\",\"uid\":0,\"response\":\"{response}\",\"status\":\"open\",\"evidence\":[]}}";

    [Test]
    public void Summary_counts_incidents_by_rule_with_every_response_taken()
    {
        string incidents = string.Join('\n',
            Incident("inc-000001", "Symlink to sensitive path", "alert"),
            Incident("inc-000002", "forbidden:/etc/shadow", "deny"),
            Incident("inc-000003", "Symlink to sensitive path", "block-process")) + "\n";

        (long ops, long denials, long total, List<CtlCommand.SummaryRow> rows) = CtlCommand.Summarize(Status, incidents);

        Assert.That((ops, denials, total), Is.EqualTo((804L, 2L, 3L)));
        Assert.That(rows[0].Rule, Is.EqualTo("Symlink to sensitive path"));
        Assert.That(rows[0].Count, Is.EqualTo(2));
        Assert.That(rows[0].Responses, Is.EqualTo(new[] { "alert", "block-process" }));
        Assert.That(rows[1], Has.Property("Rule").EqualTo("forbidden:/etc/shadow").And.Property("Count").EqualTo(1));
    }

    [Test]
    public void Summary_skips_a_torn_incident_line_but_keeps_the_status_total()
    {
        (_, _, long total, List<CtlCommand.SummaryRow> rows) = CtlCommand.Summarize(Status, "{\"type\":\"incid\n");
        Assert.That(total, Is.EqualTo(3));
        Assert.That(rows, Is.Empty);
    }

    [TestCase("{\"evt.op\":\"lookup\",\"evt.decision\":\"allow\"}", false)]
    [TestCase("{\"evt.op\":\"read\",\"evt.decision\":\"allow\"}", false)]
    [TestCase("{\"evt.op\":\"lookup\",\"evt.decision\":\"deny\"}", true)]
    [TestCase("{\"evt.op\":\"rename\",\"evt.decision\":\"allow\"}", true)]
    [TestCase("{\"evt.op\":\"create\",\"evt.decision\":\"allow_direct\"}", true)]
    [TestCase("{\"evt.op\":\"open\",\"evt.decision\":\"allow\",\"evt.is_exec\":true}", true)]
    public void Watch_shows_denials_changes_and_executions_only(string json, bool notable)
    {
        Assert.That(CtlCommand.IsNotable(json), Is.EqualTo(notable));
    }

    [Test]
    public void Incident_line_names_rule_process_and_response()
    {
        using var doc = System.Text.Json.JsonDocument.Parse(Incident("inc-000009", "Mass rename by one process", "alert"));
        string line = CtlCommand.HumanIncident(doc.RootElement);
        Assert.That(line, Does.Contain("inc-000009").And.Contain("Mass rename by one process").And.Contain("ln:7").And.Contain("response: alert"));
    }
}
