namespace InSpatialFs.Fuse;

// Request counts per opcode, for the daemon's status and metrics (requests per phase in scripts/bench-cpu.sh).
public sealed partial class ProtocolServer
{
    /// <summary>
    /// Requests read so far per opcode (index = opcode; the last slot counts opcodes beyond the table), across readers.
    /// Each reader counts its own requests without atomics; a snapshot may be a request behind.
    /// </summary>
    public long[] RequestCounts()
    {
        var totals = new long[OpTable.Length + 1];
        foreach (Reader? reader in _readers)
        {
            if (reader is null)
            {
                continue;
            }

            for (int i = 0; i < totals.Length; i++)
            {
                totals[i] += Volatile.Read(ref reader.Requests[i]);
            }
        }

        return totals;
    }

    /// <summary>The opcode name a <see cref="RequestCounts"/> slot stands for ("UNKNOWN" for the overflow slot).</summary>
    public static string RequestCountName(int slot) => slot < OpTable.Length ? OpTable[slot].Name : UnknownOp.Name;
}
