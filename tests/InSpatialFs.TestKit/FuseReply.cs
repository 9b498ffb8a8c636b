using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;

namespace InSpatialFs.TestKit;

/// <summary>A decoded reply: out header, body bytes, and the channel it was written on.</summary>
public sealed class FuseReply
{
    public FuseReply(WrittenFrame frame)
    {
        ArgumentNullException.ThrowIfNull(frame);
        if (frame.Bytes.Length < 16)
        {
            throw new InvalidDataException($"reply of {frame.Bytes.Length} bytes is shorter than fuse_out_header");
        }

        Raw = frame.Bytes;
        Header = MemoryMarshal.Read<FuseOutHeader>(frame.Bytes);
        Body = frame.Bytes[16..];
        Channel = frame.Channel;
    }

    public FuseOutHeader Header { get; }

    public byte[] Body { get; }

    public byte[] Raw { get; }

    public int Channel { get; }

    public ulong Unique => Header.Unique;

    /// <summary>The errno of an error reply (OK for success).</summary>
    public Errno Error => (Errno)(-Header.Error);

    /// <summary>Decodes the body as <typeparamref name="T"/>, requiring the exact size a fixed reply must have.</summary>
    public T As<T>()
        where T : unmanaged
    {
        if (Body.Length != Unsafe.SizeOf<T>())
        {
            throw new InvalidDataException($"body is {Body.Length} bytes, {typeof(T).Name} is {Unsafe.SizeOf<T>()}");
        }

        return MemoryMarshal.Read<T>(Body);
    }

    /// <summary>Decodes <typeparamref name="T"/> at <paramref name="offset"/> of the body.</summary>
    public T At<T>(int offset)
        where T : unmanaged => MemoryMarshal.Read<T>(Body.AsSpan(offset));

    public override string ToString() => $"unique {Unique} error {Error} body {Body.Length} bytes (channel {Channel})";
}
