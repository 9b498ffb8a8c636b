using System.Text;
using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Storage;
using InSpatialFs.Storage.Memory;
using InSpatialFs.Storage.Mounts;
using Microsoft.Extensions.Logging.Abstractions;

namespace InSpatialFs.Proxy.Tests;

/// <summary>A gate whose verdicts the test decides, recording every event it is given.</summary>
internal sealed class RecordingGate : ISecurityGate
{
    public Func<FsEvent, Verdict> Decider { get; set; } = _ => Verdict.Allow;

    public Func<string, PathClass> Classifier { get; set; } = _ => PathClass.Allowed;

    public List<FsEvent> Recorded { get; } = [];

    public Verdict Decide(FsEvent access) => Decider(access);

    public void Record(FsEvent completed)
    {
        lock (Recorded)
        {
            Recorded.Add(completed);
        }
    }

    public PathClass Classify(string path) => Classifier(path);

    public bool MayForbidChildrenOf(string dirPath) => true;

    public void NoteLinkedObject(in InodeIdentity obj, string path)
    {
    }

    public void ObjectCopied(in InodeIdentity original, in InodeIdentity copy)
    {
    }

    public IReadOnlyList<string> ProtectedRoots => [];

    public OpenFileCharge TryOpenFile(uint pid) => OpenFileCharge.NotCounted;

    public void FileClosed()
    {
    }

    public TimeSpan DataDelay(uint pid, FsOp op, long bytes) => TimeSpan.Zero;

    public Security.Resources.QuotaAccount? QuotaFor(string mountPath) => null;
}

/// <summary>A proxy over memory mounts, driven by direct calls as the FUSE server would make them.</summary>
internal sealed class ProxyHarness
{
    public ProxyHarness(params (string Path, bool ReadOnly)[] mounts)
    {
        Backends = mounts.Select(_ => new MemoryFileSystem()).ToArray();
        Table = MountTable.Create(mounts.Select((m, i) => new MountEntry(m.Path, Backends[i], m.ReadOnly, Direct: false, MountKind.Memory)));
        Proxy = new SecureProxy(Table, Gate, new ProxyOptions(), NullLogger.Instance);
    }

    public MemoryFileSystem[] Backends { get; }

    public MountTable Table { get; }

    public RecordingGate Gate { get; } = new();

    public SecureProxy Proxy { get; }

    public FuseRequest Request { get; } = NewRequest(uid: 0, gid: 0, pid: 4242);

    public static FuseRequest NewRequest(uint uid, uint gid, uint pid)
    {
        var r = new FuseRequest();
        r.Reset(unique: 2, opcode: 0, nodeId: 1, uid, gid, pid);
        return r;
    }

    public static ReadOnlySpan<byte> N(string name) => Encoding.UTF8.GetBytes(name);

    public ulong MkDir(ulong parent, string name)
    {
        Assert.That(Proxy.MkDir(Request, parent, N(name), 0x1ED, 0, out FuseEntryOut e), Is.EqualTo(Errno.OK));
        return e.NodeId;
    }

    public (ulong Node, ulong Fh) Create(ulong parent, string name)
    {
        Assert.That(Proxy.Create(Request, parent, N(name), LibC.O_RDWR, 0x1A4, 0, out FuseEntryOut e, out FuseOpenOut o), Is.EqualTo(Errno.OK));
        return (e.NodeId, o.Fh);
    }

    public Errno Lookup(ulong parent, string name, out FuseEntryOut entry) => Proxy.Lookup(Request, parent, N(name), out entry);

    /// <summary>Names listed by READDIR (plain or plus) of a directory.</summary>
    public List<string> List(ulong dir, bool plus)
    {
        Assert.That(Proxy.OpenDir(Request, dir, 0, out FuseOpenOut open), Is.EqualTo(Errno.OK));
        var names = new List<string>();
        var buffer = new byte[64 * 1024];
        var writer = new DirentWriter(buffer);
        Assert.That(Proxy.ReadDir(Request, dir, open.Fh, 0, plus, ref writer), Is.EqualTo(Errno.OK));
        int entryOut = plus ? 128 : 0;
        for (int at = 0; at < writer.BytesWritten;)
        {
            int nameLen = BitConverter.ToInt32(buffer, at + entryOut + 16);
            names.Add(Encoding.UTF8.GetString(buffer, at + entryOut + 24, nameLen));
            at += entryOut + ((24 + nameLen + 7) & ~7);
        }

        Proxy.ReleaseDir(Request, dir, open.Fh);
        return names;
    }
}
