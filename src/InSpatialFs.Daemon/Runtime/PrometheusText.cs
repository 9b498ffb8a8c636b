using System.Globalization;
using System.Text;

namespace InSpatialFs.Daemon.Runtime;

/// <summary>
/// Writes the Prometheus text exposition format (0.0.4): a HELP and TYPE line per family, then its samples. Every
/// sample carries the instance as `name="..."` (not `instance`, which Prometheus sets itself at scrape time); label
/// values are escaped as the format requires (backslash, double quote, newline).
/// </summary>
internal sealed class PrometheusText(StringBuilder sb, string instanceName)
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    private readonly string _name = Escape(instanceName);

    public StringBuilder Builder => sb;

    public void Family(string metric, string type, string help) =>
        sb.Append("# HELP ").Append(metric).Append(' ').Append(help.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal))
          .Append("\n# TYPE ").Append(metric).Append(' ').Append(type).Append('\n');

    /// <summary>One sample; <paramref name="labels"/> are name/value pairs after the instance's name.</summary>
    public void Sample(string metric, double value, params (string Label, string Value)[] labels)
    {
        sb.Append(metric).Append("{name=\"").Append(_name).Append('"');
        foreach ((string label, string v) in labels)
        {
            sb.Append(',').Append(label).Append("=\"").Append(Escape(v)).Append('"');
        }

        sb.Append("} ").Append(Format(value)).Append('\n');
    }

    public void Single(string metric, string type, string help, double value)
    {
        Family(metric, type, help);
        Sample(metric, value);
    }

    internal static string Format(double value) =>
        double.IsPositiveInfinity(value) ? "+Inf" : double.IsNegativeInfinity(value) ? "-Inf" : double.IsNaN(value) ? "NaN"
        : value == Math.Floor(value) && Math.Abs(value) < 1e15 ? ((long)value).ToString(CultureInfo.InvariantCulture)
        : value.ToString("0.#########", CultureInfo.InvariantCulture);

    internal static string Escape(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
}
