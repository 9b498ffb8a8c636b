using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Storage;
using InSpatialFs.Storage.Memory;
using InSpatialFs.Storage.Mounts;
using InSpatialFs.TestKit;
using Microsoft.Extensions.Logging.Abstractions;

namespace InSpatialFs.Proxy.Tests.Stack;

/// <summary>
/// A backend's escape refusal is a result, not a side channel (issue 12): the proxy turns
/// <see cref="BackendResult.EscapeRefused"/> into one escape event with the caller's pid and the full namespace path, and
/// the kernel gets EACCES. The host backend's own refusals are pinned in HostEscapeTests; no name the kernel can send
/// gets past the proxy's name check to provoke one, so a backend that refuses names starting with "trap" stands in.
/// </summary>
[TestFixture]
public sealed class EscapeResultStackTests
{
    [Test]
    public void An_escape_result_becomes_an_escape_event_with_pid_and_full_path_and_EACCES()
    {
        using var memory = new MemoryFileSystem();
        using var backend = new RefusingBackend(memory);
        var gate = new RecordingGate();
        var table = MountTable.Create([new MountEntry("/", backend, ReadOnly: false, Direct: false, MountKind.Memory)]);
        using var proxy = new SecureProxy(table, gate, new ProxyOptions(), NullLogger.Instance);
        using var kernel = new FakeKernel(proxy);
        Assert.That(kernel.Init().Error, Is.EqualTo(Errno.OK));
        var k = new FrameSender(kernel, 0, 0, 4_242_001);

        ulong dir = StackHarness.Ok(k.MkDir(StackHarness.Root, "d")).As<FuseEntryOut>().NodeId;
        Assert.That(k.MkDir(dir, "plain").Error, Is.EqualTo(Errno.OK), "positive control: the same call without the trap");
        Assert.That(k.Lookup(dir, "trap-lookup").Error, Is.EqualTo(Errno.EACCES));
        Assert.That(k.MkDir(dir, "trap-mkdir").Error, Is.EqualTo(Errno.EACCES));
        Assert.That(k.Create(dir, "trap-create").Error, Is.EqualTo(Errno.EACCES));

        FsEvent[] escapes;
        lock (gate.Recorded)
        {
            escapes = [.. gate.Recorded.Where(e => e.Op == FsOp.Escape)];
        }

        Assert.That(escapes.Select(e => e.Path), Is.EqualTo(new[] { "/d/trap-lookup", "/d/trap-mkdir", "/d/trap-create" }));
        Assert.That(escapes.Select(e => (e.Pid, e.Decision, e.Result, e.Reason)),
            Is.All.EqualTo((4_242_001, Decision.Deny, (int)Errno.EACCES, "host path refused by RESOLVE_BENEATH")));
        lock (gate.Recorded)
        {
            Assert.That(gate.Recorded.Where(e => e.Op == FsOp.MkDir && e.Path == "/d/trap-mkdir").Select(e => e.Result),
                Is.EqualTo(new[] { (int)Errno.EACCES }), "the operation's own event has the kernel's errno, never the backend's result");
        }
    }

    /// <summary>A memory backend whose Lookup, MkDir and Create of names starting with "trap" answer the escape result.</summary>
    private sealed class RefusingBackend(MemoryFileSystem inner) : IFileSystemBackend
    {
        private static bool Trap(ReadOnlySpan<byte> name) => name.StartsWith("trap"u8);

        public string Kind => inner.Kind;
        public ulong RootIno => inner.RootIno;
        public InodeIdentity IdentityOf(ulong ino) => inner.IdentityOf(ino);

        public Errno Lookup(ulong parent, ReadOnlySpan<byte> name, out FuseAttr attr)
        {
            attr = default;
            return Trap(name) ? BackendResult.EscapeRefused : inner.Lookup(parent, name, out attr);
        }

        public bool Retain(ulong ino) => inner.Retain(ino);
        public void Release(ulong ino) => inner.Release(ino);
        public Errno GetAttr(ulong ino, out FuseAttr attr) => inner.GetAttr(ino, out attr);
        public Errno SetAttr(ulong ino, in AttrChange change, in Caller caller, out FuseAttr attr) => inner.SetAttr(ino, change, caller, out attr);
        public Errno ReadLink(ulong ino, Span<byte> buffer, out int length) => inner.ReadLink(ino, buffer, out length);
        public Errno Symlink(ulong parent, ReadOnlySpan<byte> name, ReadOnlySpan<byte> target, in Caller caller, out FuseAttr attr) => inner.Symlink(parent, name, target, caller, out attr);
        public Errno MkNod(ulong parent, ReadOnlySpan<byte> name, uint mode, uint rdev, in Caller caller, out FuseAttr attr) => inner.MkNod(parent, name, mode, rdev, caller, out attr);

        public Errno MkDir(ulong parent, ReadOnlySpan<byte> name, uint mode, in Caller caller, out FuseAttr attr)
        {
            attr = default;
            return Trap(name) ? BackendResult.EscapeRefused : inner.MkDir(parent, name, mode, caller, out attr);
        }

        public Errno Unlink(ulong parent, ReadOnlySpan<byte> name) => inner.Unlink(parent, name);
        public Errno RmDir(ulong parent, ReadOnlySpan<byte> name) => inner.RmDir(parent, name);
        public Errno Rename(ulong parent, ReadOnlySpan<byte> name, ulong newParent, ReadOnlySpan<byte> newName, uint flags) => inner.Rename(parent, name, newParent, newName, flags);
        public Errno Link(ulong ino, ulong newParent, ReadOnlySpan<byte> newName, out FuseAttr attr) => inner.Link(ino, newParent, newName, out attr);
        public Errno Open(ulong ino, int flags, in Caller caller, out IOpenFile file) => inner.Open(ino, flags, caller, out file);

        public Errno Create(ulong parent, ReadOnlySpan<byte> name, int flags, uint mode, in Caller caller, out FuseAttr attr, out IOpenFile file, out bool created)
        {
            (attr, file, created) = (default, null!, false);
            return Trap(name) ? BackendResult.EscapeRefused : inner.Create(parent, name, flags, mode, caller, out attr, out file, out created);
        }

        public Errno TmpFile(ulong parent, int flags, uint mode, in Caller caller, out FuseAttr attr, out IOpenFile file) => inner.TmpFile(parent, flags, mode, caller, out attr, out file);
        public Errno CopyFileRange(IOpenFile input, long offsetIn, IOpenFile output, long offsetOut, long length, out long copied) => inner.CopyFileRange(input, offsetIn, output, offsetOut, length, out copied);
        public Errno StatFs(out FuseKstatfs stat) => inner.StatFs(out stat);
        public Errno SetXattr(ulong ino, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int flags) => inner.SetXattr(ino, name, value, flags);
        public Errno GetXattr(ulong ino, ReadOnlySpan<byte> name, Span<byte> buffer, out int size) => inner.GetXattr(ino, name, buffer, out size);
        public Errno ListXattr(ulong ino, Span<byte> buffer, out int size) => inner.ListXattr(ino, buffer, out size);
        public Errno RemoveXattr(ulong ino, ReadOnlySpan<byte> name) => inner.RemoveXattr(ino, name);
        public Errno OpenDir(ulong ino, out IOpenDirectory directory) => inner.OpenDir(ino, out directory);

        public void Dispose()
        {
            // the test disposes the inner backend
        }
    }
}
