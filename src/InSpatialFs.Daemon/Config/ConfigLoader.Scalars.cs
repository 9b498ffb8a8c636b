using System.Globalization;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;
using InSpatialFs.Storage.Mounts;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace InSpatialFs.Daemon.Config;

/// <summary>Node helpers: every value is read through one of these, so each refusal carries file:line:column.</summary>
public static partial class ConfigLoader
{
    private sealed partial class Reader
    {
        private ConfigException Fail(YamlNode node, string reason)
            => new(file, (int)node.Start.Line, (int)node.Start.Column, reason);

        private YamlMappingNode Mapping(YamlNode node, string what)
            => node as YamlMappingNode ?? throw Fail(node, $"{what} must be a mapping of keys to values");

        private YamlSequenceNode List(YamlNode node, string what)
            => node as YamlSequenceNode ?? throw Fail(node, $"{what} must be a list");

        private void CheckKeys(YamlMappingNode map, string where, string[] valid)
        {
            foreach (var (key, _) in map.Children)
            {
                string k = key is YamlScalarNode s ? s.Value ?? "" : "";
                if (key is not YamlScalarNode || Array.IndexOf(valid, k) < 0)
                    throw Fail(key, $"unknown key '{k}' in {where}; valid keys: {string.Join(", ", valid)}");
            }
        }

        private static YamlNode? Optional(YamlMappingNode map, string key)
        {
            foreach (var (k, v) in map.Children)
            {
                if (k is YamlScalarNode s && s.Value == key) return IsNull(v) ? null : v;
            }
            return null;
        }

        private YamlNode Required(YamlMappingNode map, string key, string where)
            => Optional(map, key) ?? throw Fail(map, $"{where} is missing required key '{key}'");

        private static bool IsNull(YamlNode node)
            => node is YamlScalarNode { Style: ScalarStyle.Plain, Value: null or "" or "~" or "null" };

        private string Scalar(YamlNode node, string what)
            => node is YamlScalarNode s ? s.Value ?? "" : throw Fail(node, $"{what} must be a single value");

        private bool Bool(YamlNode node, string what) => Scalar(node, what) switch
        {
            "true" or "yes" or "on" => true,
            "false" or "no" or "off" => false,
            var v => throw Fail(node, $"{what}: '{v}' is not true or false"),
        };

        private long Size(YamlNode node, string what)
        {
            string v = Scalar(node, what);
            if (!SizeParser.TryParse(v, out long bytes) || bytes <= 0) throw Fail(node, $"{what}: '{v}' is not {SizeParser.Help}");
            return bytes;
        }

        private long Count(YamlNode node, string what)
        {
            string v = Scalar(node, what);
            if (!long.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out long n) || n <= 0)
                throw Fail(node, $"{what}: '{v}' is not a positive whole number");
            return n;
        }

        private T Enum<T>(YamlNode node, string what, params (string Name, T Value)[] choices)
        {
            string v = Scalar(node, what);
            foreach (var (n, value) in choices)
            {
                if (n == v) return value;
            }
            throw Fail(node, $"{what}: '{v}' is not one of {string.Join(", ", choices.Select(c => c.Name))}");
        }

        private string HostPath(YamlNode node, string what)
        {
            string v = Scalar(node, what);
            string? problem = MountTable.ValidatePath(v);
            if (problem != null) throw Fail(node, $"{what} '{v}' {problem}");
            return v;
        }
    }
}
