using System.Diagnostics;
using InSpatialFs.Security.Identity;

namespace InSpatialFs.Security.Tests.Identity;

/// <summary>
/// Membership by the filesystem of the caller's root directory: after runc's pivot_root, /proc/PID/root reads "/"
/// from the host, so the path test alone misses every runc container process (found through a real container).
/// </summary>
public sealed class MountDeviceMembershipTests
{
    /// <summary>major:minor of the filesystem the test process's root lies on (as a container's root lies on the mount).</summary>
    private static (uint Major, uint Minor) RootDevice()
    {
        string[] parts = Process.Start(new ProcessStartInfo("stat", "-L -c %Hd:%Ld /proc/self/root") { RedirectStandardOutput = true })!
            .StandardOutput.ReadToEnd().Trim().Split(':');
        return (uint.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture), uint.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture));
    }

    [Test]
    public void A_caller_whose_root_lies_on_the_mount_device_is_a_member_even_when_its_root_reads_slash()
    {
        using Process child = CallerRegistryTests.StartSleep();
        try
        {
            (uint major, uint minor) = RootDevice();
            using var onOtherDevice = new CallerRegistry("/nonexistent-root", null);
            onOtherDevice.SetMountDevice(major, minor + 1);
            Assert.That(onOtherDevice.Resolve(child.Id)!.IsContainerMember, Is.False, "root on another device");

            using var unknown = new CallerRegistry("/nonexistent-root", null);
            Assert.That(unknown.Resolve(child.Id)!.IsContainerMember, Is.False, "no mount device known: path and cgroup rules only");

            using var onDevice = new CallerRegistry("/nonexistent-root", null);
            onDevice.SetMountDevice(major, minor);
            CallerInfo c = onDevice.Resolve(child.Id)!;
            Assert.That((c.Root, c.IsContainerMember), Is.EqualTo(("/", true)));
        }
        finally
        {
            child.Kill();
            child.WaitForExit();
        }
    }
}
