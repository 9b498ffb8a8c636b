using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.TestKit;

namespace InSpatialFs.Fuse.Tests;

/// <summary>INIT: version rules, the flags asked for, INIT_EXT/flags2, passthrough offered or not.</summary>
public sealed class InitNegotiationTests
{
    private const FuseInitFlags Expected =
        FuseInitFlags.AsyncRead | FuseInitFlags.BigWrites | FuseInitFlags.AtomicOTrunc | FuseInitFlags.ParallelDirops
        | FuseInitFlags.DoReaddirplus | FuseInitFlags.ReaddirplusAuto | FuseInitFlags.ExportSupport | FuseInitFlags.HandleKillprivV2
        | FuseInitFlags.MaxPages | FuseInitFlags.CacheSymlinks | FuseInitFlags.SetxattrExt | FuseInitFlags.InitExt | FuseInitFlags.Passthrough;

    private static FuseInitFlags Flags(in FuseInitOut o) => (FuseInitFlags)(o.Flags | ((ulong)o.Flags2 << 32));

    /// <summary>The server has called Initialized once a later request is answered (one reader).</summary>
    private static FuseConnectionInfo? ConnectionSeenBy(FakeKernel kernel, RecordingFileSystem fs)
    {
        kernel.Call(FuseOpcode.StatFs, 1);
        return fs.Connection;
    }

    [Test]
    public void Against_the_6_18_offer_the_reply_asks_for_the_v1_feature_set_with_1_MiB_writes_and_passthrough()
    {
        var fs = new RecordingFileSystem();
        using var kernel = new FakeKernel(fs);
        FuseReply reply = kernel.Init();
        FuseInitOut init = reply.As<FuseInitOut>();

        Assert.That(reply.Body, Has.Length.EqualTo(64), "all 64 bytes of fuse_init_out");
        Assert.That((init.Major, init.Minor), Is.EqualTo((7u, 45u)));
        Assert.That(Flags(init), Is.EqualTo(Expected));
        Assert.That((init.MaxWrite, init.MaxPages, init.MaxReadahead, init.MaxStackDepth, init.TimeGran), Is.EqualTo((1u << 20, (ushort)256, 131072u, 1u, 1u)));
        Assert.That((init.MaxBackground, init.CongestionThreshold), Is.EqualTo(((ushort)12, (ushort)9)));

        FuseConnectionInfo? info = ConnectionSeenBy(kernel, fs);
        Assert.That(info, Is.Not.Null);
        Assert.That(info!.KernelFlags, Is.EqualTo((ulong)FakeKernel.Kernel618Offer));
        Assert.That(info.ReplyFlags, Is.EqualTo((ulong)Expected));
        Assert.That((info.KernelMinor, info.NegotiatedMinor, info.MaxWrite, info.PassthroughEnabled), Is.EqualTo((45u, 45u, 1u << 20, true)));
        Assert.That(info.Notifier, Is.Not.Null);
    }

    [Test]
    public void Flags_the_kernel_offers_but_v1_does_not_want_stay_off()
    {
        using var kernel = new FakeKernel(new RecordingFileSystem());
        FuseInitFlags reply = Flags(kernel.Init(offered: (FuseInitFlags)ulong.MaxValue).As<FuseInitOut>());
        Assert.That(reply & (FuseInitFlags.WritebackCache | FuseInitFlags.PosixLocks | FuseInitFlags.DontMask | FuseInitFlags.FlockLocks
            | FuseInitFlags.AllowIdmap | FuseInitFlags.OverIoUring | FuseInitFlags.RequestTimeout | FuseInitFlags.SecurityCtx), Is.EqualTo(FuseInitFlags.None));
    }

    [TestCase(50u, 45u)]
    [TestCase(45u, 45u)]
    [TestCase(38u, 38u)]
    [TestCase(31u, 31u)]
    public void The_minor_is_the_smaller_of_the_kernels_and_ours(uint kernelMinor, uint expected)
    {
        using var kernel = new FakeKernel(new RecordingFileSystem());
        Assert.That(kernel.Init(minor: kernelMinor).As<FuseInitOut>().Minor, Is.EqualTo(expected));
    }

    [Test]
    public void A_newer_major_is_answered_with_major_7_only_and_the_second_INIT_negotiates()
    {
        var fs = new RecordingFileSystem();
        using var kernel = new FakeKernel(fs);
        FuseInitOut first = kernel.Init(major: 8, minor: 3).As<FuseInitOut>();
        Assert.That((first.Major, first.Flags, first.Flags2, first.MaxWrite), Is.EqualTo((7u, 0u, 0u, 0u)));
        Assert.That(kernel.Server.Connection, Is.Null, "not initialized by the major-8 INIT");

        FuseInitOut second = kernel.Init().As<FuseInitOut>();
        Assert.That((second.Major, second.Minor, second.MaxWrite), Is.EqualTo((7u, 45u, 1u << 20)));
        Assert.That(ConnectionSeenBy(kernel, fs), Is.Not.Null);
    }

    [TestCase(6u, 45u)]
    [TestCase(7u, 30u)]
    public void Too_old_a_protocol_is_refused_with_EPROTO_and_a_later_good_INIT_still_works(uint major, uint minor)
    {
        using var kernel = new FakeKernel(new RecordingFileSystem());
        Assert.That(kernel.Init(major: major, minor: minor).Error, Is.EqualTo(Errno.EPROTO));
        Assert.That(kernel.Init().Error, Is.EqualTo(Errno.OK));
    }

    [Test]
    public void Without_INIT_EXT_in_the_offer_no_flags2_bit_is_sent_and_passthrough_is_off()
    {
        var fs = new RecordingFileSystem();
        using var kernel = new FakeKernel(fs);
        FuseInitFlags offer = FakeKernel.Kernel618Offer & ~FuseInitFlags.InitExt;
        FuseInitOut init = kernel.Init(offered: offer).As<FuseInitOut>();
        Assert.That(init.Flags2, Is.Zero);
        Assert.That(Flags(init).HasFlag(FuseInitFlags.InitExt), Is.False);
        Assert.That(init.MaxStackDepth, Is.Zero);
        Assert.That(ConnectionSeenBy(kernel, fs)!.PassthroughEnabled, Is.False);
    }

    [Test]
    public void Passthrough_not_offered_means_not_enabled_and_no_backing_registrar()
    {
        var fs = new RecordingFileSystem();
        using var kernel = new FakeKernel(fs);
        FuseInitOut init = kernel.Init(offered: FakeKernel.Kernel618Offer & ~FuseInitFlags.Passthrough).As<FuseInitOut>();
        Assert.That(Flags(init).HasFlag(FuseInitFlags.Passthrough), Is.False);
        Assert.That(init.MaxStackDepth, Is.Zero);
        FuseConnectionInfo info = ConnectionSeenBy(kernel, fs)!;
        Assert.That((info.PassthroughEnabled, info.Backing), Is.EqualTo((false, (IBackingRegistrar?)null)));
        Assert.That(info.KernelFlags & (ulong)FuseInitFlags.Passthrough, Is.Zero);
    }

    [Test]
    public void The_daemon_can_turn_passthrough_off_although_the_kernel_offers_it()
    {
        var fs = new RecordingFileSystem();
        var options = new ProtocolServerOptions { ReaderThreads = 1, WantedFlags = ProtocolServerOptions.DefaultWantedFlags & ~FuseInitFlags.Passthrough };
        using var kernel = new FakeKernel(fs, options);
        Assert.That(Flags(kernel.Init().As<FuseInitOut>()).HasFlag(FuseInitFlags.Passthrough), Is.False);
        FuseConnectionInfo info = ConnectionSeenBy(kernel, fs)!;
        Assert.That(info.PassthroughEnabled, Is.False);
        Assert.That(info.KernelFlags & (ulong)FuseInitFlags.Passthrough, Is.Not.Zero, "what was offered is still recorded");
    }

    [Test]
    public void Passthrough_is_dropped_when_writeback_cache_is_wanted_too()
    {
        var options = new ProtocolServerOptions { ReaderThreads = 1, WantedFlags = ProtocolServerOptions.DefaultWantedFlags | FuseInitFlags.WritebackCache };
        using var kernel = new FakeKernel(new RecordingFileSystem(), options);
        FuseInitFlags reply = Flags(kernel.Init().As<FuseInitOut>());
        Assert.That((reply.HasFlag(FuseInitFlags.WritebackCache), reply.HasFlag(FuseInitFlags.Passthrough)), Is.EqualTo((true, false)));
    }

    [Test]
    public void Passthrough_hands_the_transports_registrar_to_the_file_system()
    {
        var fs = new RecordingFileSystem();
        using var kernel = new FakeKernel(fs);
        var registrar = new CountingRegistrar();
        kernel.Transport.BackingRegistrar = registrar;
        kernel.Init();
        Assert.That(ConnectionSeenBy(kernel, fs)!.Backing, Is.SameAs(registrar));
    }

    [Test]
    public void Without_SETXATTR_EXT_setxattr_in_is_the_8_byte_compat_struct()
    {
        var fs = new RecordingFileSystem();
        using var kernel = new FakeKernel(fs);
        kernel.Init(offered: FakeKernel.Kernel618Offer & ~FuseInitFlags.SetxattrExt);
        kernel.Call(FuseOpcode.SetXattr, 5, FuseArgs.Of(new FuseGetxattrIn { Size = 2, Padding = 2 }).Name("user.x").Raw("hi"u8));
        Assert.That(fs.Calls.Last(), Is.EqualTo("SetXattr 5 user.x=hi flags=2"));
    }

    [Test]
    public void Requests_before_INIT_get_EIO_and_a_second_INIT_gets_EIO()
    {
        using var kernel = new FakeKernel(new RecordingFileSystem());
        Assert.That(kernel.Call(FuseOpcode.Lookup, 1, FuseArgs.Empty.Name("x")).Error, Is.EqualTo(Errno.EIO));
        Assert.That(kernel.Init().Error, Is.EqualTo(Errno.OK));
        Assert.That(kernel.Init().Error, Is.EqualTo(Errno.EIO));
    }

    [Test]
    public void Initialized_is_called_before_any_other_request_is_served()
    {
        var fs = new RecordingFileSystem();
        var options = new ProtocolServerOptions { ReaderThreads = 4 };
        using var kernel = new FakeKernel(fs, options);
        ulong init = kernel.Send(FuseOpcode.Init, 0, FuseArgs.Of(FakeKernel.InitIn()));
        var lookups = Enumerable.Range(0, 20).Select(_ => kernel.Send(FuseOpcode.Lookup, 1, FuseArgs.Empty.Name("a"))).ToList();
        kernel.WaitReply(init);
        lookups.ForEach(u => kernel.WaitReply(u));
        Assert.That(fs.Calls.First(), Is.EqualTo("Initialized"));
        Assert.That(fs.Calls.Count(c => c == "Initialized"), Is.EqualTo(1));
        Assert.That(() => kernel.Transport.ChannelCount, Is.GreaterThanOrEqualTo(2).After(5000).MilliSeconds.PollEvery(20).MilliSeconds, "reader 1 starts after INIT");
        Assert.That(kernel.Transport.ChannelCount, Is.LessThanOrEqualTo(4), "never more than ReaderThreads");
    }

    private sealed class CountingRegistrar : IBackingRegistrar
    {
        public Errno Open(SafeFd fd, out int backingId)
        {
            backingId = 1;
            return Errno.OK;
        }

        public Errno Close(int backingId) => Errno.OK;
    }
}
