using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;

namespace InSpatialFs.Daemon.Tests;

/// <summary>The may-reference matrix of ARCHITECTURE.md, checked on the compiled assemblies.</summary>
public sealed class ArchitectureTests
{
    private static readonly Dictionary<string, string[]> Allowed = new()
    {
        ["InSpatialFs.Interop"] = [],
        ["InSpatialFs.Fuse"] = ["InSpatialFs.Interop"],
        ["InSpatialFs.Storage"] = ["InSpatialFs.Interop", "InSpatialFs.Fuse"],
        ["InSpatialFs.Security"] = ["InSpatialFs.Interop"],
        ["InSpatialFs.Proxy"] = ["InSpatialFs.Interop", "InSpatialFs.Fuse", "InSpatialFs.Storage", "InSpatialFs.Security"],
    };

    private static readonly string[] DaemonOnlyPackages =
        ["System.CommandLine", "Microsoft.Extensions.Logging.Console", "Microsoft.Extensions.Hosting", "Microsoft.Extensions.Logging,"];

    private static Assembly Load(string name) => Assembly.Load(new AssemblyName(name));

    [TestCaseSource(nameof(Layers))]
    public void Layer_references_only_what_the_matrix_allows(string layer)
    {
        string[] references = Load(layer).GetReferencedAssemblies()
            .Select(a => a.Name!)
            .Where(n => n.StartsWith("InSpatialFs.", StringComparison.Ordinal))
            .ToArray();

        Assert.That(references, Is.SubsetOf(Allowed[layer]), $"{layer} references a layer it may not");
    }

    [TestCaseSource(nameof(Layers))]
    public void Only_the_daemon_references_hosting_cli_and_console_logging(string layer)
    {
        string[] references = Load(layer).GetReferencedAssemblies().Select(a => a.FullName).ToArray();
        foreach (string forbidden in DaemonOnlyPackages)
        {
            Assert.That(references.Where(r => Names(r, forbidden)), Is.Empty, $"{layer} references {forbidden.TrimEnd(',')}");
        }

        string[] daemon = typeof(InSpatialFs.Daemon.Cli.ExitCodes).Assembly.GetReferencedAssemblies().Select(a => a.FullName).ToArray();
        Assert.That(daemon.Where(r => Names(r, "System.CommandLine")), Is.Not.Empty, "the control: the same match finds the daemon's System.CommandLine");

        static bool Names(string reference, string package) => (reference + ",").StartsWith(package.TrimEnd(',') + ",", StringComparison.Ordinal);
    }

    /// <summary>
    /// Storage may reference the Fuse assembly only for its ABI (attributes, open flags, statfs): the request path runs
    /// Fuse → Proxy → Storage and never back up, so no server type (connection, pipes, requests) may appear in storage.
    /// Checked on every type reference in Storage's metadata, nested types by their outermost type.
    /// </summary>
    [Test]
    public void Storage_uses_only_the_abi_types_of_fuse()
    {
        List<string> fuseTypes = TypesReferencedFrom("InSpatialFs.Storage", "InSpatialFs.Fuse");
        Assert.That(fuseTypes, Does.Contain("InSpatialFs.Fuse.Abi.FuseAttr"), "the positive control: storage answers with FUSE attributes");
        Assert.That(fuseTypes.Where(t => !t.StartsWith("InSpatialFs.Fuse.Abi.", StringComparison.Ordinal)), Is.Empty,
            "storage references a Fuse type outside InSpatialFs.Fuse.Abi");
    }

    /// <summary>Full names of the types <paramref name="layer"/> references in assembly <paramref name="target"/>.</summary>
    private static List<string> TypesReferencedFrom(string layer, string target)
    {
        using var pe = new PEReader(File.OpenRead(Load(layer).Location));
        MetadataReader md = pe.GetMetadataReader();
        var names = new List<string>();
        foreach (TypeReferenceHandle handle in md.TypeReferences)
        {
            TypeReference type = md.GetTypeReference(handle);
            while (type.ResolutionScope.Kind == HandleKind.TypeReference)
            {
                type = md.GetTypeReference((TypeReferenceHandle)type.ResolutionScope); // a nested type: its outermost one
            }

            if (type.ResolutionScope.Kind == HandleKind.AssemblyReference
                && md.GetString(md.GetAssemblyReference((AssemblyReferenceHandle)type.ResolutionScope).Name) == target)
            {
                names.Add(md.GetString(type.Namespace) + "." + md.GetString(type.Name));
            }
        }

        return names;
    }

    [Test]
    public void Daemon_assembly_is_the_inspatialfs_executable()
    {
        Assert.That(typeof(InSpatialFs.Daemon.Cli.ExitCodes).Assembly.GetName().Name, Is.EqualTo("inspatialfs"));
    }

    private static IEnumerable<string> Layers() => Allowed.Keys;
}
