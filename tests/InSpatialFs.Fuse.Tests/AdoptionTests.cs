using System.Diagnostics;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Fuse.Transport;
using InSpatialFs.Interop;
using InSpatialFs.TestKit;

namespace InSpatialFs.Fuse.Tests;

/// <summary>
/// A live connection changes servers underneath its users: a server that stops answering (as a killed one does, its
/// descriptors kept alive by a keeper) is replaced by a new server on the same descriptors, without INIT, and the
/// requests the old one had read are resent to the new one (NOTIFY_RESEND, 7.40) — the callers never see an error.
/// </summary>
[NonParallelizable]
[Category("Mount")]
public sealed class AdoptionTests
{
    /// <summary>"/" holding every name that starts with "file"; lookups of names starting with "held" block while <see cref="Hold"/> is set.</summary>
    private sealed class NamesFileSystem : FuseFileSystemBase
    {
        public readonly ManualResetEventSlim Unblock = new(false);
        public bool Hold;
        public int Holding;
        public int ResentLookups;
        public FuseConnectionInfo? Connection;

        public override void Initialized(FuseConnectionInfo connection) => Connection = connection;

        public override Errno Lookup(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, out FuseEntryOut entry)
        {
            entry = default;
            if ((request.Unique & FuseConstants.UniqueResend) != 0)
            {
                Interlocked.Increment(ref ResentLookups);
            }

            if (name.StartsWith("held"u8) && Hold)
            {
                Interlocked.Increment(ref Holding);
                Unblock.Wait();
                return Errno.EIO; // the old server's late answer: the kernel no longer expects it
            }

            if (!name.StartsWith("file"u8) && !name.StartsWith("held"u8))
            {
                return Errno.ENOENT;
            }

            entry = new FuseEntryOut { NodeId = 2, Generation = 1, Attr = new FuseAttr { Ino = 2, Mode = LibC.S_IFREG | 0x1A4, Nlink = 1, Size = 7 } };
            return Errno.OK;
        }

        public override Errno GetAttr(FuseRequest request, ulong nodeId, ulong? fh, out FuseAttrOut attr)
        {
            attr = new FuseAttrOut { Attr = nodeId == FuseConstants.RootId
                ? new FuseAttr { Ino = 1, Mode = LibC.S_IFDIR | 0x1ED, Nlink = 2 }
                : new FuseAttr { Ino = 2, Mode = LibC.S_IFREG | 0x1A4, Nlink = 1, Size = 7 } };
            return Errno.OK;
        }
    }

    [SetUp]
    public void RequireKernel() => TestMount.RequireRootAndFuse();

    [Test]
    public void A_new_server_adopts_the_connection_and_answers_the_requests_the_stuck_one_had_read()
    {
        var old = new NamesFileSystem { Hold = true };
        using var mount = TestMount.Start(old, serverOptions: new ProtocolServerOptions { ReaderThreads = 2 });
        Assert.That(TestMount.Run("stat", "-c", "%s", Path.Combine(mount.Path, "file-before")).ExitCode, Is.Zero, "served by the first server");
        FuseConnectionInfo negotiated = mount.Server.Connection!;
        if (!negotiated.CanResend)
        {
            Assert.Ignore("this kernel does not offer FUSE_HAS_RESEND (7.40+)");
        }

        // Both readers of the old server take a request and never answer it: one on the session descriptor, one on its clone.
        using Process first = Stat(mount.Path, "held-1");
        using Process second = Stat(mount.Path, "held-2");
        Assert.That(SpinWait.SpinUntil(() => Volatile.Read(ref old.Holding) == 2, TimeSpan.FromSeconds(10)), Is.True, "both readers hold a request");
        Assert.That(first.HasExited || second.HasExited, Is.False, "the callers wait for an answer");

        // What a keeper holds: a copy of every descriptor, so the requests read on each stay queued on the connection.
        IReadOnlyList<SafeFd> kept = mount.Mount.Device.DuplicateDescriptors();
        Assert.That(kept, Has.Count.EqualTo(2), "the session descriptor and one clone");
        var adopter = new NamesFileSystem();
        var device = new FuseDevice(kept[0]);
        var server = new ProtocolServer(device, adopter, new ProtocolServerOptions { ReaderThreads = 2, Adopt = negotiated.Parameters });
        try
        {
            server.Start();

            Assert.That(first.WaitForExit(10_000) && second.WaitForExit(10_000), Is.True, "the resent lookups were answered by the new server");
            Assert.That((first.ExitCode, first.StandardOutput.ReadToEnd().Trim()), Is.EqualTo((0, "7")), first.StandardError.ReadToEnd());
            Assert.That((second.ExitCode, second.StandardOutput.ReadToEnd().Trim()), Is.EqualTo((0, "7")), second.StandardError.ReadToEnd());
            Assert.That(adopter.ResentLookups, Is.GreaterThanOrEqualTo(2), "the kernel marked them as resent (bit 63 of unique)");
            Assert.That(old.Holding, Is.EqualTo(2), "the old server answered neither");
            Assert.That(adopter.Connection, Is.Not.Null);
            Assert.That((adopter.Connection!.Adopted, adopter.Connection.NegotiatedMinor, adopter.Connection.MaxWrite),
                Is.EqualTo((true, negotiated.NegotiatedMinor, negotiated.MaxWrite)));

            // New requests go to the new server too; the old one's readers are still stuck in their handlers.
            (int exit, string size, string err) = TestMount.Run("stat", "-c", "%s", Path.Combine(mount.Path, "file-after"));
            Assert.That((exit, size.Trim()), Is.EqualTo((0, "7")), err);
            Assert.That(TestMount.Run("stat", Path.Combine(mount.Path, "missing")).ExitCode, Is.Not.Zero, "answered, not hung: ENOENT");

            // Once resent, the requests no longer sit on the clone's queue: the keeper's copy of it can go.
            kept[1].Dispose();
            Assert.That(TestMount.Run("stat", "-c", "%s", Path.Combine(mount.Path, "file-last")).ExitCode, Is.Zero);
        }
        finally
        {
            old.Unblock.Set();
            mount.Dispose();
            server.Completion.Wait(TimeSpan.FromSeconds(10));
            device.Dispose();
            kept[1].Dispose();
        }
    }

    private static Process Stat(string mountPath, string name)
    {
        var start = new ProcessStartInfo("stat", ["-c", "%s", Path.Combine(mountPath, name)])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        return Process.Start(start)!;
    }
}
