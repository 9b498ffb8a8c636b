using InSpatialFs.Fuse.Abi;
using InSpatialFs.Fuse.Transport;
using InSpatialFs.Interop;
using InSpatialFs.TestKit;

namespace InSpatialFs.Fuse.Tests;

/// <summary>
/// Spliced READ replies (IFuseSplicedRead) through the protocol server with real pipes and a real host file: the
/// fake kernel's channel takes replies out of the server's reply pipe as fuse_dev_splice_write would. Every READ is
/// answered exactly once, with an out-header length of 16 + the bytes really read, and any failure leaves the pipes
/// empty for the next request.
/// </summary>
[NonParallelizable]
public sealed class SplicedReadTests
{
    private const int FileSize = 300_000;
    private string _path = "";
    private byte[] _data = [];
    private SplicingFileSystem _fs = null!;
    private FakeKernel _kernel = null!;

    [SetUp]
    public void SetUp()
    {
        _path = Path.Combine(Path.GetTempPath(), "inspatialfs-splice-" + Guid.NewGuid().ToString("N"));
        _data = new byte[FileSize];
        new Random(3).NextBytes(_data);
        File.WriteAllBytes(_path, _data);
        _fs = new SplicingFileSystem(_path);
        _kernel = new FakeKernel(_fs);
        Assert.That(_kernel.Init().Error, Is.EqualTo(Errno.OK));
    }

    [TearDown]
    public void TearDown()
    {
        _kernel.Dispose();
        _fs.Dispose();
        File.Delete(_path);
    }

    private FuseReply Read(long offset, uint size) =>
        _kernel.Call(FuseOpcode.Read, 5, FuseArgs.Of(new FuseReadIn { Fh = 9, Offset = (ulong)offset, Size = size }));

    private void AssertHoldsFileBytes(FuseReply reply, long offset, int expectedLength)
    {
        Assert.That(reply.Error, Is.EqualTo(Errno.OK));
        Assert.That(reply.Header.Len, Is.EqualTo(16 + expectedLength), "out header len = 16 + bytes read");
        Assert.That(reply.Raw, Has.Length.EqualTo(16 + expectedLength), "the frame is exactly as long as its header says");
        Assert.That(reply.Body, Is.EqualTo(_data.AsSpan((int)offset, expectedLength).ToArray()));
    }

    [TestCase(0, 131072u)]
    [TestCase(4096, 4096u)]
    [TestCase(777, 65536u)]
    [TestCase(8191, 1u)]
    public void A_spliced_reply_carries_the_file_bytes_behind_a_header_of_16_plus_their_length(long offset, uint size)
    {
        AssertHoldsFileBytes(Read(offset, size), offset, (int)size);
        Assert.That(_kernel.Transport.SplicedReplies, Is.EqualTo(1), "the reply came through the pipe");
        Assert.That(_fs.CopyReads, Is.Zero, "no copy through managed memory");
        Assert.That(_kernel.Server.SplicedReadReplies, Is.EqualTo(1));
    }

    [Test]
    public void At_end_of_file_the_reply_is_short_with_its_true_length_and_past_it_empty()
    {
        AssertHoldsFileBytes(Read(FileSize - 1000, 131072), FileSize - 1000, 1000);
        AssertHoldsFileBytes(Read(FileSize, 131072), FileSize, 0);
        AssertHoldsFileBytes(Read(FileSize + 5000, 4096), FileSize, 0);
        Assert.That(_fs.CopyReads, Is.Zero);
    }

    [Test]
    public void A_request_bigger_than_the_pipe_takes_the_copy_path()
    {
        AssertHoldsFileBytes(Read(0, 4 << 20), 0, FileSize); // 1024 pages + the header's slot: more than any pipe the server makes
        Assert.That(_fs.CopyReads, Is.EqualTo(1));
        Assert.That(_fs.SpliceCalls, Is.Zero, "not even offered to the file system");
    }

    [Test]
    public void A_read_the_file_system_declines_is_copied()
    {
        _fs.Decline = true;
        AssertHoldsFileBytes(Read(100, 4096), 100, 4096);
        Assert.That(_fs.CopyReads, Is.EqualTo(1));
        Assert.That(_kernel.Transport.SplicedReplies, Is.Zero);
    }

    [Test]
    public void No_pipe_is_made_while_the_file_system_wants_no_spliced_reads()
    {
        _fs.Wanted = false;
        AssertHoldsFileBytes(Read(0, 4096), 0, 4096);
        Assert.That(_fs.SpliceCalls, Is.Zero);
        Assert.That(_fs.CopyReads, Is.EqualTo(1));
    }

    [Test]
    public void A_source_the_splice_cannot_read_is_answered_by_the_copy_path_and_the_next_reply_is_clean()
    {
        _fs.NameUnreadableSource = true; // a write-only descriptor: splice(2) refuses it
        AssertHoldsFileBytes(Read(0, 65536), 0, 65536);
        Assert.That(_fs.CopyReads, Is.EqualTo(1), "answered by copy");
        _fs.NameUnreadableSource = false;
        AssertHoldsFileBytes(Read(65536, 65536), 65536, 65536);
        Assert.That(_kernel.Transport.SplicedReplies, Is.EqualTo(1), "no stale byte of the failed attempt leaked into this reply");
        Assert.That(_fs.SplicedBytes, Is.EqualTo(65536), "only the bytes really spliced were reported");
    }

    [Test]
    public void A_read_the_file_system_refuses_is_answered_by_the_copy_path()
    {
        _fs.Refuse = Errno.EIO;
        AssertHoldsFileBytes(Read(0, 4096), 0, 4096);
        Assert.That((_fs.SpliceCalls, _fs.CopyReads), Is.EqualTo((1, 1)));
        Assert.That(_kernel.Transport.SplicedReplies, Is.Zero);
    }

    [Test]
    public void A_reply_the_channel_refuses_is_answered_by_the_copy_path_and_the_pipes_start_clean_again()
    {
        _kernel.Transport.SpliceFailure = Errno.EINVAL;
        AssertHoldsFileBytes(Read(0, 32768), 0, 32768);
        Assert.That(_fs.CopyReads, Is.EqualTo(1));
        _kernel.Transport.SpliceFailure = Errno.OK;
        AssertHoldsFileBytes(Read(40000, 32768), 40000, 32768);
        Assert.That(_kernel.Transport.SplicedReplies, Is.EqualTo(1));
    }

    [Test]
    public void A_reply_to_an_interrupted_request_is_not_sent_twice()
    {
        _kernel.Transport.SpliceFailure = Errno.ENOENT; // the kernel took it and found the request gone
        ulong unique = _kernel.Send(FuseOpcode.Read, 5, FuseArgs.Of(new FuseReadIn { Fh = 9, Offset = 0, Size = 8192 }));
        _kernel.Call(FuseOpcode.StatFs, 1); // one reader serves in order: once this is answered, the READ was handled
        Assert.That(_kernel.RepliesTo(unique), Is.Empty, "no second answer through the copy path");
        Assert.That(_fs.CopyReads, Is.Zero);
        _kernel.Transport.SpliceFailure = Errno.OK;
        AssertHoldsFileBytes(Read(8192, 8192), 8192, 8192);
    }

    [Test]
    public void Pipe_capacity_counts_the_pages_a_read_touches_plus_the_header()
    {
        Assert.That(SplicePipes.TryCreate(1 << 20, out SplicePipes? pipes), Is.EqualTo(Errno.OK));
        using (pipes)
        {
            // 256 pages (1 MiB, pipe-max-size) without CAP_SYS_RESOURCE; one page more with it.
            Assert.That(pipes!.Slots, Is.InRange(256, 257));
            int page = Environment.SystemPageSize, slots = pipes.Slots;
            Assert.That(SplicePipes.PagesSpanned(0, page), Is.EqualTo(1));
            Assert.That(SplicePipes.PagesSpanned(page - 1, 2), Is.EqualTo(2));
            Assert.That(SplicePipes.PagesSpanned(10, 0), Is.Zero);
            Assert.That(pipes.Fits(0, (uint)((slots - 1) * page)), Is.True);
            Assert.That(pipes.Fits(0, (uint)(slots * page)), Is.False, "no slot left for the header");
            Assert.That(pipes.Fits(1, (uint)((slots - 1) * page)), Is.False, "an unaligned read touches one more page");
            Assert.That(pipes.Fits(-1, 1), Is.False);

            using var file = File.OpenHandle(_path);
            int fd = (int)file.DangerousGetHandle();
            Assert.That(pipes.SpliceFrom(fd, 0, slots * page, out int moved), Is.EqualTo(Errno.EFBIG), "refused before moving a byte");
            Assert.That((moved, pipes.Length, pipes.IsEmpty), Is.EqualTo((0, 0, true)));
            Assert.That(pipes.SpliceFrom(fd, 100, 5000, out moved), Is.EqualTo(Errno.OK));
            Assert.That((moved, pipes.Length, pipes.IsEmpty), Is.EqualTo((5000, 5000, false)));
            pipes.Drain(new byte[65536]);
            Assert.That((pipes.Length, pipes.IsEmpty), Is.EqualTo((0, true)));
        }
    }

    /// <summary>A one-file file system over a real host descriptor: READ by splice, or by pread when asked to copy.</summary>
    private sealed class SplicingFileSystem(string path) : FuseFileSystemBase, IFuseSplicedRead, IDisposable
    {
        private readonly SafeFd _fd = Open(path, LibC.O_RDONLY);
        private readonly SafeFd _writeOnly = Open(path, LibC.O_WRONLY);

        public bool Wanted { get; set; } = true;

        public bool Decline { get; set; }

        /// <summary>Answer with this errno instead of a source (OK: name the file).</summary>
        public Errno Refuse { get; set; }

        /// <summary>Name a descriptor splice(2) cannot read from.</summary>
        public bool NameUnreadableSource { get; set; }

        public int CopyReads { get; private set; }

        public int SpliceCalls { get; private set; }

        public long SplicedBytes { get; private set; }

        public bool SplicedReadsWanted => Wanted;

        private static SafeFd Open(string path, int flags)
        {
            Assert.That(LibC.OpenFd(path, flags, 0, out SafeFd fd), Is.EqualTo(Errno.OK));
            return fd;
        }

        public bool TryReadSpliced(FuseRequest request, ulong nodeId, ulong fh, long offset, int size, out SplicedReadSource source, out Errno result)
        {
            SpliceCalls++;
            source = default;
            result = Refuse;
            if (Decline)
            {
                return false;
            }

            if (result == Errno.OK && !SplicedReadSource.TryLease(NameUnreadableSource ? _writeOnly : _fd, offset, size, out source))
            {
                result = Errno.EBADF;
            }

            return true;
        }

        public void ReadSpliced(FuseRequest request, ulong fh, int bytes) => SplicedBytes += bytes;

        public override Errno Read(FuseRequest request, ulong nodeId, ulong fh, long offset, Span<byte> buffer, out int bytesRead)
        {
            CopyReads++;
            bytesRead = RandomAccess.Read(new Microsoft.Win32.SafeHandles.SafeFileHandle(_fd.DangerousGetHandle(), ownsHandle: false), buffer, offset);
            return Errno.OK;
        }

        public void Dispose()
        {
            _fd.Dispose();
            _writeOnly.Dispose();
        }
    }
}
