using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using InSpatialFs.Interop;

namespace InSpatialFs.Security.Outputs;

/// <summary>
/// Falco's file output with rotation: JSON lines appended to <c>path</c>; past <c>maxBytes</c> the file becomes
/// <c>path.1</c> (older ones shift to .2 ... .keep, the oldest is removed). The file is the daemon's own: created
/// mode 0600 in a directory only root controls, so the names rotation moves cannot be swapped by anyone else.
/// </summary>
public sealed class FileAlertChannel : AlertChannel
{
    private readonly string _path;
    private readonly long _maxBytes;
    private readonly int _keep;
    private FileStream? _file;

    public FileAlertChannel(string path, long maxBytes = 64L << 20, int keep = 5, int capacity = DefaultCapacity, RetryPolicy? retry = null, ILogger? log = null)
        : base("file", path, capacity, retry, log)
    {
        _path = path;
        _maxBytes = maxBytes;
        _keep = Math.Max(1, keep);
    }

    /// <summary>
    /// As the daemon opens its own files (<see cref="TrustedPath"/>): every directory on the way root's and writable by
    /// nobody else, no symlink, and the file a regular one of root's with one link, or created 0600. The file holds
    /// incidents with command lines; a directory another user controls could have it read, moved or replaced by a link.
    /// </summary>
    private FileStream Open() =>
        TrustedPath.OpenAppendStream(Path.GetDirectoryName(_path) ?? "/", Path.GetFileName(_path), bufferSize: 1);

    protected override Task SendAsync(Alert alert, CancellationToken cancel)
    {
        _file ??= Open();
        if (_file.Length + alert.Json.Length + 1 > _maxBytes && _file.Length > 0)
        {
            Rotate();
            _file = Open();
        }

        _file.Write(alert.Json);
        _file.WriteByte((byte)'\n');
        _file.Flush();
        return Task.CompletedTask;
    }

    private void Rotate()
    {
        _file?.Dispose();
        _file = null;
        File.Delete($"{_path}.{_keep}");
        for (int i = _keep - 1; i >= 1; i--)
        {
            if (File.Exists($"{_path}.{i}"))
            {
                File.Move($"{_path}.{i}", $"{_path}.{i + 1}");
            }
        }

        File.Move(_path, _path + ".1");
    }

    protected override void Close() => _file?.Dispose();
}
