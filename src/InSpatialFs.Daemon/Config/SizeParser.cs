using System.Globalization;

namespace InSpatialFs.Daemon.Config;

/// <summary>Byte sizes as written in configs and flags: "4096", "512K", "64MiB", "1GiB", "2G", "10MB".
/// K/M/G/T and KiB/MiB/GiB/TiB are powers of 1024; KB/MB/GB/TB are powers of 1000. Case-insensitive.</summary>
public static class SizeParser
{
    public const string Help = "a size such as 4096, 512K, 64MiB, 1GiB (K/Ki = 1024, KB = 1000)";

    public static bool TryParse(string? text, out long bytes)
    {
        bytes = 0;
        if (string.IsNullOrWhiteSpace(text)) return false;
        string s = text.Trim();
        int i = 0;
        while (i < s.Length && char.IsAsciiDigit(s[i])) i++;
        if (i == 0 || !long.TryParse(s.AsSpan(0, i), NumberStyles.None, CultureInfo.InvariantCulture, out long number)) return false;
        long unit = s[i..].Trim().ToUpperInvariant() switch
        {
            "" or "B" => 1,
            "K" or "KI" or "KIB" => 1L << 10,
            "M" or "MI" or "MIB" => 1L << 20,
            "G" or "GI" or "GIB" => 1L << 30,
            "T" or "TI" or "TIB" => 1L << 40,
            "KB" => 1000,
            "MB" => 1000_000,
            "GB" => 1000_000_000,
            "TB" => 1000_000_000_000,
            _ => 0,
        };
        if (unit == 0) return false;
        try
        {
            bytes = checked(number * unit);
        }
        catch (OverflowException)
        {
            return false;
        }
        return true;
    }
}
