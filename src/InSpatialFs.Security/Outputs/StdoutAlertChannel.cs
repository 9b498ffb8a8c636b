using Microsoft.Extensions.Logging;

namespace InSpatialFs.Security.Outputs;

/// <summary>Falco's stdout output: one JSON alert per line on the daemon's standard output (the journal under systemd).</summary>
public sealed class StdoutAlertChannel : AlertChannel
{
    private readonly Stream _out;

    public StdoutAlertChannel(int capacity = DefaultCapacity, ILogger? log = null, Stream? output = null)
        : base("stdout", "stdout", capacity, null, log)
    {
        _out = output ?? Console.OpenStandardOutput();
    }

    protected override async Task SendAsync(Alert alert, CancellationToken cancel)
    {
        await _out.WriteAsync(alert.Json, cancel).ConfigureAwait(false);
        await _out.WriteAsync("\n"u8.ToArray(), cancel).ConfigureAwait(false);
        await _out.FlushAsync(cancel).ConfigureAwait(false);
    }
}
