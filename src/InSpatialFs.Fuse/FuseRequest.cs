namespace InSpatialFs.Fuse;

/// <summary>
/// The request being served: header fields plus interrupt state. One instance per reader thread,
/// reused for every request (no allocation per request); do not keep it after the handler returns.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001:Types that own disposable fields should be disposable",
    Justification = "The event never makes a kernel handle (nothing reads its WaitHandle), and another reader may still " +
    "Interrupt() a request while its own reader ends, so a Dispose at reader end would race that Set for nothing.")]
public sealed class FuseRequest
{
    private readonly ManualResetEventSlim _interrupted = new(false);

    public ulong Unique { get; internal set; }
    public uint Opcode { get; internal set; }
    public ulong NodeId { get; internal set; }
    public uint Uid { get; internal set; }
    public uint Gid { get; internal set; }
    /// <summary>0 for RELEASE and background requests (the kernel sends none).</summary>
    public uint Pid { get; internal set; }

    /// <summary>The kernel sent INTERRUPT for this request: stop waiting and answer EINTR.</summary>
    public bool IsInterrupted => _interrupted.IsSet;

    /// <summary>Blocks up to <paramref name="timeout"/>; returns true if the request was interrupted.</summary>
    public bool WaitForInterrupt(TimeSpan timeout) => _interrupted.Wait(timeout);

    internal void Reset(ulong unique, uint opcode, ulong nodeId, uint uid, uint gid, uint pid)
    {
        Unique = unique;
        Opcode = opcode;
        NodeId = nodeId;
        Uid = uid;
        Gid = gid;
        Pid = pid;
        _interrupted.Reset();
    }

    internal void Interrupt() => _interrupted.Set();
}
