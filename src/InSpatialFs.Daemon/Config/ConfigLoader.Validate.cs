using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace InSpatialFs.Daemon.Config;

/// <summary>`config validate`: every error of a config, not only the first one the loader meets.</summary>
public static partial class ConfigLoader
{
    /// <summary>At most this many errors are collected (a file of garbage is not worth a page of them).</summary>
    private const int MaxErrors = 50;

    /// <summary>
    /// Loads the file as <see cref="LoadFile"/> does; when it is refused, takes the refused entry out of the document
    /// (the key and its value, or the list item) and reads the rest again, collecting each refusal with its own
    /// position. It stops at an error that only follows from an earlier removal (a refusal of a mapping or list an
    /// entry was taken from, such as "mounts must include a mount at path '/'" after a bad mount went), at a syntax
    /// error and at a refusal without a position, so every error reported is one the author has to fix.
    /// </summary>
    /// <returns>The config when the file is valid (errors empty), else null and the errors in file order.</returns>
    public static (InstanceConfig? Config, IReadOnlyList<ConfigException> Errors) ValidateFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        try
        {
            return (LoadFile(path), []);
        }
        catch (ConfigException first)
        {
            var errors = new List<ConfigException> { first };
            if (first.Line == 0 || first.Reason.StartsWith("invalid YAML", StringComparison.Ordinal))
            {
                return (null, errors);
            }

            YamlNode root;
            try
            {
                var stream = new YamlStream();
                stream.Load(new StringReader(File.ReadAllText(path)));
                if (stream.Documents.Count == 0)
                {
                    return (null, errors); // empty, or only comments: the first error says so
                }

                root = stream.Documents[0].RootNode;
            }
            catch (Exception e) when (e is IOException or YamlException or UnauthorizedAccessException)
            {
                return (null, errors);
            }

            var removedFrom = new List<YamlNode>();
            ConfigException current = first;
            bool reread = false, stoodIn = false;
            while (errors.Count < MaxErrors && (reread || (!IsAboutRoot(root, current) && Remove(root, current.Line, current.Column, removedFrom))))
            {
                reread = false;
                try
                {
                    new Reader(path, ConfigOverrides.None).Instance(root);
                    break;
                }
                catch (ConfigException next)
                {
                    YamlNode? from = removedFrom.FirstOrDefault(n => n.Start.Line == next.Line && n.Start.Column == next.Column);
                    if (from is YamlSequenceNode mounts && !stoodIn && next.Reason.Contains(MissingRootMount, StringComparison.Ordinal))
                    {
                        // The mount at / was the refused one: a stand-in root lets the rest of the file (isolation,
                        // paths, resources, ...) be read, so their errors are reported in the same run.
                        mounts.Children.Add(StandInRootMount());
                        stoodIn = reread = true;
                        continue;
                    }

                    if (next.Line == 0 || from is not null || errors.Any(e => e.Line == next.Line && e.Column == next.Column))
                    {
                        break; // a consequence of a removal, not an error of its own
                    }

                    errors.Add(next);
                    current = next;
                }
            }

            return (null, [.. errors.OrderBy(e => e.Line).ThenBy(e => e.Column)]);
        }
    }

    private const string MissingRootMount = "mounts must include a mount at path '/'";

    /// <summary>A valid in-memory root mount (never reported: it has no position in the file).</summary>
    private static YamlMappingNode StandInRootMount() => new(
        new YamlScalarNode("path"), new YamlScalarNode("/"),
        new YamlScalarNode("memory"), new YamlMappingNode(new YamlScalarNode("size"), new YamlScalarNode("1MiB")));

    /// <summary>
    /// A block mapping starts where its first key does: a refusal there is about the whole document when it says so
    /// (a missing required key, not a mapping); anything else is about that first key.
    /// </summary>
    private static bool IsAboutRoot(YamlNode root, ConfigException e) =>
        root.Start.Line == e.Line && root.Start.Column == e.Column
        && (e.Reason.Contains("is missing required key", StringComparison.Ordinal) || e.Reason.Contains("must be a mapping", StringComparison.Ordinal));

    /// <summary>Takes the entry at line:column (a key, its value, or a list item) out of its parent; false when there is none to take.</summary>
    private static bool Remove(YamlNode node, int line, int column, List<YamlNode> removedFrom)
    {
        static bool At(YamlNode n, int line, int column) => n.Start.Line == line && n.Start.Column == column;
        switch (node)
        {
            case YamlMappingNode map:
                foreach ((YamlNode key, YamlNode value) in map.Children.ToList())
                {
                    if (At(key, line, column) || At(value, line, column))
                    {
                        map.Children.Remove(key);
                        removedFrom.Add(map);
                        return true;
                    }

                    if (Remove(value, line, column, removedFrom)) return true;
                }

                return false;
            case YamlSequenceNode seq:
                // A list item is one unit (a mount, a pattern): a refusal anywhere in it takes the whole item, so what
                // is left of it cannot be refused again for what was taken.
                for (int i = 0; i < seq.Children.Count; i++)
                {
                    if (seq.Children[i].AllNodes.Any(n => At(n, line, column)))
                    {
                        seq.Children.RemoveAt(i);
                        removedFrom.Add(seq);
                        return true;
                    }
                }

                return false;
            default:
                return false;
        }
    }
}
