using System.Text.Json;

namespace InSpatialFs.Security.Events;

/// <summary>
/// <c>&lt;state_dir&gt;/events.jsonl</c>, rotated by size (events.jsonl.1 is the newest rotated file, up to
/// .N kept). Written only by the security manager's consumer thread; flushed per batch.
/// </summary>
public sealed class EventJournal : IDisposable
{
    public const string FileName = "events.jsonl";

    private static readonly byte[] NewLine = [(byte)'\n'];
    private readonly string _path;
    private readonly long _rotateBytes;
    private readonly int _keep;
    private FileStream _file;
    private Utf8JsonWriter _writer;
    private long _size;

    public EventJournal(string stateDir, long rotateBytes, int keep)
    {
        Directory.CreateDirectory(stateDir);
        _path = Path.Combine(stateDir, FileName);
        _rotateBytes = rotateBytes;
        _keep = Math.Max(0, keep);
        _file = Open();
        _size = _file.Length;
        _writer = new Utf8JsonWriter(_file);
    }

    public string FilePath => _path;
    public long Rotations { get; private set; }

    public void Write(FsEvent e)
    {
        FsEventJson.Write(_writer, e);
        _writer.Flush();
        _size += _writer.BytesCommitted + 1;
        _writer.Reset();
        _file.Write(NewLine);
        if (_size >= _rotateBytes) Rotate();
    }

    public void Flush() => _file.Flush();

    private FileStream Open() => new(_path, FileMode.Append, FileAccess.Write, FileShare.Read, 64 * 1024);

    private void Rotate()
    {
        _writer.Dispose();
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
        _writer = new Utf8JsonWriter(_file);
    }

    public void Dispose()
    {
        _writer.Dispose();
        _file.Dispose();
    }
}
