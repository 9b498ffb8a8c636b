using System.Globalization;
using InSpatialFs.Interop;

namespace InSpatialFs.Daemon.Hosting;

/// <summary>
/// How a server started in the background (<c>mount --background</c>, the overlay mount program) tells its starter that
/// the mount serves: the starter passes the write end of a pipe as a descriptor named by $INSPATIALFS_READY_FD, and the
/// server writes one byte to it once INIT is answered, then closes it. The starter returns at that instant instead of
/// polling the mount table, and an exit before it shows as end of file on the pipe.
/// </summary>
internal static class ReadinessPipe
{
    public const string Variable = "INSPATIALFS_READY_FD";

    /// <summary>The byte the server writes when it serves.</summary>
    public const byte ReadyByte = (byte)'R';

    /// <summary>Writes the ready byte to the descriptor the starter passed (once; no-op when none was passed).</summary>
    public static unsafe void SignalReady()
    {
        string? value = Environment.GetEnvironmentVariable(Variable);
        if (value is null)
        {
            return;
        }

        Environment.SetEnvironmentVariable(Variable, null); // not inherited by anything this process starts
        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int fd) || fd < 3)
        {
            return;
        }

        // Only a pipe: a number that names some other descriptor (a stale variable) is left alone.
        StatX st;
        byte empty = 0;
        if (LibC.statx(fd, &empty, LibC.AT_EMPTY_PATH, 0x1u /* STATX_TYPE */, &st) != 0 || (st.Mode & LibC.S_IFMT) != LibC.S_IFIFO)
        {
            return;
        }

        byte ready = ReadyByte;
        _ = LibC.write(fd, &ready, 1);
        _ = LibC.close(fd);
    }
}
