using InSpatialFs.Interop;

namespace InSpatialFs.Proxy.Tests;

/// <summary>
/// READ and WRITE go from the proxy's handle straight to the backend's open-file object: once a handle has had its
/// first WRITE (an event of its own), further READs and WRITEs allocate nothing on the calling thread.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class OpenFileAllocationTests
{
    private const int Calls = 2000;
    private const ulong Root = 1;

    [Test]
    public void Reads_and_writes_through_an_open_file_allocate_nothing_per_call()
    {
        var h = new ProxyHarness(("/", false));
        (ulong node, ulong fh) = h.Create(Root, "f");
        byte[] page = new byte[4096];
        new Random(5).NextBytes(page);
        byte[] back = new byte[4096];
        Assert.That(h.Proxy.Write(h.Request, node, fh, 0, page, 0, out int written), Is.EqualTo(Errno.OK), "the first write (recorded)");
        Assert.That(written, Is.EqualTo(page.Length));

        long[] allocated = new long[Calls];
        for (int i = 0; i < Calls; i++)
        {
            allocated[i] = GC.GetAllocatedBytesForCurrentThread();
            Errno w = h.Proxy.Write(h.Request, node, fh, 0, page, 0, out _);
            Errno r = h.Proxy.Read(h.Request, node, fh, 0, back, out int read);
            if (w != Errno.OK || r != Errno.OK || read != back.Length)
            {
                Assert.Fail($"call {i}: write {w}, read {r} ({read} bytes)");
            }
        }

        Assert.That(back, Is.EqualTo(page), "the positive control: the data went through");
        long perCall = (allocated[Calls - 1] - allocated[Calls / 2]) / (Calls / 2);
        Assert.That(perCall, Is.Zero, $"about {perCall} bytes allocated per READ + WRITE");
        Assert.That(h.Proxy.Release(h.Request, node, fh, 0), Is.EqualTo(Errno.OK));
    }
}
