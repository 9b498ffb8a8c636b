using InSpatialFs.Security.Matching;

namespace InSpatialFs.Security.Rules;

/// <summary>
/// Falco's <c>pmatch</c>: a path matches when one of the prefixes is equal to it or to one of its parent directories,
/// compared component by component (so <c>/etc</c> matches <c>/etc/passwd</c> but not <c>/etcetera</c>). A prefix
/// component may be a glob (<c>/home/*/.ssh</c>), matched within that component only.
/// </summary>
internal sealed class PathPrefixSet
{
    /// <summary>Each prefix as components; a component with wildcards carries its compiled glob.</summary>
    private readonly (string Text, Glob? Glob)[][] _prefixes;

    public PathPrefixSet(IEnumerable<string> prefixes)
    {
        _prefixes = prefixes
            .Select(p => p.Split('/', StringSplitOptions.RemoveEmptyEntries)
                .Select(c => (c, c.AsSpan().IndexOfAny("?*[") >= 0 ? Glob.Compile(c, GlobDialect.Fnmatch) : null))
                .ToArray())
            .ToArray();
    }

    public bool Matches(ReadOnlySpan<char> path)
    {
        foreach ((string Text, Glob? Glob)[] prefix in _prefixes)
        {
            if (Matches(path, prefix))
            {
                return true;
            }
        }

        return false;
    }

    private static bool Matches(ReadOnlySpan<char> path, (string Text, Glob? Glob)[] prefix)
    {
        int i = 0;
        foreach ((string text, Glob? glob) in prefix)
        {
            while (i < path.Length && path[i] == '/')
            {
                i++;
            }

            if (i >= path.Length)
            {
                return false;
            }

            int end = path[i..].IndexOf('/');
            ReadOnlySpan<char> component = end < 0 ? path[i..] : path.Slice(i, end);
            if (glob != null ? !glob.IsMatch(component) : !component.SequenceEqual(text))
            {
                return false;
            }

            i += component.Length;
        }

        return true;
    }
}
