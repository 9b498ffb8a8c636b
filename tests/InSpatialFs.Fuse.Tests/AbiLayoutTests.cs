using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using InSpatialFs.Fuse.Abi;

namespace InSpatialFs.Fuse.Tests;

/// <summary>
/// Every wire struct against the kernel header: a generated C file asserts sizeof and offsetof for each struct of the
/// installed /usr/include/linux/fuse.h (7.38) with values taken from the C# layouts, and gcc must compile it.
/// Fields newer than 7.38 are pinned by hand below.
/// </summary>
public sealed partial class AbiLayoutTests
{
    private const string Header = "/usr/include/linux/fuse.h";

    /// <summary>C fields deliberately not mirrored: 7.38 names for bytes that 7.40+ gave a new meaning.</summary>
    private static readonly HashSet<string> RenamedSince738 = ["fuse_init_out.unused", "fuse_open_out.padding"];

    /// <summary>C# fields newer than 7.38 (checked by hand in Fields_newer_than_7_38_sit_where_7_45_puts_them).</summary>
    private static readonly HashSet<string> NewerThan738 =
        ["FuseInitOut.MaxStackDepth", "FuseInitOut.RequestTimeout", "FuseInitOut.Unused", "FuseOpenOut.BackingId"];

    [Test]
    public void Every_struct_of_the_installed_kernel_header_matches_the_CSharp_layout()
    {
        if (!File.Exists(Header))
        {
            Assert.Ignore($"{Header} is not installed (apt-get install linux-libc-dev)");
        }

        Dictionary<string, Type> csharp = typeof(FuseInHeader).Assembly.GetTypes()
            .Where(t => t.IsValueType && !t.IsNested && t.Namespace == typeof(FuseInHeader).Namespace && t.IsLayoutSequential && !t.IsEnum)
            .ToDictionary(t => t.Name.ToLowerInvariant(), t => t);

        var c = new StringBuilder("#include <stddef.h>\n#include <linux/fuse.h>\n");
        var problems = new List<string>();
        int structs = 0, offsets = 0;
        foreach ((string name, List<string> fields) in ParseStructs(File.ReadAllText(Header)))
        {
            if (!csharp.TryGetValue(name.Replace("_", "", StringComparison.Ordinal), out Type? type))
            {
                problems.Add($"struct {name} has no C# counterpart");
                continue;
            }

            structs++;
            c.Append($"_Static_assert(sizeof(struct {name}) == {Marshal.SizeOf(type)}, \"sizeof(struct {name}) != {Marshal.SizeOf(type)} ({type.Name})\");\n");
            Dictionary<string, FieldInfo> byName = type.GetFields(BindingFlags.Public | BindingFlags.Instance)
                .ToDictionary(f => f.Name.ToLowerInvariant(), f => f);
            var matched = new HashSet<string>();
            foreach (string field in fields)
            {
                if (RenamedSince738.Contains($"{name}.{field}"))
                {
                    continue;
                }

                if (!byName.TryGetValue(field.Replace("_", "", StringComparison.Ordinal), out FieldInfo? f))
                {
                    problems.Add($"{name}.{field} has no field in {type.Name}");
                    continue;
                }

                matched.Add(f.Name);
                int offset = (int)Marshal.OffsetOf(type, f.Name);
                c.Append($"_Static_assert(offsetof(struct {name}, {field}) == {offset}, \"offsetof({name}, {field}) != {offset} ({type.Name}.{f.Name})\");\n");
                offsets++;
            }

            foreach (FieldInfo f in byName.Values.Where(f => !matched.Contains(f.Name) && !NewerThan738.Contains($"{type.Name}.{f.Name}")))
            {
                problems.Add($"{type.Name}.{f.Name} is not in struct {name}");
            }
        }

        Assert.That(problems, Is.Empty, "mismatches between C# and the kernel header");
        Assert.That(structs, Is.GreaterThanOrEqualTo(60), "the header parser found too few structs");

        string dir = Directory.CreateTempSubdirectory("abi-").FullName;
        try
        {
            string file = Path.Combine(dir, "abi_check.c");
            File.WriteAllText(file, c.ToString());
            (int exit, string stderr) = Gcc(file);
            Assert.That(exit, Is.Zero, $"gcc rejected the layout ({structs} structs, {offsets} offsets):\n{stderr}");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void Fields_newer_than_7_38_sit_where_7_45_puts_them()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Marshal.SizeOf<FuseInitOut>(), Is.EqualTo(64));
            Assert.That((int)Marshal.OffsetOf<FuseInitOut>(nameof(FuseInitOut.Flags2)), Is.EqualTo(32));
            Assert.That((int)Marshal.OffsetOf<FuseInitOut>(nameof(FuseInitOut.MaxStackDepth)), Is.EqualTo(36));
            Assert.That((int)Marshal.OffsetOf<FuseInitOut>(nameof(FuseInitOut.RequestTimeout)), Is.EqualTo(40));
            Assert.That((int)Marshal.OffsetOf<FuseInitOut>(nameof(FuseInitOut.Unused)), Is.EqualTo(42));
            Assert.That(Marshal.SizeOf<FuseOpenOut>(), Is.EqualTo(16));
            Assert.That((int)Marshal.OffsetOf<FuseOpenOut>(nameof(FuseOpenOut.BackingId)), Is.EqualTo(12));
            Assert.That(Marshal.SizeOf<FuseBackingMap>(), Is.EqualTo(16));
            Assert.That((int)Marshal.OffsetOf<FuseBackingMap>(nameof(FuseBackingMap.Flags)), Is.EqualTo(4));
            Assert.That((int)Marshal.OffsetOf<FuseBackingMap>(nameof(FuseBackingMap.Padding)), Is.EqualTo(8));
            Assert.That(Marshal.SizeOf<FuseCopyFileRangeOut>(), Is.EqualTo(8));
            Assert.That(Marshal.SizeOf<FuseStatxIn>(), Is.EqualTo(24));
            Assert.That((int)Marshal.OffsetOf<FuseStatxIn>(nameof(FuseStatxIn.Fh)), Is.EqualTo(8));
            Assert.That((int)Marshal.OffsetOf<FuseStatxIn>(nameof(FuseStatxIn.SxMask)), Is.EqualTo(20));
            Assert.That(Marshal.SizeOf<FuseNotifyPruneOut>(), Is.EqualTo(16));
            Assert.That((int)Marshal.OffsetOf<FuseNotifyPruneOut>(nameof(FuseNotifyPruneOut.Spare)), Is.EqualTo(8));
        });
    }

    [Test]
    public void Ioctl_numbers_encode_direction_size_and_magic()
    {
        static uint Ioc(uint dir, uint nr, uint size) => (dir << 30) | (size << 16) | (229u << 8) | nr;
        Assert.Multiple(() =>
        {
            Assert.That(Ioc(2, 0, 4), Is.EqualTo(FuseIoctl.DevIocClone));
            Assert.That(Ioc(1, 1, (uint)Marshal.SizeOf<FuseBackingMap>()), Is.EqualTo(FuseIoctl.DevIocBackingOpen));
            Assert.That(Ioc(1, 2, 4), Is.EqualTo(FuseIoctl.DevIocBackingClose));
            Assert.That(Ioc(0, 3, 0), Is.EqualTo(FuseIoctl.DevIocSyncInit));
        });
    }

    [Test]
    public void Opcode_and_flag_values_match_the_installed_header()
    {
        if (!File.Exists(Header))
        {
            Assert.Ignore($"{Header} is not installed");
        }

        string text = File.ReadAllText(Header);
        var defines = new Dictionary<string, ulong>();
        foreach (Match m in EnumValue().Matches(text))
        {
            defines[m.Groups[1].Value] = ulong.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
        }

        foreach (Match m in ShiftDefine().Matches(text))
        {
            defines[m.Groups[1].Value] = 1UL << int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
        }

        Assert.Multiple(() =>
        {
            foreach (FuseOpcode op in Enum.GetValues<FuseOpcode>())
            {
                string cname = "FUSE_" + op.ToString().ToUpperInvariant();
                if (defines.TryGetValue(cname, out ulong v))
                {
                    Assert.That((ulong)op, Is.EqualTo(v), cname);
                }
            }

            Assert.That(defines["FUSE_COPY_FILE_RANGE"], Is.EqualTo((ulong)FuseOpcode.CopyFileRange));
            Assert.That(defines["FUSE_TMPFILE"], Is.EqualTo((ulong)FuseOpcode.TmpFile));
            Assert.That(defines["FUSE_INIT_EXT"], Is.EqualTo((ulong)FuseInitFlags.InitExt));
            Assert.That(defines["FUSE_HANDLE_KILLPRIV_V2"], Is.EqualTo((ulong)FuseInitFlags.HandleKillprivV2));
            Assert.That(defines["FUSE_SECURITY_CTX"], Is.EqualTo((ulong)FuseInitFlags.SecurityCtx));
            Assert.That(defines["FUSE_HAS_EXPIRE_ONLY"], Is.EqualTo((ulong)FuseInitFlags.HasExpireOnly));
            Assert.That(defines["FUSE_DO_READDIRPLUS"], Is.EqualTo((ulong)FuseInitFlags.DoReaddirplus));
            Assert.That(defines["FUSE_SETXATTR_EXT"], Is.EqualTo((ulong)FuseInitFlags.SetxattrExt));
        });
    }

    /// <summary>struct name → field names (flexible array members left out), from a kernel UAPI header.</summary>
    private static List<(string Name, List<string> Fields)> ParseStructs(string text)
    {
        text = BlockComment().Replace(text, " ");
        text = LineComment().Replace(text, " ");
        var result = new List<(string, List<string>)>();
        foreach (Match m in StructBody().Matches(text))
        {
            var fields = new List<string>();
            foreach (Match f in FieldDecl().Matches(m.Groups[2].Value))
            {
                if (f.Groups[3].Value == "[]")
                {
                    continue; // flexible array member: no offset to pin in C#
                }

                fields.Add(f.Groups[2].Value);
            }

            result.Add((m.Groups[1].Value, fields));
        }

        return result;
    }

    private static (int Exit, string Stderr) Gcc(string file)
    {
        var start = new ProcessStartInfo("gcc") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (string a in new[] { "-std=c11", "-c", file, "-o", Path.ChangeExtension(file, ".o") })
        {
            start.ArgumentList.Add(a);
        }

        using Process p = Process.Start(start)!;
        string stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stderr);
    }

    [GeneratedRegex(@"/\*.*?\*/", RegexOptions.Singleline)]
    private static partial Regex BlockComment();

    [GeneratedRegex(@"//[^\n]*")]
    private static partial Regex LineComment();

    [GeneratedRegex(@"struct\s+(\w+)\s*\{([^}]*)\}\s*;")]
    private static partial Regex StructBody();

    [GeneratedRegex(@"(?:struct\s+)?(\w+)\s+(\w+)\s*(\[\w*\])?\s*;")]
    private static partial Regex FieldDecl();

    [GeneratedRegex(@"^\s*(FUSE_\w+|CUSE_\w+)\s*=\s*(\d+)", RegexOptions.Multiline)]
    private static partial Regex EnumValue();

    [GeneratedRegex(@"#define\s+(FUSE_\w+)\s+\(1(?:ULL)?\s*<<\s*(\d+)\)")]
    private static partial Regex ShiftDefine();
}
