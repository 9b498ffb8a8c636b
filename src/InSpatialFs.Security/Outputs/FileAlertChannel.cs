using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using InSpatialFs.Interop;

namespace InSpatialFs.Security.Outputs;

/// <summary>
/// Falco's file output with rotation: JSON lines appended to <c>path</c>; past <c>maxBytes</c> the file becomes
/// <c>path.1</c> (older ones shift to .2 ... .keep, the oldest is removed). The file is the daemon's own: created
/// mode 0600, opened with O_NOFOLLOW (a symlink planted at the path is refused, not followed).
/// </summary>
public sealed class FileAlertChannel : AlertChannel
{
    private const uint Mode = 0x180; // 0600

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

    private FileStream Open()
    {
        int fd = LibC.open(_path, LibC.O_WRONLY | LibC.O_CREAT | LibC.O_APPEND | LibC.O_NOFOLLOW | LibC.O_CLOEXEC, Mode);
        if (fd < 0)
        {
            Errno e = ErrnoExtensions.LastPInvoke();
            throw new IOException($"cannot open {_path}: {e}");
        }

#pragma warning disable CA2000 // the stream owns it from here; closed below if the stream could not be made
        var handle = new SafeFileHandle(fd, ownsHandle: true);
#pragma warning restore CA2000
        try
        {
            return new FileStream(handle, FileAccess.Write, 1);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

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
