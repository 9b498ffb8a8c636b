using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace InSpatialFs.TestKit;

/// <summary>Builds the argument bytes of a request: structs, NUL-terminated names and raw data, in order.</summary>
public sealed class FuseArgs
{
    private readonly List<byte> _bytes = [];

    public static FuseArgs Empty => new();

    public static FuseArgs Of<T>(in T value)
        where T : unmanaged => new FuseArgs().Struct(in value);

    public FuseArgs Struct<T>(in T value)
        where T : unmanaged
    {
        var bytes = new byte[Unsafe.SizeOf<T>()];
        MemoryMarshal.Write(bytes, in value);
        _bytes.AddRange(bytes);
        return this;
    }

    /// <summary>Appends the UTF-8 name and its NUL terminator.</summary>
    public FuseArgs Name(string name)
    {
        _bytes.AddRange(Encoding.UTF8.GetBytes(name));
        _bytes.Add(0);
        return this;
    }

    public FuseArgs Raw(ReadOnlySpan<byte> data)
    {
        _bytes.AddRange(data.ToArray());
        return this;
    }

    public byte[] ToArray() => [.. _bytes];
}
