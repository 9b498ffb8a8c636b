using System.Runtime.InteropServices;

namespace InSpatialFs.Fuse.Transport;

/// <summary>
/// A request or reply buffer of one reader thread, outside the managed heap. Each reader needs max_write + 4 KiB for
/// requests and as much for replies (about 2 MiB) but most requests use a few hundred bytes: memory from the C
/// allocator (mmap for this size) costs RSS only for the pages a request actually touched, and allocating it neither
/// counts against the GC's budget nor triggers a collection while a mount is starting, as pinned arrays did.
/// Owned by its reader thread; freed when that thread ends.
/// </summary>
internal sealed unsafe class NativeBuffer : IDisposable
{
    private byte* _pointer;

    public NativeBuffer(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        _pointer = (byte*)NativeMemory.AlignedAlloc((nuint)length, 4096);
        Length = length;
    }

    public int Length { get; }

    /// <summary>The start of the buffer (stable for its life: a ring entry registers it with the kernel).</summary>
    public byte* Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_pointer == null, this);
            return _pointer;
        }
    }

    public Span<byte> Span
    {
        get
        {
            ObjectDisposedException.ThrowIf(_pointer == null, this);
            return new Span<byte>(_pointer, Length);
        }
    }

    /// <summary>
    /// Gives the memory up without freeing it: for a buffer the kernel may still write into (a ring entry whose command
    /// had not completed), where a leak is the safe end.
    /// </summary>
    public void Abandon() => _pointer = null; // the finalizer frees only a non-null pointer

    public void Dispose()
    {
        byte* p = _pointer;
        _pointer = null;
        if (p != null)
        {
            NativeMemory.AlignedFree(p);
        }

        GC.SuppressFinalize(this);
    }

    ~NativeBuffer()
    {
        if (_pointer != null)
        {
            NativeMemory.AlignedFree(_pointer);
        }
    }
}
