using Microsoft.Win32.SafeHandles;
using System.Text;
using InSpatialFs.Interop;

namespace InSpatialFs.Fuse.Tests;

/// <summary>SCM_RIGHTS over a unix socket: how a keeper hands a live connection's descriptors to the next server.</summary>
public sealed unsafe class DescriptorPassingTests
{
    private static (SafeFd A, SafeFd B) SocketPair()
    {
        int* sv = stackalloc int[2];
        Assert.That(LibC.socketpair(LibC.AF_UNIX, LibC.SOCK_SEQPACKET | LibC.SOCK_CLOEXEC, 0, sv), Is.Zero);
        return (new SafeFd(sv[0]), new SafeFd(sv[1]));
    }

    private static string ContentOf(SafeFd fd)
    {
        byte* buffer = stackalloc byte[64];
        nint n = LibC.pread(fd.Fd, buffer, 64, 0);
        return n < 0 ? $"error {ErrnoExtensions.LastPInvoke()}" : Encoding.UTF8.GetString(buffer, (int)n);
    }

    [Test]
    public void Descriptors_sent_arrive_as_the_same_open_files_with_the_message()
    {
        (SafeFd a, SafeFd b) = SocketPair();
        using (a)
        using (b)
        {
            string dir = Directory.CreateTempSubdirectory("isfs-fds-").FullName;
            try
            {
                var files = Enumerable.Range(0, 3).Select(i =>
                {
                    string path = Path.Combine(dir, $"f{i}");
                    File.WriteAllText(path, $"file {i}");
                    return File.OpenHandle(path);
                }).ToArray();
                int[] numbers = files.Select(f => (int)f.DangerousGetHandle()).ToArray();

                Assert.That(LibC.SendFds(a.Fd, "adopt"u8, numbers), Is.EqualTo(Errno.OK));
                Array.ForEach(files, f => f.Dispose()); // the message holds its own references

                byte[] data = new byte[16];
                Assert.That(LibC.ReceiveFds(b.Fd, data, 8, out int length, out SafeFd[] received), Is.EqualTo(Errno.OK));
                Assert.That(Encoding.UTF8.GetString(data, 0, length), Is.EqualTo("adopt"));
                Assert.That(received.Select(ContentOf), Is.EqualTo(new[] { "file 0", "file 1", "file 2" }));
                Assert.That(received.Select(fd => LibC.fcntl(fd.Fd, LibC.F_GETFD, 0) & LibC.FD_CLOEXEC), Is.All.EqualTo(LibC.FD_CLOEXEC));
                Array.ForEach(received, fd => fd.Dispose());
            }
            finally
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    [Test]
    public void More_descriptors_than_the_receiver_takes_is_refused_and_none_leak()
    {
        (SafeFd a, SafeFd b) = SocketPair();
        using (a)
        using (b)
        {
            int before = Directory.GetFiles("/proc/self/fd").Length;
            using SafeFileHandle self = File.OpenHandle("/proc/self/status");
            int fd = (int)self.DangerousGetHandle();
            Assert.That(LibC.SendFds(a.Fd, "x"u8, [fd, fd, fd]), Is.EqualTo(Errno.OK));

            Assert.That(LibC.ReceiveFds(b.Fd, new byte[4], 2, out _, out SafeFd[] received), Is.EqualTo(Errno.EMSGSIZE));
            Assert.That(received, Is.Empty);
            Assert.That(Directory.GetFiles("/proc/self/fd").Length, Is.EqualTo(before + 1), "only our own handle is open");

            // Control: within the limit the same message shape arrives whole.
            Assert.That(LibC.SendFds(a.Fd, "y"u8, [fd, fd]), Is.EqualTo(Errno.OK));
            Assert.That(LibC.ReceiveFds(b.Fd, new byte[4], 2, out _, out received), Is.EqualTo(Errno.OK));
            Assert.That(received, Has.Length.EqualTo(2));
            Array.ForEach(received, r => r.Dispose());
        }
    }

    [Test]
    public void A_closed_peer_reads_as_connection_aborted()
    {
        (SafeFd a, SafeFd b) = SocketPair();
        a.Dispose();
        using (b)
        {
            Assert.That(LibC.ReceiveFds(b.Fd, new byte[4], 4, out _, out _), Is.EqualTo(Errno.ECONNABORTED));
        }
    }
}
