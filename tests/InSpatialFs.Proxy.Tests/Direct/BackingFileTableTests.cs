using InSpatialFs.Fuse;
using InSpatialFs.Interop;
using InSpatialFs.Proxy.Direct;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Proxy.Tests.Direct;

[TestFixture]
public sealed class BackingFileTableTests
{
    /// <summary>Stands in for FUSE_DEV_IOC_BACKING_OPEN/CLOSE: hands out 1, 2, 3... or a configured errno.</summary>
    private sealed class FakeRegistrar : IBackingRegistrar
    {
        private int _next;
        public Errno FailWith { get; set; }
        public List<int> Opened { get; } = [];
        public List<int> Closed { get; } = [];
        public int OpenCalls;

        public Errno Open(SafeFd fd, out int backingId)
        {
            Interlocked.Increment(ref OpenCalls);
            backingId = 0;
            if (FailWith != Errno.OK) return FailWith;
            backingId = Interlocked.Increment(ref _next);
            lock (Opened) Opened.Add(backingId);
            return Errno.OK;
        }

        public Errno Close(int backingId)
        {
            lock (Closed) Closed.Add(backingId);
            return Errno.OK;
        }
    }

    private static SafeFd AnyFd() => new(-1, ownsHandle: false);

    private sealed class CountingLogger : ILogger
    {
        public List<(LogLevel Level, int EventId, string Text)> Lines { get; } = [];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            => Lines.Add((logLevel, eventId.Id, formatter(state, exception)));
    }

    [Test]
    public void Fallback_prints_one_warning_line()
    {
        var log = new CountingLogger();
        var table = new BackingFileTable(new FakeRegistrar { FailWith = Errno.EPERM }, log);
        for (ulong i = 0; i < 5; i++) table.Acquire(i, AnyFd(), out _);
        Assert.That(log.Lines, Has.Count.EqualTo(1));
        Assert.That(log.Lines[0].Level, Is.EqualTo(LogLevel.Warning));
        Assert.That(log.Lines[0].EventId, Is.EqualTo(2110));
        Assert.That(log.Lines[0].Text, Does.Contain("EPERM").And.Contain("proxied"));
    }

    [Test]
    public void A_spliced_fallback_is_the_mode_shown_once_passthrough_is_refused()
    {
        var log = new CountingLogger();
        var table = new BackingFileTable(new FakeRegistrar { FailWith = Errno.EPERM }, log, DirectMode.Spliced);
        Assert.That(table.Mode.DisplayName(), Is.EqualTo("kernel-passthrough"));
        Assert.That(table.Acquire(1, AnyFd(), out _), Is.EqualTo(Errno.EPERM));
        Assert.That(table.Mode, Is.EqualTo(DirectMode.Spliced));
        Assert.That(table.Mode.DisplayName(), Is.EqualTo("spliced"));
        Assert.That(log.Lines, Has.Count.EqualTo(1));
        Assert.That(log.Lines[0].Text, Does.Contain("direct: spliced"));
    }

    [Test]
    public void Kernel_passthrough_is_not_a_fallback()
    {
        Assert.That(() => new BackingFileTable(new FakeRegistrar(), fallback: DirectMode.KernelPassthrough), Throws.TypeOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public void Opens_of_one_inode_share_one_backing_id_closed_at_the_last_release()
    {
        var reg = new FakeRegistrar();
        var table = new BackingFileTable(reg);
        Assert.That(table.Acquire(7, AnyFd(), out int a), Is.EqualTo(Errno.OK));
        Assert.That(table.Acquire(7, AnyFd(), out int b), Is.EqualTo(Errno.OK));
        Assert.That(table.Acquire(8, AnyFd(), out int c), Is.EqualTo(Errno.OK));
        Assert.That(b, Is.EqualTo(a));
        Assert.That(c, Is.Not.EqualTo(a));
        Assert.That(reg.OpenCalls, Is.EqualTo(2));
        table.Release(7);
        Assert.That(reg.Closed, Is.Empty, "one open of inode 7 remains");
        table.Release(7);
        Assert.That(reg.Closed, Is.EqualTo(new[] { a }));
        Assert.That(table.TryGetBackingId(7, out _), Is.False);
        Assert.That(table.TryGetBackingId(8, out int still), Is.True);
        Assert.That(still, Is.EqualTo(c));
        table.Release(7);
        Assert.That(reg.Closed, Has.Count.EqualTo(1), "extra releases are ignored");
    }

    [Test]
    public void Reopen_after_the_last_release_registers_again()
    {
        var reg = new FakeRegistrar();
        var table = new BackingFileTable(reg);
        table.Acquire(1, AnyFd(), out int first);
        table.Release(1);
        table.Acquire(1, AnyFd(), out int second);
        Assert.That(second, Is.Not.EqualTo(first));
        Assert.That(table.Count, Is.EqualTo(1));
    }

    [TestCase(Errno.EPERM)]
    [TestCase(Errno.EINVAL)]
    [TestCase(Errno.ENOTTY)]
    public void Refused_registration_switches_to_proxied_mode_once_and_for_all(Errno refusal)
    {
        var reg = new FakeRegistrar { FailWith = refusal };
        var table = new BackingFileTable(reg);
        var warnings = new List<Errno>();
        table.PassthroughUnavailable += warnings.Add;
        Assert.That(table.Mode, Is.EqualTo(DirectMode.KernelPassthrough));
        Assert.That(table.Acquire(1, AnyFd(), out int id), Is.EqualTo(refusal));
        Assert.That(id, Is.Zero);
        reg.FailWith = Errno.OK;
        Assert.That(table.Acquire(2, AnyFd(), out _), Is.EqualTo(refusal), "remembered: no further attempts");
        Assert.Multiple(() =>
        {
            Assert.That(reg.OpenCalls, Is.EqualTo(1));
            Assert.That(table.Mode, Is.EqualTo(DirectMode.Proxied));
            Assert.That(table.Mode.DisplayName(), Is.EqualTo("proxied"));
            Assert.That(table.UnavailableReason, Is.EqualTo(refusal));
            Assert.That(warnings, Is.EqualTo(new[] { refusal }), "one warning");
        });
    }

    [Test]
    public void Other_errors_fail_only_that_open()
    {
        var reg = new FakeRegistrar { FailWith = Errno.EISDIR };
        var table = new BackingFileTable(reg);
        Assert.That(table.Acquire(1, AnyFd(), out _), Is.EqualTo(Errno.EISDIR));
        reg.FailWith = Errno.OK;
        Assert.That(table.Acquire(2, AnyFd(), out int id), Is.EqualTo(Errno.OK));
        Assert.That(id, Is.GreaterThan(0));
        Assert.That(table.Mode, Is.EqualTo(DirectMode.KernelPassthrough));
        Assert.That(table.Mode.DisplayName(), Is.EqualTo("kernel-passthrough"));
    }

    [Test]
    public void Concurrent_opens_and_releases_register_each_inode_once_per_lifetime()
    {
        var reg = new FakeRegistrar();
        var table = new BackingFileTable(reg);
        Parallel.For(0, 8, _ =>
        {
            for (int i = 0; i < 2000; i++)
            {
                ulong key = (ulong)(i % 4);
                Assert.That(table.Acquire(key, AnyFd(), out int id), Is.EqualTo(Errno.OK));
                Assert.That(id, Is.GreaterThan(0));
            }
        });
        Assert.That(reg.OpenCalls, Is.EqualTo(4));
        Parallel.For(0, 8, _ =>
        {
            for (int i = 0; i < 2000; i++) table.Release((ulong)(i % 4));
        });
        Assert.That(table.Count, Is.Zero);
        Assert.That(reg.Closed, Is.EquivalentTo(reg.Opened));
    }
}
