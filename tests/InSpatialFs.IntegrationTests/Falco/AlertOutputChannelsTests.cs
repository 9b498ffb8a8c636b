using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using InSpatialFs.TestKit.Processes;
using OpenTelemetry.Proto.Common.V1;
using OpenTelemetry.Proto.Logs.V1;

namespace InSpatialFs.IntegrationTests.Falco;

/// <summary>
/// Each alert output channel against a real receiver: a Unix-socket syslog reader (RFC 5424), a local HTTP server
/// checking falcosidekick's payload, an OTLP/HTTP receiver decoding with the official opentelemetry-proto
/// definitions, and the rotated file. Then the receivers are killed mid-run: the daemon keeps serving, the alerts
/// past the small queue are dropped and counted, and delivery resumes when the receivers come back.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class AlertOutputChannelsTests
{
    private const string Rule = """
        - rule: Alert file opened
          desc: a file below /alerts is opened (test rule)
          condition: evt.type = openat and fd.directory = /alerts and not evt.is_open_write
          output: Alert file opened | file=%fd.name process=%proc.name command=%proc.cmdline
          priority: WARNING
          tags: [test, filesystem]
        """;

    private string _work = "";
    private string _mount = "";
    private string _control = "";
    private int _httpPort, _otlpPort;
    private DaemonProcess? _daemon;

    /// <summary>The receivers, replaced when a test "kills" and restarts them (all disposed at the end).</summary>
    private sealed class Receivers
    {
        public SyslogReceiver? Syslog;
        public HttpReceiver? Http;
        public HttpReceiver? Otlp;
    }

    private readonly Receivers _r = new();

    private string SyslogPath => Path.Combine(_work, "log.sock");

    private string AlertFile => Path.Combine(_work, "alerts", "alerts.jsonl");

    [OneTimeSetUp]
    public void Start()
    {
        DaemonProcess.RequireMountable();
        _work = Path.Combine("/var/tmp", "inspatialfs-out-" + Guid.NewGuid().ToString("N")[..8]);
        _mount = Path.Combine(_work, "mnt");
        _control = Path.Combine(_work, "control");
        Directory.CreateDirectory(_work);
        File.WriteAllText(Path.Combine(_work, "alert.yaml"), Rule);
        _httpPort = HttpReceiver.FreePort();
        _otlpPort = HttpReceiver.FreePort();
        _r.Syslog = new SyslogReceiver(SyslogPath);
        _r.Http = new HttpReceiver(_httpPort, otlp: false);
        _r.Otlp = new HttpReceiver(_otlpPort, otlp: true);
        string config = Path.Combine(_work, "instance.yaml");
        File.WriteAllText(config, $$"""
            name: out-{{Path.GetFileName(_work)[^8..]}}
            mountpoint: {{_mount}}
            control: {{_control}}
            state_dir: {{_work}}/state
            mounts:
              - { path: /, memory: { size: 64MiB } }
            rules: { files: [{{_work}}/alert.yaml] }
            outputs:
              append: "user_uid=%user.uid"
              queue: 8
              retry: { initial: 50ms, max: 200ms, give_up: 1m }
              syslog: { socket: {{SyslogPath}}, facility: local3 }
              http: { url: "http://127.0.0.1:{{_httpPort}}/", timeout: 15s }
              otlp: { endpoint: "http://127.0.0.1:{{_otlpPort}}", timeout: 15s }
              file: { path: {{AlertFile}}, max_size: 16KiB, keep: 2 }
            """);
        _daemon = DaemonProcess.Start(_mount, ["--config", config], appendMountPoint: false);
        WaitFor(() => File.Exists(Path.Combine(_control, "status")), "the control files");
        Directory.CreateDirectory(Path.Combine(_mount, "alerts"));
    }

    [OneTimeTearDown]
    public void Stop()
    {
        _daemon?.Dispose();
        _r.Syslog?.Dispose();
        _r.Http?.Dispose();
        _r.Otlp?.Dispose();
        Shell.Run($"umount -l '{_control}' 2>/dev/null; rm -rf '{_work}'");
    }

    /// <summary>Opens <paramref name="count"/> files below /alerts with cat (one alert each).</summary>
    private void Trigger(string prefix, int count)
    {
        string dir = Path.Combine(_mount, "alerts");
        for (int i = 0; i < count; i++)
        {
            File.WriteAllText(Path.Combine(dir, $"{prefix}{i}"), "x");
        }

        ShellResult cat = Shell.Run($"cd '{dir}' && for i in $(seq 0 {count - 1}); do cat {prefix}$i > /dev/null; done; echo served");
        Assert.That(cat.StdOut, Does.Contain("served"), "the daemon keeps serving: " + cat);
    }

    private void WaitFor(Func<bool> condition, string what, int seconds = 30)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(seconds)),
                $"timed out waiting for {what}\n--- receivers ---\n{ReceiverCounts()}\n--- status ---\n{(File.Exists(Path.Combine(_control, "status")) ? File.ReadAllText(Path.Combine(_control, "status")) : "")}\n--- daemon ---\n{_daemon?.Output}");
            Thread.Sleep(50);
        }
    }

    private string ReceiverCounts() =>
        $"syslog={_r.Syslog?.Messages.Count} http={_r.Http?.Json.Count} (aborted {_r.Http?.Aborted.Count}, rejected {_r.Http?.Rejected.Count}) "
        + $"otlp={_r.Otlp?.Otlp.Count} (aborted {_r.Otlp?.Aborted.Count}, rejected {_r.Otlp?.Rejected.Count})";

    private static bool Mentions(string text, string file) => text.Contains("file=/alerts/" + file + " ", StringComparison.Ordinal);

    private Dictionary<string, long> Metrics(string metric) =>
        File.ReadAllLines(Path.Combine(_control, "metrics"))
            .Select(l => Regex.Match(l, "^" + metric + @"\{name=""[^""]+"",channel=""(\w+)""\} (\d+)$"))
            .Where(m => m.Success)
            .ToDictionary(m => m.Groups[1].Value, m => long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));

    [Test]
    [Order(1)]
    public void Every_channel_delivers_Falco_s_alert_to_its_receiver()
    {
        Trigger("a", 3);
        WaitFor(() => _r.Syslog!.Messages.Count >= 3 && _r.Http!.Json.Count >= 3 && _r.Otlp!.Otlp.Count >= 3 && File.Exists(AlertFile) && File.ReadAllLines(AlertFile).Length >= 3, "3 alerts on every channel");

        // falcosidekick's payload: Falco's JSON output.
        JsonElement json = _r.Http!.Json.First(j => Mentions(j.GetProperty("output").GetString()!, "a0"));
        Assert.That(json.GetProperty("rule").GetString(), Is.EqualTo("Alert file opened"));
        Assert.That(json.GetProperty("priority").GetString(), Is.EqualTo("Warning"));
        Assert.That(json.GetProperty("source").GetString(), Is.EqualTo("syscall"));
        Assert.That(json.GetProperty("hostname").GetString(), Is.EqualTo(Environment.MachineName));
        Assert.That(json.GetProperty("tags").EnumerateArray().Select(t => t.GetString()), Is.EquivalentTo(new[] { "test", "filesystem" }));
        Assert.That(DateTimeOffset.Parse(json.GetProperty("time").GetString()!, CultureInfo.InvariantCulture), Is.GreaterThan(DateTimeOffset.UtcNow.AddMinutes(-5)));
        Assert.That(json.GetProperty("output").GetString(), Does.Match(@"^\d\d:\d\d:\d\d\.\d{9}: Warning Alert file opened \| file=/alerts/a0 process=cat command=cat a0 user_uid=0$"));
        JsonElement fields = json.GetProperty("output_fields");
        Assert.That((fields.GetProperty("fd.name").GetString(), fields.GetProperty("proc.name").GetString(), fields.GetProperty("proc.cmdline").GetString(), fields.GetProperty("user.uid").GetInt64()),
            Is.EqualTo(("/alerts/a0", "cat", "cat a0", 0L)));
        Assert.That(json.GetProperty("incident").GetProperty("id").GetString(), Does.StartWith("inc-"));

        // RFC 5424 on the syslog socket: <PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG; local3 (19) * 8 + warning (4) = 156.
        string message = _r.Syslog!.Messages.First(m => Mentions(m, "a0"));
        Match m = Regex.Match(message, @"^<156>1 (\S+) (\S+) inspatialfs (\d+) alert - (\{.*\})$");
        Assert.That(m.Success, Is.True, message);
        Assert.That(m.Groups[2].Value, Is.EqualTo(Environment.MachineName));
        Assert.That(int.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture), Is.EqualTo(_daemon!.ServerPid), "PROCID: the server that sent it");
        Assert.That(JsonDocument.Parse(m.Groups[4].Value).RootElement.GetProperty("rule").GetString(), Is.EqualTo("Alert file opened"));

        // OTLP/HTTP, decoded with the official proto: one log record per alert, body = Falco's output line.
        LogRecord record = _r.Otlp!.Otlp.SelectMany(r => r.ResourceLogs).SelectMany(r => r.ScopeLogs).SelectMany(s => s.LogRecords)
            .First(r => Mentions(r.Body.StringValue, "a0"));
        Dictionary<string, AnyValue> attrs = record.Attributes.ToDictionary(a => a.Key, a => a.Value);
        Assert.That(attrs["rule"].StringValue, Is.EqualTo("Alert file opened"));
        Assert.That(attrs["priority"].StringValue, Is.EqualTo("Warning"));
        Assert.That(attrs["fd.name"].StringValue, Is.EqualTo("/alerts/a0"));
        Assert.That(attrs["proc.cmdline"].StringValue, Is.EqualTo("cat a0"));
        Assert.That(record.SeverityNumber, Is.EqualTo(SeverityNumber.Warn));
        var service = _r.Otlp.Otlp.First().ResourceLogs[0].Resource.Attributes.First(a => a.Key == "service.name");
        Assert.That(service.Value.StringValue, Is.EqualTo("inspatialfs"));

        // The file: one JSON line per alert.
        Assert.That(File.ReadAllLines(AlertFile).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("rule").GetString()), Has.All.EqualTo("Alert file opened"));
        Assert.That(_r.Http.Rejected.Concat(_r.Otlp.Rejected), Is.Empty);
    }

    [Test]
    [Order(2)]
    public void Killed_receivers_cost_drops_not_service_and_delivery_resumes_when_they_return()
    {
        // Alerts of the earlier cases still queued or retrying would reach the new receivers below and spoil their
        // exact counts (a clean-clone CI run under load saw it): every channel drains first.
        string statusFile = Path.Combine(_control, "status");
        WaitFor(() => File.ReadAllLines(statusFile).Where(l => l.StartsWith("output: ", StringComparison.Ordinal)).All(l => l.Contains(" queued=0 ", StringComparison.Ordinal)),
            "the earlier alerts to be delivered");
        int httpBefore = _r.Http!.Json.Count, otlpBefore = _r.Otlp!.Otlp.Count;
        _r.Http!.Dispose();
        _r.Otlp!.Dispose();
        _r.Syslog!.Dispose();

        // 30 alerts against dead receivers: the daemon keeps serving; each channel holds 8 in its queue plus the one it is
        // retrying (8 if the burst filled the queue before the pump took the first), and drops and counts the rest.
        Trigger("dead", 30);
        WaitFor(() => Metrics("inspatialfs_alerts_dropped_total").GetValueOrDefault("http") >= 21
            && Metrics("inspatialfs_alerts_dropped_total").GetValueOrDefault("otlp") >= 21
            && Metrics("inspatialfs_alerts_dropped_total").GetValueOrDefault("syslog") >= 21, "drops to be counted");
        Dictionary<string, long> dropped = Metrics("inspatialfs_alerts_dropped_total");
        foreach (string channel in new[] { "http", "otlp", "syslog" })
        {
            Assert.That(dropped[channel], Is.InRange(21L, 22L), channel);
        }

        string status = File.ReadAllText(Path.Combine(_control, "status"));
        Assert.That(status, Does.Match(@"output: http \S+ queued=8 delivered=\d+ dropped=2[12] failed=0 retries=\d+ retrying"));
        Assert.That(status, Does.Match(@"output: file \S+ queued=\d+ delivered=\d+ dropped=\d+ failed=0 retries=0 ok"), "the file's receiver is alive");

        // Receivers back (same port, same socket path): the held alerts arrive, then new ones.
        _r.Syslog = new SyslogReceiver(SyslogPath);
        _r.Http = new HttpReceiver(_httpPort, otlp: false);
        _r.Otlp = new HttpReceiver(_otlpPort, otlp: true);
        // Drops are re-read on each poll: a channel still retrying when `dropped` was read may count its 22nd drop later.
        WaitFor(() => Metrics("inspatialfs_alerts_dropped_total") is var d
            && _r.Http.Json.Count == 30 - d["http"] && _r.Otlp.Otlp.Count == 30 - d["otlp"] && _r.Syslog.Messages.Count == 30 - d["syslog"],
            "the held alerts to arrive");
        // The drops are final now (the queues drained into live receivers): the checks below count against these.
        dropped = Metrics("inspatialfs_alerts_dropped_total");
        Assert.That(dropped["http"], Is.InRange(21L, 22L), "http, final");
        Trigger("back", 2);
        WaitFor(() => _r.Http.Json.Any(j => Mentions(j.GetProperty("output").GetString()!, "back1")), "http delivery to resume");
        WaitFor(() => _r.Otlp.Otlp.SelectMany(r => r.ResourceLogs).SelectMany(r => r.ScopeLogs).SelectMany(s => s.LogRecords).Any(r => Mentions(r.Body.StringValue, "back1")), "otlp delivery to resume");
        WaitFor(() => _r.Syslog.Messages.Any(msg => Mentions(msg, "back1")), "syslog delivery to resume");
        Assert.That(_r.Http.Json.Count(j => Mentions(j.GetProperty("output").GetString()!, "dead0")), Is.EqualTo(1), "the alert in flight when the receiver died is delivered once it is back");
        Assert.That(_r.Http.Json.Count, Is.EqualTo(30 - dropped["http"] + 2), "the held alerts, then the 2 new ones");
        Assert.That(httpBefore + otlpBefore, Is.GreaterThan(0));
        Assert.That(Metrics("inspatialfs_alerts_failed_total").Values, Has.All.Zero);
        Assert.That(Metrics("inspatialfs_alerts_dropped_total")["http"], Is.EqualTo(dropped["http"]), "nothing dropped once the receiver was back");
    }

    [Test]
    [Order(3)]
    public void The_file_channel_rotates_and_keeps_the_configured_number_of_files()
    {
        Trigger("rot", 60);
        string dir = Path.GetDirectoryName(AlertFile)!;
        WaitFor(() => File.Exists(AlertFile + ".1"), "a rotation");
        Assert.That(new FileInfo(AlertFile).Length, Is.LessThanOrEqualTo(16 * 1024));
        Assert.That(Directory.GetFiles(dir).Select(Path.GetFileName), Is.SubsetOf(new[] { "alerts.jsonl", "alerts.jsonl.1", "alerts.jsonl.2" }));
        Assert.That(File.GetUnixFileMode(AlertFile), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
    }
}
