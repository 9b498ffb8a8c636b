using System.Globalization;

namespace InSpatialFs.Security.Identity;

/// <summary>
/// A requesting thread's effective capabilities, for the rare decision the kernel leaves to the server without telling it
/// the answer: under HANDLE_KILLPRIV_V2 it flags writes and O_TRUNC opens that must drop set-id bits, but not fallocate.
/// Capabilities are per thread, and /proc/TID/status serves any thread, not only a group leader.
/// </summary>
public static class ThreadCapabilities
{
    /// <summary>CAP_FSETID (linux/capability.h).</summary>
    public const int Fsetid = 4;

    /// <summary>True when thread <paramref name="tid"/> has <paramref name="capability"/> in its effective set; false when
    /// that cannot be read (a kernel request, a thread already gone): callers treat unknown as without.</summary>
    public static bool HasEffective(uint tid, int capability)
    {
        if (tid == 0 || tid > int.MaxValue) return false;
        string? status = ProcFs.ReadText("/proc/" + tid.ToString(CultureInfo.InvariantCulture) + "/status", ProcFs.StatusMax);
        int at = status is null ? -1 : status.IndexOf("\nCapEff:", StringComparison.Ordinal);
        if (at < 0) return false;
        ReadOnlySpan<char> rest = status.AsSpan(at + "\nCapEff:".Length);
        int end = rest.IndexOf('\n');
        return ulong.TryParse((end < 0 ? rest : rest[..end]).Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong set)
            && (set & (1UL << capability)) != 0;
    }
}
