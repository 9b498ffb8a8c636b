using System.Globalization;
using InSpatialFs.Security.Outputs;
using YamlDotNet.RepresentationModel;

namespace InSpatialFs.Daemon.Config;

/// <summary>The `outputs:` section (alert channels); every value is checked, every refusal positioned.</summary>
public static partial class ConfigLoader
{
    private static readonly string[] OutputsKeys = ["append", "queue", "retry", "stdout", "file", "syslog", "http", "otlp"];
    private static readonly string[] RetryKeys = ["initial", "max", "give_up"];
    private static readonly string[] FileOutputKeys = ["path", "max_size", "keep"];
    private static readonly string[] SyslogKeys = ["socket", "facility"];
    private static readonly string[] HttpKeys = ["url", "timeout", "headers"];
    private static readonly string[] OtlpKeys = ["endpoint", "timeout", "headers"];

    private sealed partial class Reader
    {
        private OutputsConfig Outputs(YamlNode node)
        {
            var map = Mapping(node, "outputs");
            CheckKeys(map, "outputs", OutputsKeys);
            var retry = Optional(map, "retry") is { } r ? Mapping(r, "outputs.retry") : null;
            if (retry != null) CheckKeys(retry, "outputs.retry", RetryKeys);
            var defaults = new OutputsConfig();
            return new OutputsConfig
            {
                Append = Optional(map, "append") is { } a ? Scalar(a, "outputs.append") : null,
                QueueCapacity = Optional(map, "queue") is { } q ? (int)Math.Min(Count(q, "outputs.queue"), 1_000_000) : defaults.QueueCapacity,
                RetryInitial = retry != null && Optional(retry, "initial") is { } ri ? Duration(ri, "outputs.retry.initial") : defaults.RetryInitial,
                RetryMax = retry != null && Optional(retry, "max") is { } rm ? Duration(rm, "outputs.retry.max") : defaults.RetryMax,
                RetryGiveUp = retry != null && Optional(retry, "give_up") is { } rg ? Duration(rg, "outputs.retry.give_up") : defaults.RetryGiveUp,
                Stdout = Optional(map, "stdout") is { } s && Bool(s, "outputs.stdout"),
                File = Optional(map, "file") is { } f ? FileOutput(f) : null,
                Syslog = Optional(map, "syslog") is { } sl ? SyslogOutput(sl) : null,
                Http = Optional(map, "http") is { } h ? Http(h, "outputs.http", null) : null,
                Otlp = Optional(map, "otlp") is { } o ? Otlp(o) : null,
            };
        }

        private FileOutputConfig FileOutput(YamlNode node)
        {
            var map = Mapping(node, "outputs.file");
            CheckKeys(map, "outputs.file", FileOutputKeys);
            return new FileOutputConfig(
                HostPath(Required(map, "path", "outputs.file"), "outputs.file.path"),
                Optional(map, "max_size") is { } m ? Size(m, "outputs.file.max_size") : 64L << 20,
                Optional(map, "keep") is { } k ? (int)Math.Min(Count(k, "outputs.file.keep"), 100) : 5);
        }

        private SyslogOutputConfig SyslogOutput(YamlNode node)
        {
            var map = Mapping(node, "outputs.syslog");
            CheckKeys(map, "outputs.syslog", SyslogKeys);
            int facility = 1;
            if (Optional(map, "facility") is { } f)
            {
                string name = Scalar(f, "outputs.syslog.facility");
                facility = SyslogAlertChannel.ParseFacility(name) ?? throw Fail(f, $"outputs.syslog.facility: '{name}' is not a syslog facility (user, daemon, local0 ... local7, ...)");
            }

            return new SyslogOutputConfig(Optional(map, "socket") is { } s ? HostPath(s, "outputs.syslog.socket") : "/dev/log", facility);
        }

        private HttpOutputConfig Http(YamlNode node, string what, string? defaultPath)
        {
            var map = Mapping(node, what);
            CheckKeys(map, what, what.EndsWith("otlp", StringComparison.Ordinal) ? OtlpKeys : HttpKeys);
            YamlNode urlNode = Required(map, what.EndsWith("otlp", StringComparison.Ordinal) ? "endpoint" : "url", what);
            string text = Scalar(urlNode, what + ".url");
            if (!Uri.TryCreate(text, UriKind.Absolute, out Uri? url) || url.Scheme is not ("http" or "https"))
                throw Fail(urlNode, $"{what}: '{text}' is not an http:// or https:// URL");
            if (defaultPath != null && url.AbsolutePath is "" or "/") url = new Uri(url, defaultPath);
            var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            if (Optional(map, "headers") is { } h)
            {
                foreach (var (k, v) in Mapping(h, what + ".headers").Children)
                {
                    headers[Scalar(k, what + ".headers")] = Scalar(v, what + ".headers");
                }
            }

            TimeSpan timeout = Optional(map, "timeout") is { } t ? Duration(t, what + ".timeout") : TimeSpan.FromSeconds(5);
            return new HttpOutputConfig(url, timeout, headers);
        }

        private OtlpOutputConfig Otlp(YamlNode node)
        {
            HttpOutputConfig h = Http(node, "outputs.otlp", "/v1/logs");
            return new OtlpOutputConfig(h.Url, h.Timeout, h.Headers);
        }

        /// <summary>A duration: an integer and ms, s or m (500ms, 5s, 1m).</summary>
        private TimeSpan Duration(YamlNode node, string what)
        {
            string v = Scalar(node, what).Trim();
            int digits = 0;
            while (digits < v.Length && char.IsAsciiDigit(v[digits])) digits++;
            if (digits > 0 && long.TryParse(v.AsSpan(0, digits), NumberStyles.None, CultureInfo.InvariantCulture, out long n) && n > 0 && n < 1_000_000)
            {
                switch (v[digits..])
                {
                    case "ms": return TimeSpan.FromMilliseconds(n);
                    case "s": return TimeSpan.FromSeconds(n);
                    case "m": return TimeSpan.FromMinutes(n);
                    default: break;
                }
            }

            throw Fail(node, $"{what}: '{v}' is not a duration (e.g. 500ms, 5s, 1m)");
        }
    }
}
