using System.Buffers.Binary;
using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Fuse.Transport;
using InSpatialFs.Interop;
using InSpatialFs.TestKit;

namespace InSpatialFs.Fuse.Tests;

/// <summary>Notification frames on the wire, and the mount data and option strings.</summary>
public sealed class NotifierAndMountOptionTests
{
    private static (FakeKernel Kernel, IFuseNotifier Notifier) Connected()
    {
        var fs = new RecordingFileSystem();
        var kernel = new FakeKernel(fs);
        kernel.Init();
        kernel.Call(FuseOpcode.StatFs, 1);
        return (kernel, fs.Connection!.Notifier!);
    }

    [Test]
    public void InvalidateEntry_sends_header_with_unique_0_the_struct_the_name_and_a_trailing_NUL()
    {
        (FakeKernel kernel, IFuseNotifier notifier) = Connected();
        using (kernel)
        {
            Assert.That(notifier.InvalidateEntry(7, "name"u8), Is.EqualTo(Errno.OK));
            byte[] frame = kernel.Transport.Notifications.Single();
            FuseOutHeader header = BinaryPrimitivesRead<FuseOutHeader>(frame);
            Assert.That((header.Len, header.Error, header.Unique), Is.EqualTo((16u + 16 + 5, (int)FuseNotifyCode.InvalEntry, 0UL)));
            FuseNotifyInvalEntryOut body = BinaryPrimitivesRead<FuseNotifyInvalEntryOut>(frame.AsSpan(16));
            Assert.That((body.Parent, body.NameLen, body.Flags), Is.EqualTo((7UL, 4u, 0u)));
            Assert.That(frame[32..], Is.EqualTo("name\0"u8.ToArray()));
        }
    }

    [Test]
    public void InvalidateInode_and_Delete_frames()
    {
        (FakeKernel kernel, IFuseNotifier notifier) = Connected();
        using (kernel)
        {
            notifier.InvalidateInode(9, -1, 0);
            notifier.Delete(1, 9, "gone"u8);
            byte[][] frames = [.. kernel.Transport.Notifications];
            FuseNotifyInvalInodeOut inode = BinaryPrimitivesRead<FuseNotifyInvalInodeOut>(frames[0].AsSpan(16));
            Assert.That((frames[0].Length, BitConverter.ToInt32(frames[0], 4), inode.Ino, inode.Off, inode.Len), Is.EqualTo((40, 2, 9UL, -1L, 0L)));
            FuseNotifyDeleteOut delete = BinaryPrimitivesRead<FuseNotifyDeleteOut>(frames[1].AsSpan(16));
            Assert.That((BitConverter.ToInt32(frames[1], 4), delete.Parent, delete.Child, delete.NameLen), Is.EqualTo((6, 1UL, 9UL, 4u)));
            Assert.That(frames[1][40..], Is.EqualTo("gone\0"u8.ToArray()));
            Assert.That(BitConverter.ToUInt32(frames[1], 0), Is.EqualTo((uint)frames[1].Length));
        }
    }

    [Test]
    public void IncrementEpoch_is_the_header_alone_with_code_8()
    {
        (FakeKernel kernel, IFuseNotifier notifier) = Connected();
        using (kernel)
        {
            Assert.That(notifier.IncrementEpoch(), Is.EqualTo(Errno.OK));
            byte[] frame = kernel.Transport.Notifications.Single();
            FuseOutHeader header = BinaryPrimitivesRead<FuseOutHeader>(frame);
            Assert.That((frame.Length, header.Len, header.Error, header.Unique), Is.EqualTo((16, 16u, 8, 0UL)));
        }
    }

    [Test]
    public void Bad_names_are_refused_before_anything_is_written()
    {
        (FakeKernel kernel, IFuseNotifier notifier) = Connected();
        using (kernel)
        {
            Assert.That(notifier.InvalidateEntry(1, ""u8), Is.EqualTo(Errno.EINVAL));
            Assert.That(notifier.InvalidateEntry(1, "a\0b"u8), Is.EqualTo(Errno.EINVAL));
            Assert.That(notifier.Delete(1, 2, new byte[1025]), Is.EqualTo(Errno.EINVAL));
            Assert.That(notifier.Delete(1, 2, Encoding.ASCII.GetBytes(new string('x', 1025))), Is.EqualTo(Errno.ENAMETOOLONG));
            Assert.That(kernel.Transport.Notifications, Is.Empty);
        }
    }

    [Test]
    public void Direct_mount_data_has_the_mandatory_keys_and_the_permission_options()
    {
        Assert.That(FuseMount.DirectMountData(5, 0, 0, new FuseMountOptions()),
            Is.EqualTo("fd=5,rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions,max_read=1048576"));
        Assert.That(FuseMount.DirectMountData(5, 1000, 100, new FuseMountOptions { AllowOther = false, DefaultPermissions = false, MaxRead = 65536 }),
            Is.EqualTo("fd=5,rootmode=40000,user_id=1000,group_id=100,max_read=65536"));
    }

    [Test]
    public void Mount_flags_are_always_nosuid_nodev_plus_readonly_noexec_noatime_on_request()
    {
        Assert.That(FuseMount.DirectMountFlags(new FuseMountOptions()), Is.EqualTo(LibC.MS_NOSUID | LibC.MS_NODEV));
        Assert.That(FuseMount.DirectMountFlags(new FuseMountOptions { ReadOnly = true, NoExec = true, NoAtime = true }),
            Is.EqualTo(LibC.MS_NOSUID | LibC.MS_NODEV | LibC.MS_RDONLY | LibC.MS_NOEXEC | LibC.MS_NOATIME));
    }

    [Test]
    public void Fusermount_options_carry_fsname_subtype_and_flags()
    {
        Assert.That(FuseMount.FusermountOptions(new FuseMountOptions { FsName = "web-1", ReadOnly = true, NoExec = true }),
            Is.EqualTo("fsname=web-1,nosuid,nodev,subtype=inspatialfs,allow_other,default_permissions,max_read=1048576,ro,noexec"));
    }

    [TestCase("a,allow_other")]
    [TestCase("a b")]
    [TestCase("")]
    [TestCase("x\0y")]
    public void Names_that_could_inject_mount_options_are_rejected(string name)
    {
        Assert.Throws<ArgumentException>(() => new FuseMountOptions { FsName = name }.Validate());
        Assert.DoesNotThrow(() => new FuseMountOptions { FsName = "inspatialfs", Subtype = "inspatialfs" }.Validate(), "the control: plain names pass");
        if (name.Length > 0)
        {
            Assert.Throws<ArgumentException>(() => new FuseMountOptions { Subtype = name }.Validate());
        }
    }

    [Test]
    public void The_connection_id_comes_from_mountinfo_without_touching_the_mount()
    {
        Assert.That(FuseMount.FindConnectionId("/definitely/not/mounted"), Is.Null);
    }

    [Test]
    public void Server_options_are_validated()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ProtocolServerOptions { ReaderThreads = 0 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ProtocolServerOptions { MaxWrite = 1024 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ProtocolServerOptions { MaxStackDepth = 3 }.Validate());
        Assert.That(new ProtocolServerOptions().RequestBufferSize, Is.EqualTo((1 << 20) + 4096), "max_write + 4096, as libfuse");
    }

    private static T BinaryPrimitivesRead<T>(ReadOnlySpan<byte> bytes)
        where T : unmanaged => System.Runtime.InteropServices.MemoryMarshal.Read<T>(bytes);
}
