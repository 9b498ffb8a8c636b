namespace InSpatialFs.Security.Events;

/// <summary>
/// <c>&lt;state_dir&gt;/events.jsonl</c>, rotated by size (events.jsonl.1 is the newest rotated file, up to
/// .N kept). Written only by the security manager's consumer thread; flushed per batch.
/// </summary>
public sealed class EventJournal : IDisposable
{
    public const string FileName = "events.jsonl";

    private readonly string _stateDir;
    private readonly string _path;
    private readonly long _rotateBytes;
    private readonly int _keep;
    private FileStream _file;
    private long _size;

    public EventJournal(string stateDir, long rotateBytes, int keep)
    {
        _stateDir = stateDir;
        _path = Path.Combine(stateDir, FileName);
        _rotateBytes = rotateBytes;
        _keep = Math.Max(0, keep);
        _file = Open();
        _size = _file.Length;
    }

    public string FilePath => _path;
    public long Rotations { get; private set; }

    /// <summary>Serialises and appends one event (the consumer writes lines it already serialised with <see cref="WriteLine"/>).</summary>
    public void Write(FsEvent e) => WriteLine(System.Text.Encoding.UTF8.GetBytes(FsEventJson.ToJsonLine(e) + "\n"));

    /// <summary>Appends one already serialised event line (ending in a newline).</summary>
    public void WriteLine(ReadOnlySpan<byte> line)
    {
        _file.Write(line);
        _size += line.Length;
        if (_size >= _rotateBytes) Rotate();
    }

    public void Flush() => _file.Flush();

    /// <summary>Created 0600 beneath a checked state directory, never through a symlink (rotation reopens the same way).</summary>
    private FileStream Open() => Interop.TrustedPath.OpenAppendStream(_stateDir, FileName, 64 * 1024);

    private void Rotate()
    {
        _file.Dispose();
        if (_keep == 0)
        {
            File.Delete(_path);
        }
        else
        {
            for (int i = _keep - 1; i >= 1; i--)
            {
                string from = $"{_path}.{i}";
                if (File.Exists(from)) File.Move(from, $"{_path}.{i + 1}", overwrite: true);
            }

            File.Move(_path, _path + ".1", overwrite: true);
        }

        Rotations++;
        _file = Open();
        _size = 0;
    }

    public void Dispose()
    {
        _file.Dispose();
    }
}
