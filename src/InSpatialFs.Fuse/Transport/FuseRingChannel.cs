using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using InSpatialFs.Interop;

namespace InSpatialFs.Fuse.Transport;

/// <summary>
/// One entry of FUSE over io_uring (protocol 7.42): a private io_uring that keeps one URING_CMD on the /dev/fuse
/// session for ring queue <see cref="Queue"/>. The kernel completes the command with a request already copied into
/// this entry's buffers; the reply goes back with COMMIT_AND_FETCH, which also waits for the next request. One system
/// call per request (the commit and the wait are one io_uring_enter) instead of a read(2) and a write(2).
/// </summary>
/// <remarks>
/// <para>Memory the kernel writes: a headers page (<c>struct fuse_uring_req_header</c>: in_out[128], op_in[128],
/// ring_ent_in_out) and the payload, which is <see cref="RequestBuffer"/> from <see cref="PayloadOffset"/> on. A request
/// arrives in three pieces (in header, per-opcode header, payload); the first two are copied in front of the payload,
/// so the frame is contiguous as on /dev/fuse and the dispatcher parses it with the same checked lengths.</para>
/// <para>Used by one thread. The buffers stay allocated while a command is in the kernel (it may write into them at
/// any time until that command completes); a channel disposed with one outstanding leaks them rather than free memory
/// the kernel still points at.</para>
/// </remarks>
internal sealed unsafe class FuseRingChannel : IFuseChannel
{
    /// <summary>Where the payload starts in <see cref="RequestBuffer"/>: room for the in header (40) and an op header (≤ 128).</summary>
    public const int PayloadOffset = 256;

    private const int InHeaderSize = 40;
    private const int OutHeaderSize = 16;
    private const int OpInOffset = 128, OpInSize = 128;
    private const int EntInOutOffset = 256;      // struct fuse_uring_ent_in_out: flags, commit_id, payload_sz, padding, reserved
    private const int HeadersSize = 288;         // sizeof(struct fuse_uring_req_header)
    private const int IovecsOffset = 512;        // the two iovecs REGISTER points at, in the same page
    private const int SqeSize = 128;             // IORING_SETUP_SQE128
    private const int SqeCmdOffset = 48;         // io_uring_sqe.cmd: struct fuse_uring_cmd_req
    private const uint CmdRegister = 1, CmdCommitAndFetch = 2;

    private readonly SafeFd _session;
    private readonly int _payloadCapacity;
    private byte* _headers;
    private int _ringFd = -1;
    private byte* _sqRing, _cqRing, _sqes;
    private nuint _sqRingSize, _cqRingSize, _sqesSize;
    private uint* _sqHead, _sqTail, _sqMask, _sqArray, _cqHead, _cqTail, _cqMask;
    private IoUringCqe* _cqes;
    private bool _sessionRef;

    /// <summary>A command is in the kernel (submitted or waiting to be): it may still write into the buffers.</summary>
    private bool _inKernel;

    /// <summary>The request last handed out, not yet answered: its commit id (the kernel's unique).</summary>
    private ulong _commitId;
    private bool _awaitingReply;

    private FuseRingChannel(SafeFd session, int queue, int payloadCapacity)
    {
        _session = session;
        Queue = queue;
        _payloadCapacity = payloadCapacity;
        RequestBuffer = new NativeBuffer(PayloadOffset + payloadCapacity);
    }

    /// <summary>The ring queue (a CPU number) this entry serves: the kernel queues a request on the CPU it was issued from.</summary>
    public int Queue { get; }

    /// <summary>The request buffer the reader must pass to every <see cref="Read(Span{byte}, out int, out int)"/>.</summary>
    public NativeBuffer RequestBuffer { get; }

    /// <summary>Requests this entry received (a counter for status, written by its thread only).</summary>
    public long Requests;

    /// <summary>Commits the kernel refused (the request was gone); the entry is registered again each time.</summary>
    public long RefusedCommits;

    /// <summary>
    /// A ring entry for <paramref name="queue"/> on the connection of <paramref name="session"/>. Nothing is registered
    /// until the first read (the kernel takes a REGISTER only after INIT has been answered).
    /// </summary>
    public static Errno TryCreate(SafeFd session, int queue, int payloadCapacity, out FuseRingChannel? channel)
    {
        channel = new FuseRingChannel(session, queue, payloadCapacity);
        Errno e = channel.Setup();
        if (e != Errno.OK)
        {
            channel.Dispose();
            channel = null;
        }

        return e;
    }

    /// <summary>The number of ring queues the kernel makes: one per possible CPU (/sys/devices/system/cpu/possible).</summary>
    public static int PossibleCpus()
    {
        try
        {
            string text = File.ReadAllText("/sys/devices/system/cpu/possible").Trim(); // "0-1", "0", "0-3,5"
            int highest = 0;
            foreach (string part in text.Split(','))
            {
                string last = part[(part.LastIndexOf('-') + 1)..];
                highest = Math.Max(highest, int.Parse(last, System.Globalization.CultureInfo.InvariantCulture));
            }

            return highest + 1;
        }
        catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException)
        {
            return Environment.ProcessorCount;
        }
    }

    private Errno Setup()
    {
        _headers = (byte*)NativeMemory.AlignedAlloc(4096, 4096);
        new Span<byte>(_headers, 4096).Clear();
        var iov = (IoVec*)(_headers + IovecsOffset);
        iov[0] = new IoVec { Base = _headers, Length = HeadersSize };
        iov[1] = new IoVec { Base = RequestBuffer.Pointer + PayloadOffset, Length = (nuint)_payloadCapacity };

        _session.DangerousAddRef(ref _sessionRef);
        IoUringParams p = default;
        p.Flags = LibC.IORING_SETUP_SQE128;
        int fd = LibC.IoUringSetup(2, &p);
        if (fd < 0)
        {
            return ErrnoExtensions.LastPInvoke();
        }

        _ringFd = fd;
        _sqRingSize = p.SqOff.Array + (p.SqEntries * sizeof(uint));
        _cqRingSize = p.CqOff.Cqes + (p.CqEntries * (uint)sizeof(IoUringCqe));
        if ((p.Features & LibC.IORING_FEAT_SINGLE_MMAP) != 0)
        {
            _sqRingSize = _cqRingSize = Math.Max(_sqRingSize, _cqRingSize);
        }

        _sqRing = Map(_sqRingSize, LibC.IORING_OFF_SQ_RING);
        if (_sqRing == null)
        {
            return ErrnoExtensions.LastPInvoke();
        }

        if ((p.Features & LibC.IORING_FEAT_SINGLE_MMAP) != 0)
        {
            _cqRing = _sqRing;
        }
        else if ((_cqRing = Map(_cqRingSize, LibC.IORING_OFF_CQ_RING)) == null)
        {
            return ErrnoExtensions.LastPInvoke();
        }

        _sqesSize = p.SqEntries * SqeSize;
        if ((_sqes = Map(_sqesSize, LibC.IORING_OFF_SQES)) == null)
        {
            return ErrnoExtensions.LastPInvoke();
        }

        _sqHead = (uint*)(_sqRing + p.SqOff.Head);
        _sqTail = (uint*)(_sqRing + p.SqOff.Tail);
        _sqMask = (uint*)(_sqRing + p.SqOff.RingMask);
        _sqArray = (uint*)(_sqRing + p.SqOff.Array);
        _cqHead = (uint*)(_cqRing + p.CqOff.Head);
        _cqTail = (uint*)(_cqRing + p.CqOff.Tail);
        _cqMask = (uint*)(_cqRing + p.CqOff.RingMask);
        _cqes = (IoUringCqe*)(_cqRing + p.CqOff.Cqes);
        return Errno.OK;
    }

    private byte* Map(nuint size, long offset)
    {
        void* m = LibC.mmap(null, size, LibC.PROT_READ | LibC.PROT_WRITE, LibC.MAP_SHARED | LibC.MAP_POPULATE, _ringFd, offset);
        return m == (void*)-1 ? null : (byte*)m;
    }

    /// <summary>Pins the calling thread to the CPU of its queue, where the kernel queues the requests it will get.</summary>
    public bool PinToQueueCpu()
    {
        if (Queue >= 64)
        {
            return false;
        }

        ulong mask = 1UL << Queue;
        return LibC.sched_setaffinity(0, sizeof(ulong), &mask) == 0;
    }

    public Errno Read(Span<byte> buffer, out int length)
    {
        // The contract of the plain read: the frame at the start of the buffer (a copy; readers use the offset form).
        Errno e = Read(buffer, out int offset, out length);
        if (e == Errno.OK && offset != 0)
        {
            buffer.Slice(offset, length).CopyTo(buffer);
        }

        return e;
    }

    /// <summary>
    /// Sends what is pending (the registration, or the reply to the last request with the fetch of the next) and waits
    /// for the next request. <paramref name="buffer"/> must be <see cref="RequestBuffer"/>: the frame is laid there at
    /// <paramref name="offset"/>. ENODEV once the connection is gone.
    /// </summary>
    public Errno Read(Span<byte> buffer, out int offset, out int length)
    {
        offset = length = 0;
        if (!Unsafe.AreSame(ref buffer.GetPinnableReference(), ref RequestBuffer.Span.GetPinnableReference()))
        {
            return Errno.EINVAL; // the kernel writes into RequestBuffer only
        }

        if (!_inKernel)
        {
            if (_awaitingReply)
            {
                // The dispatcher sent nothing for the last request (an opcode that takes no reply): the entry comes back
                // to the kernel only with a commit, so commit an error the kernel drops for a request without reply.
                WriteOutHeader(-(int)Errno.EIO, _commitId, 0);
                Prepare(CmdCommitAndFetch, _commitId);
            }
            else
            {
                Prepare(CmdRegister, 0);
            }
        }

        while (true)
        {
            uint pending = *_sqTail - Volatile.Read(ref *_sqHead);
            int n = LibC.IoUringEnter(_ringFd, pending, 1, LibC.IORING_ENTER_GETEVENTS);
            if (n < 0)
            {
                Errno e = ErrnoExtensions.LastPInvoke();
                if (e is Errno.EINTR or Errno.EAGAIN)
                {
                    continue;
                }

                return e;
            }

            uint head = *_cqHead;
            if (head == Volatile.Read(ref *_cqTail))
            {
                continue;
            }

            IoUringCqe cqe = _cqes[head & *_cqMask];
            Volatile.Write(ref *_cqHead, head + 1);
            _inKernel = false;
            if (cqe.Res < 0)
            {
                var e = (Errno)(-cqe.Res);
                switch (e)
                {
                    case Errno.ENOTCONN or Errno.ECONNABORTED or Errno.ENODEV or Errno.ECANCELED:
                        return Errno.ENODEV;
                    case Errno.EAGAIN:
                        // REGISTER before the kernel has taken the INIT reply: try again shortly.
                        Thread.Sleep(1);
                        Prepare(CmdRegister, 0);
                        continue;
                    case Errno.ENOENT:
                        // A commit the kernel refused (its request was ended meanwhile): the command did not fetch, so
                        // the entry is registered anew (the old one stays in the kernel unused, pointing nowhere new).
                        RefusedCommits++;
                        Prepare(CmdRegister, 0);
                        continue;
                    default:
                        return e;
                }
            }

            return TakeRequest(out offset, out length);
        }
    }

    private Errno TakeRequest(out int offset, out int length)
    {
        Requests++;
        Span<byte> headers = new(_headers, HeadersSize);
        ulong commitId = BinaryPrimitives.ReadUInt64LittleEndian(headers[(EntInOutOffset + 8)..]);
        uint payload = BinaryPrimitives.ReadUInt32LittleEndian(headers[(EntInOutOffset + 16)..]);
        uint len = BinaryPrimitives.ReadUInt32LittleEndian(headers);
        _commitId = commitId;
        _awaitingReply = true;

        Span<byte> buffer = RequestBuffer.Span;
        long opHeader = (long)len - InHeaderSize - payload;
        if (payload > (uint)_payloadCapacity || opHeader is < 0 or > OpInSize)
        {
            // Lengths that do not add up: hand over the in header alone with len 0, which the dispatcher answers with
            // EIO ("in_header.len differs"), so the entry is committed and comes back.
            offset = PayloadOffset - InHeaderSize;
            length = InHeaderSize;
            headers[..InHeaderSize].CopyTo(buffer[offset..]);
            BinaryPrimitives.WriteUInt32LittleEndian(buffer[offset..], 0);
            return Errno.OK;
        }

        int h = (int)opHeader;
        offset = PayloadOffset - h - InHeaderSize;
        length = (int)len;
        headers[..InHeaderSize].CopyTo(buffer[offset..]);
        headers.Slice(OpInOffset, h).CopyTo(buffer[(PayloadOffset - h)..]);
        return Errno.OK;
    }

    /// <summary>
    /// Lays the reply into the entry (out header into in_out, body into the payload) and queues its COMMIT_AND_FETCH,
    /// which the next <see cref="Read(Span{byte}, out int, out int)"/> submits together with its wait.
    /// </summary>
    public Errno Write(ReadOnlySpan<byte> header, ReadOnlySpan<byte> body)
    {
        if (!_awaitingReply || _inKernel || header.Length != OutHeaderSize)
        {
            return Errno.EINVAL;
        }

        if (body.Length > _payloadCapacity)
        {
            WriteOutHeader(-(int)Errno.EIO, _commitId, 0);
        }
        else
        {
            header.CopyTo(new Span<byte>(_headers, OutHeaderSize));
            body.CopyTo(RequestBuffer.Span[PayloadOffset..]);
            SetPayloadSize((uint)body.Length);
        }

        Prepare(CmdCommitAndFetch, _commitId);
        return Errno.OK;
    }

    private void WriteOutHeader(int error, ulong unique, uint payload)
    {
        Span<byte> h = new(_headers, OutHeaderSize);
        BinaryPrimitives.WriteUInt32LittleEndian(h, OutHeaderSize + payload);
        BinaryPrimitives.WriteInt32LittleEndian(h[4..], error);
        BinaryPrimitives.WriteUInt64LittleEndian(h[8..], unique);
        SetPayloadSize(payload);
    }

    private void SetPayloadSize(uint payload) => BinaryPrimitives.WriteUInt32LittleEndian(new Span<byte>(_headers + EntInOutOffset + 16, 4), payload);

    /// <summary>Writes one URING_CMD SQE (REGISTER or COMMIT_AND_FETCH) into the submission queue; submitted by the next enter.</summary>
    private void Prepare(uint command, ulong commitId)
    {
        uint tail = *_sqTail;
        uint index = tail & *_sqMask;
        byte* sqe = _sqes + (index * SqeSize);
        new Span<byte>(sqe, SqeSize).Clear();
        sqe[0] = LibC.IORING_OP_URING_CMD;
        *(int*)(sqe + 4) = _session.Fd;
        *(uint*)(sqe + 8) = command;                                  // cmd_op
        if (command == CmdRegister)
        {
            *(ulong*)(sqe + 16) = (ulong)(_headers + IovecsOffset);   // addr: iovec[2] = headers, payload
            *(uint*)(sqe + 24) = 2;                                   // len
        }

        *(ulong*)(sqe + 32) = (ulong)Queue;                           // user_data
        *(ulong*)(sqe + SqeCmdOffset + 8) = commitId;                 // fuse_uring_cmd_req.commit_id
        *(ushort*)(sqe + SqeCmdOffset + 16) = (ushort)Queue;          // fuse_uring_cmd_req.qid
        _sqArray[index] = index;
        Volatile.Write(ref *_sqTail, tail + 1);
        _awaitingReply = false;
        _inKernel = true;
    }

    public void Dispose()
    {
        if (_ringFd >= 0)
        {
            LibC.close(_ringFd); // cancels a command still in the kernel (asynchronously: see below)
            _ringFd = -1;
        }

        if (_sqes != null)
        {
            LibC.munmap(_sqes, _sqesSize);
            _sqes = null;
        }

        if (_cqRing != null && _cqRing != _sqRing)
        {
            LibC.munmap(_cqRing, _cqRingSize);
        }

        _cqRing = null;
        if (_sqRing != null)
        {
            LibC.munmap(_sqRing, _sqRingSize);
            _sqRing = null;
        }

        if (!_inKernel)
        {
            // Nothing of ours is in the kernel: its last command completed (or none was sent).
            if (_headers != null)
            {
                NativeMemory.AlignedFree(_headers);
                _headers = null;
            }

            RequestBuffer.Dispose();
        }
        else
        {
            RequestBuffer.Abandon(); // the kernel may still write into it (and the headers page): leak both rather than free them
        }

        if (_sessionRef)
        {
            _session.DangerousRelease();
            _sessionRef = false;
        }
    }
}
