using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using InSpatialFs.IntegrationTests.Security;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Control;

/// <summary>
/// Issue 17 through a real mounted daemon: every `ctl ... --json` is one JSON document with typed values, commands
/// without data offer no --json, a refused command says why on the terminal and exits 1, and the metrics (control file
/// and the metrics_listen HTTP endpoint) parse with the official Prometheus client parser and follow its conventions.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class OperatorOutputTests
{
    private const string Rule = "Marker created";
    private string _work = "";
    private string _mount = "";
    private string _control = "";
    private int _port;
    private DaemonProcess? _daemon;

    [OneTimeSetUp]
    public void MountWithConfig()
    {
        DaemonProcess.RequireMountable();
        _work = Path.Combine("/var/tmp", "inspatialfs-ops-" + Guid.NewGuid().ToString("N")[..8]);
        _mount = Path.Combine(_work, "mnt");
        _control = Path.Combine(_work, "control");
        Directory.CreateDirectory(Path.Combine(_work, "source", "secret"));
        Directory.CreateDirectory(Path.Combine(_work, "source", "markers"));
        File.WriteAllText(Path.Combine(_work, "source", "secret", "key"), "k\n");
        File.WriteAllText(Path.Combine(_work, "rules.yaml"), $"""
            - rule: {Rule}
              desc: a file is created below /markers
              condition: evt.op = create and fs.path startswith /markers/
              output: "marker %fs.path"
              severity: warning
              actions: [alert]
            """);
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        _port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        string config = Path.Combine(_work, "ops.yaml");
        File.WriteAllText(config, $$"""
            name: opsjson
            mountpoint: {{_mount}}
            control: {{_control}}
            state_dir: {{_work}}/state
            mounts:
              - { path: /, source: {{_work}}/source }
              - { path: /tmp, memory: { size: 8MiB } }
            paths: { forbidden: ["/secret/**"] }
            resources: { disk: 64MiB }
            rules: { files: [rules.yaml] }
            outputs: { file: { path: {{_work}}/alerts.jsonl } }
            metrics_listen: 127.0.0.1:{{_port}}
            """);
        _daemon = DaemonProcess.Start(_mount, ["--config", config], appendMountPoint: false);
        ControlFiles.WaitUntilServing(_control, _daemon);

        // Traffic: a create the rule matches, a forbidden read (a denial and an incident), plain lookups.
        Shell.Check($"touch '{_mount}/markers/marker-1' && ls -la '{_mount}' >/dev/null && ! cat '{_mount}/secret/key' 2>/dev/null");
        Assert.That(ControlFiles.Eventually(() => Ctl("rules --json").StdOut.Contains("\"hits\":1", StringComparison.Ordinal), TimeSpan.FromSeconds(20)), Is.True,
            "the rule's hit is counted: " + Ctl("rules"));
        ControlFiles.WaitForIncident(_control, i => i["source"]?.ToString() == "forbidden:/secret/**", "for the forbidden read");
    }

    [OneTimeTearDown]
    public void Cleanup()
    {
        _daemon?.Dispose();
        if (_work.Length > 0)
        {
            Mounts.ForceUnmount(_control);
            Mounts.ForceUnmount(_mount);
            Shell.Run($"rm -rf '{_work}'");
        }
    }

    private ShellResult Ctl(string arguments) => Shell.Run($"'{DaemonProcess.Binary}' ctl '{_control}' {arguments}", TimeSpan.FromSeconds(60));

    private JsonElement CtlJson(string command)
    {
        ShellResult r = Ctl(command + " --json");
        Assert.That(r.ExitCode, Is.Zero, r.ToString());
        using JsonDocument doc = JsonDocument.Parse(r.StdOut);
        return doc.RootElement.Clone();
    }

    [Test]
    public void Status_json_has_numbers_as_numbers_and_uptime_in_seconds()
    {
        JsonElement s = CtlJson("status");
        Assert.That(s.GetProperty("name").GetString(), Is.EqualTo("opsjson"));
        Assert.That(s.GetProperty("ops").ValueKind, Is.EqualTo(JsonValueKind.Number));
        Assert.That(s.GetProperty("ops").GetInt64(), Is.GreaterThan(0));
        Assert.That(s.GetProperty("denials").GetInt64(), Is.GreaterThanOrEqualTo(1), "the forbidden read");
        Assert.That(s.GetProperty("uptime_seconds").ValueKind, Is.EqualTo(JsonValueKind.Number));
        Assert.That(s.TryGetProperty("uptime", out _), Is.False, "no \"82s\" string beside it");
        JsonElement[] mounts = [.. s.GetProperty("mounts").EnumerateArray()];
        Assert.That(mounts.Select(m => m.GetProperty("path").GetString()), Is.EqualTo(new[] { "/", "/tmp" }));
        Assert.That(mounts[0].GetProperty("readonly").ValueKind, Is.EqualTo(JsonValueKind.False));
        JsonElement quota = s.GetProperty("quotas").EnumerateArray().First(q => q.GetProperty("mount").GetString() == "/");
        Assert.That(quota.GetProperty("byte_limit").GetInt64(), Is.EqualTo(64L << 20));
        JsonElement output = s.GetProperty("outputs").EnumerateArray().Single();
        Assert.That(output.GetProperty("channel").GetString(), Is.EqualTo("file"));
        Assert.That(output.GetProperty("delivered").ValueKind, Is.EqualTo(JsonValueKind.Number));
        Assert.That(s.GetProperty("warnings").ValueKind, Is.EqualTo(JsonValueKind.Array));
    }

    [Test]
    public void Mounts_stats_rules_policy_metrics_and_incidents_json_are_json_documents_with_typed_values()
    {
        JsonElement mounts = CtlJson("mounts");
        Assert.That(mounts[0].GetProperty("source").GetString(), Is.EqualTo(_work + "/source"));
        Assert.That(mounts[1].GetProperty("kind").GetString(), Does.Contain("emory"));

        JsonElement stats = CtlJson("stats");
        JsonElement lookup = stats.EnumerateArray().First(o => o.GetProperty("op").GetString() == "lookup");
        Assert.That(lookup.GetProperty("count").GetInt64(), Is.GreaterThan(0));
        Assert.That(lookup.GetProperty("p99_seconds").ValueKind, Is.EqualTo(JsonValueKind.Number));
        Assert.That(lookup.GetProperty("events").GetInt64(), Is.LessThan(lookup.GetProperty("count").GetInt64()), "allowed lookups are decided, not events");
        JsonElement create = stats.EnumerateArray().First(o => o.GetProperty("op").GetString() == "create");
        Assert.That(create.GetProperty("events").GetInt64(), Is.EqualTo(create.GetProperty("count").GetInt64()), "every create is an event");

        JsonElement rules = CtlJson("rules");
        JsonElement marker = rules.GetProperty("rules").EnumerateArray().Single(r => r.GetProperty("rule").GetString() == Rule);
        Assert.That(marker.GetProperty("hits").GetInt64(), Is.EqualTo(1));
        Assert.That(marker.GetProperty("enabled").ValueKind, Is.EqualTo(JsonValueKind.True));
        Assert.That(rules.GetProperty("rule_count").GetInt64(), Is.EqualTo(rules.GetProperty("rules").GetArrayLength()));

        JsonElement policy = CtlJson("policy");
        Assert.That(policy.GetProperty("isolation").GetString(), Is.EqualTo("standard"));
        Assert.That(policy.GetProperty("paths").GetProperty("forbidden")[0].GetString(), Is.EqualTo("/secret/**"));
        Assert.That(policy.GetProperty("controls").GetProperty("refuse_setuid").ValueKind, Is.AnyOf(JsonValueKind.True, JsonValueKind.False));
        Assert.That(policy.GetProperty("resources").GetProperty("disk").GetInt64(), Is.EqualTo(64L << 20));

        JsonElement metrics = CtlJson("metrics");
        JsonElement operations = metrics.EnumerateArray().Single(f => f.GetProperty("name").GetString() == "inspatialfs_operations_total");
        Assert.That(operations.GetProperty("type").GetString(), Is.EqualTo("counter"));
        Assert.That(operations.GetProperty("samples")[0].GetProperty("value").ValueKind, Is.EqualTo(JsonValueKind.Number));

        JsonElement incidents = CtlJson("incidents");
        Assert.That(incidents.ValueKind, Is.EqualTo(JsonValueKind.Array));
        Assert.That(incidents.EnumerateArray().Any(i => i.GetProperty("source").GetString() == "forbidden:/secret/**"), Is.True);
    }

    [Test]
    public void Policy_file_is_yaml_with_the_config_s_key_names()
    {
        string policy = File.ReadAllText(Path.Combine(_control, "policy"));
        var yaml = new YamlDotNet.RepresentationModel.YamlStream();
        yaml.Load(new StringReader(policy));
        var root = (YamlDotNet.RepresentationModel.YamlMappingNode)yaml.Documents[0].RootNode;
        Assert.That(root.Children.Keys.Select(k => k.ToString()), Is.SupersetOf(new[] { "isolation", "paths", "controls", "exec", "response", "resources", "warnings" }));
        Assert.That(policy, Does.Not.Contain("EffectiveControls {").And.Not.Contain("effective: "), "no C# record text");
    }

    [TestCase("suspend")]
    [TestCase("resume")]
    [TestCase("reload")]
    public void Commands_without_data_do_not_offer_json(string verb)
    {
        ShellResult help = Shell.Run($"'{DaemonProcess.Binary}' ctl x {verb} --help");
        Assert.That(help.StdOut, Does.Not.Contain("--json"), help.ToString());
        ShellResult withJson = Ctl(verb + " --json");
        Assert.That(withJson.ExitCode, Is.EqualTo(2), "--json is refused as an unknown option: " + withJson);
        Assert.That(Shell.Run($"'{DaemonProcess.Binary}' ctl x status --help").StdOut, Does.Contain("--json"), "positive control");
    }

    [Test]
    public void Isolation_is_not_advertised_and_not_accepted()
    {
        ShellResult help = Shell.Run($"'{DaemonProcess.Binary}' ctl --help");
        Assert.That(help.StdOut, Does.Contain("suspend"), "positive control: the command list is there");
        Assert.That(help.StdOut, Does.Not.Match(@"(?m)^\s+isolation\b"));
        Assert.That(Ctl("isolation maximum").ExitCode, Is.EqualTo(2));
    }

    [Test]
    public void A_refused_command_prints_the_daemon_s_reason_and_exits_1()
    {
        ShellResult ack = Ctl("ack no-such-incident");
        Assert.That(ack.ExitCode, Is.EqualTo(1), ack.ToString());
        Assert.That(ack.StdErr, Does.Contain("'ack no-such-incident' refused: 1:1: no incident no-such-incident"));

        ShellResult suspend = Ctl("suspend");
        Assert.That(suspend.ExitCode, Is.EqualTo(1), "no container and no cgroup: nothing to freeze: " + suspend);
        Assert.That(suspend.StdErr, Does.Contain("refused: 1:1: suspend refused"));
        Assert.That(suspend.StdErr, Does.Not.Contain("the daemon log says why"), "the reason itself is on the terminal");

        ShellResult resume = Ctl("resume");
        Assert.That(resume.ExitCode, Is.Zero, "positive control: " + resume);
        Assert.That(resume.StdOut.Trim(), Is.EqualTo("resume: ok (resumed)"));
    }

    private static string Python()
    {
        foreach (string python in new[] { "/usr/bin/python3", "python3" })
        {
            if (Shell.Run($"{python} -c 'import prometheus_client.parser'").ExitCode == 0) return python;
        }

        Assert.Fail("no python3 with prometheus_client (scripts/ensure-deps.sh installs python3-prometheus-client)");
        return "";
    }

    private sealed record Sample(string Name, Dictionary<string, string> Labels, double Value);

    private sealed record Family(string Name, string Type, List<Sample> Samples);

    private static readonly JsonSerializerOptions CaseInsensitive = new() { PropertyNameCaseInsensitive = true };

    /// <summary>The exposition as prometheus_client.parser.text_string_to_metric_families reads it.</summary>
    private List<Family> Parse(string exposition)
    {
        string file = Path.Combine(_work, "exposition-" + Guid.NewGuid().ToString("N")[..6] + ".txt");
        File.WriteAllText(file, exposition);
        string script = Path.Combine(_work, "parse.py");
        File.WriteAllText(script, """
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            out = []
            for f in text_string_to_metric_families(open(sys.argv[1]).read()):
                out.append({"name": f.name, "type": f.type, "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]})
            print(json.dumps(out))
            """);
        ShellResult r = Shell.Run($"{Python()} '{script}' '{file}'");
        Assert.That(r.ExitCode, Is.Zero, "the Prometheus parser refused the exposition: " + r);
        return JsonSerializer.Deserialize<List<Family>>(r.StdOut, CaseInsensitive)!;
    }

    private string Scrape(string path, out HttpStatusCode status, out string? contentType)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using HttpResponseMessage response = http.GetAsync(new Uri($"http://127.0.0.1:{_port}{path}")).GetAwaiter().GetResult();
        status = response.StatusCode;
        contentType = response.Content.Headers.ContentType?.ToString();
        return response.Content.ReadAsStringAsync().GetAwaiter().GetResult();
    }

    [Test]
    public void Metrics_listen_serves_the_exposition_to_a_scraper_and_nothing_else()
    {
        string body = Scrape("/metrics", out HttpStatusCode status, out string? type);
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(type, Does.StartWith("text/plain").And.Contain("version=0.0.4"));
        Assert.That(body, Does.Contain("inspatialfs_operations_total{name=\"opsjson\",op=\"lookup\"}"));
        Scrape("/", out HttpStatusCode other, out _);
        Assert.That(other, Is.EqualTo(HttpStatusCode.NotFound));
    }

    [Test]
    public void Clients_that_connect_and_send_nothing_hold_at_most_a_few_descriptors_of_the_daemon()
    {
        int before = Directory.GetFiles($"/proc/{_daemon!.Pid}/fd").Length;
        var idle = new List<System.Net.Sockets.Socket>();
        try
        {
            for (int i = 0; i < 200; i++)
            {
                var s = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
                idle.Add(s);
                // Connects complete in the kernel's backlog even when the daemon does not accept; past the backlog they
                // wait, which a non-blocking connect does not.
                s.Blocking = false;
                try
                {
                    s.Connect(IPAddress.Loopback, _port);
                }
                catch (System.Net.Sockets.SocketException)
                {
                }
            }

            Thread.Sleep(1000);
            int held = Directory.GetFiles($"/proc/{_daemon.Pid}/fd").Length - before;
            Assert.That(held, Is.LessThanOrEqualTo(MetricsConnectionsServedAtOnce + 4), "idle connections the daemon took in");
        }
        finally
        {
            foreach (System.Net.Sockets.Socket s in idle) s.Dispose();
        }

        // Once they are gone, a scraper is served again.
        string body = "";
        Assert.That(ControlFiles.Eventually(() => (body = TryScrape()) .Contains("inspatialfs_operations_total", StringComparison.Ordinal), TimeSpan.FromSeconds(15)), Is.True, body);
    }

    /// <summary>The daemon's MetricsListener.MaxConnections.</summary>
    private const int MetricsConnectionsServedAtOnce = 16;

    private string TryScrape()
    {
        try
        {
            return Scrape("/metrics", out _, out _);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return e.Message;
        }
    }

    [Test]
    public void Metrics_parse_with_the_prometheus_client_and_follow_its_conventions()
    {
        Shell.Check($"ls -la '{_mount}' '{_mount}/markers' > /dev/null; touch '{_mount}/tmp/t1'");
        foreach (string exposition in new[] { File.ReadAllText(Path.Combine(_control, "metrics")), Scrape("/metrics", out _, out _) })
        {
            List<Family> families = Parse(exposition);
            Assert.That(families, Has.Count.GreaterThan(10));
            Sample[] all = [.. families.SelectMany(f => f.Samples)];
            Assert.That(all.Where(s => s.Labels.ContainsKey("instance")), Is.Empty, "instance is Prometheus's own label");
            Assert.That(all.Where(s => s.Name.StartsWith("inspatialfs_", StringComparison.Ordinal)).All(s => s.Labels.GetValueOrDefault("name") == "opsjson"), Is.True);
            foreach (Family counter in families.Where(f => f.Type == "counter"))
            {
                Assert.That(counter.Samples.All(s => s.Name.EndsWith("_total", StringComparison.Ordinal)), Is.True, counter.Name + " is a counter without _total");
            }

            Assert.That(families.Where(f => f.Type == "histogram").Select(f => f.Name), Has.All.EndsWith("_seconds"), "durations in seconds, named so");

            // Per-op event counts agree with the latency histogram's counts, op by op.
            Dictionary<string, double> events = families.Single(f => f.Name == "inspatialfs_events").Samples.ToDictionary(s => s.Labels["op"], s => s.Value);
            Dictionary<string, double> counts = families.Single(f => f.Name == "inspatialfs_event_duration_seconds").Samples
                .Where(s => s.Name.EndsWith("_count", StringComparison.Ordinal)).ToDictionary(s => s.Labels["op"], s => s.Value);
            Assert.That(events, Is.Not.Empty);
            Assert.That(counts, Is.EqualTo(events));
            Assert.That(events.GetValueOrDefault("create"), Is.GreaterThanOrEqualTo(1), "the creates are events");

            Sample hits = families.Single(f => f.Name == "inspatialfs_rule_hits").Samples.Single(s => s.Labels["rule"] == Rule);
            Assert.That(hits.Value, Is.EqualTo(1));
            Sample dropped = families.Single(f => f.Name == "inspatialfs_alerts_dropped").Samples.Single();
            Assert.That(dropped.Labels["channel"], Is.EqualTo("file"));
            Assert.That(dropped.Value, Is.Zero);
            Assert.That(families.Single(f => f.Name == "process_resident_memory_bytes").Samples.Single().Value, Is.GreaterThan(1 << 20));
            Assert.That(families.Single(f => f.Name == "inspatialfs_quota_used_bytes").Type, Is.EqualTo("gauge"));
        }
    }

    [Test]
    public void A_metrics_listen_address_in_use_refuses_the_start()
    {
        string config = Path.Combine(_work, "taken.yaml");
        Directory.CreateDirectory(Path.Combine(_work, "source2"));
        File.WriteAllText(config, $"mountpoint: {_work}/mnt2\ncontrol: {_work}/control2\nstate_dir: {_work}/state2\nmounts: [{{ path: /, source: {_work}/source2 }}]\nmetrics_listen: 127.0.0.1:{_port.ToString(CultureInfo.InvariantCulture)}\n");
        ShellResult r = Shell.Run($"timeout 60 '{DaemonProcess.Binary}' mount --config '{config}'", TimeSpan.FromSeconds(90));
        Assert.That(r.ExitCode, Is.EqualTo(1), r.ToString());
        Assert.That(r.Both, Does.Contain("ddress already in use").Or.Contain("in use"));
        Assert.That(Mounts.IsFuse(_work + "/mnt2"), Is.False, "nothing was mounted");
    }
}
