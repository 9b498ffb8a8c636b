using InSpatialFs.Fuse.Abi;
using InSpatialFs.Fuse.Transport;
using InSpatialFs.Interop;

namespace InSpatialFs.Fuse;

// Spliced READ replies (IFuseSplicedRead): the file system names a leased descriptor range, the server splices it
// into the reader's data pipe and the reply goes header + pipe → /dev/fuse. Every path either answers the request
// exactly once with the length really spliced, or leaves it to the copy path with the pipes drained.
public sealed partial class ProtocolServer
{
    /// <summary>True when the READ was answered (or is gone); false when the copy path must serve it.</summary>
    private bool TryReadSpliced(Reader reader, in FuseReadIn arg)
    {
#pragma warning disable CA2000 // borrowed: the pipes are the reader's, disposed with it
        SplicePipes? pipes = PipesOf(reader);
#pragma warning restore CA2000
        if (pipes is null || !pipes.Fits((long)arg.Offset, arg.Size))
        {
            // Bigger than the pipes (1 MiB at most), or the kernel gave this reader small or no pipes: without
            // CAP_SYS_RESOURCE a user past fs.pipe-user-pages-soft gets one-page pipes. Counted, so status says why.
            Volatile.Write(ref reader.UnfitReads, reader.UnfitReads + 1);
            return false;
        }

        int size = (int)Math.Min(arg.Size, (uint)(reader.ReplyBuffer.Length - OutHeaderSize));
        if (!_splicedRead!.TryReadSpliced(reader.Request, reader.Request.NodeId, arg.Fh, (long)arg.Offset, size, out SplicedReadSource source, out Errno result)
            || result != Errno.OK)
        {
            return false; // not spliceable, or refused: the copy path answers (with its own errno)
        }

        if (source.Length > size || source.Offset < 0)
        {
            source.Release();
            SendError(reader, reader.Request.Unique, BadResult(reader, $"spliced READ names {source.Length} bytes for a {size}-byte request"));
            reader.Replied = true;
            return true;
        }

        Errno spliced;
        try
        {
            spliced = pipes.SpliceFrom(source.Fd, source.Offset, source.Length, out _);
        }
        finally
        {
            source.Release();
        }

        if (spliced != Errno.OK)
        {
            // Failed midway: whatever reached the pipe goes, and the copy path answers (with its own errno).
            if (pipes.Length != 0)
            {
                pipes.Drain(reader.ReplyBuffer.Span);
            }

            long failures = reader.FailedSplices + 1;
            Volatile.Write(ref reader.FailedSplices, failures);
            if (System.Numerics.BitOperations.IsPow2(failures))
            {
                FuseLog.SpliceDataFailed(_logger, reader.Index, spliced, failures); // the 1st, 2nd, 4th...: no flood
            }

            return false;
        }

        _splicedRead.ReadSpliced(reader.Request, arg.Fh, pipes.Length);
        if (pipes.Length > size)
        {
            pipes.Drain(reader.ReplyBuffer.Span);
            SendError(reader, reader.Request.Unique, BadResult(reader, $"spliced READ holds {pipes.Length} bytes for a {size}-byte request"));
            reader.Replied = true;
            return true;
        }

        if (pipes.Length == 0)
        {
            SendOk(reader, reader.Request.Unique, 0); // end of file: nothing to splice
            reader.Replied = true;
            return true;
        }

        // Counted before the send so that whoever sees the reply also sees the count; taken back if it fails.
        Volatile.Write(ref reader.SplicedReplies, reader.SplicedReplies + 1);
        _fs.BeforeReply();
        Errno sent = pipes.SendReply((ISpliceChannel)reader.Channel, reader.Request.Unique, reader.ReplyBuffer.Span, out bool nothingSent);
        if (sent == Errno.OK)
        {
            reader.Replied = true;
            return true;
        }

        Volatile.Write(ref reader.SplicedReplies, reader.SplicedReplies - 1);

        if (!nothingSent)
        {
            FuseLog.ReplyNotDelivered(_logger, reader.Request.Unique, sent); // interrupted and gone, or unmounted
            reader.Replied = true;
            return true;
        }

        // The kernel took nothing: the copy path answers, so the request is never left without a reply.
        Volatile.Write(ref reader.FailedSplices, reader.FailedSplices + 1);
        FuseLog.SpliceReplyFailed(_logger, reader.Request.Unique, sent);
        return false;
    }

    private SplicePipes? PipesOf(Reader reader)
    {
        if (reader.Pipes is { } pipes)
        {
            return pipes;
        }

        if (reader.SpliceRefused)
        {
            return null;
        }

        if (reader.Channel is not ISpliceChannel)
        {
            reader.SpliceRefused = true;
            return null;
        }

#pragma warning disable CA2000 // kept as reader.Pipes below and disposed with the reader
        Errno e = SplicePipes.TryCreate(_options.ReplyBufferSize, out pipes);
#pragma warning restore CA2000
        if (e != Errno.OK)
        {
            reader.SpliceRefused = true;
            FuseLog.SplicePipesRefused(_logger, reader.Index, e);
            return null;
        }

        FuseLog.SplicePipesReady(_logger, reader.Index, pipes!.Slots);
        return reader.Pipes = pipes;
    }
}
