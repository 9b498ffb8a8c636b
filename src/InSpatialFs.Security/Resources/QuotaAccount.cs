using System.Globalization;
using System.Text;
using InSpatialFs.Interop;

namespace InSpatialFs.Security.Resources;

/// <summary>
/// Bytes and inodes one mount's container has added. Charged per object (<see cref="InodeIdentity"/>), so that exactly
/// what was charged is given back: an object the container created costs its inode and all its allocated blocks; an
/// object it found (the image) costs only the blocks it added beyond what the object had when first touched
/// (<see cref="ObjectCharge.Baseline"/>). Deleting an image file therefore refunds nothing that was never charged,
/// a rename over a file frees what the replaced file was charged, and fallocate and hole filling count as the blocks
/// they allocate (disk quotas count allocated blocks, not file sizes).
///
/// Growth is reserved before an operation (<see cref="TryCharge"/>: EDQUOT, or ENOSPC for memory, charges nothing)
/// and settled after it against the blocks the object really holds (<see cref="Settle"/>). The ledger survives a
/// restart through <see cref="Save"/>/<see cref="Load"/> (persistent identities only).
/// Lock order: _saving (saves only) before _gate, a leaf lock (_ledger); the byte and inode totals are lock-free.
/// </summary>
public sealed class QuotaAccount
{
    private readonly Dictionary<InodeIdentity, ObjectCharge> _ledger = [];
    private readonly Lock _gate = new();
    private readonly Lock _saving = new(); // outer to _gate; held across the file write, never on the data path
    private long _bytes;
    private long _inodes;
    private volatile bool _dirty;

    internal QuotaAccount(string mount, long? byteLimit, long? inodeLimit, bool inMemory)
    {
        Mount = mount;
        ByteLimit = byteLimit;
        InodeLimit = inodeLimit;
        InMemory = inMemory;
    }

    /// <summary>What one object has been charged.</summary>
    private sealed class ObjectCharge
    {
        /// <summary>Allocated bytes the object had when first charged (0 for objects the container created).</summary>
        public long Baseline;
        /// <summary>Bytes charged for it now: its allocation above the baseline.</summary>
        public long Charged;
        /// <summary>The container created it: its inode is charged too.</summary>
        public bool Inode;
    }

    public string Mount { get; }
    public long? ByteLimit { get; }
    public long? InodeLimit { get; }
    public bool InMemory { get; }
    public long Bytes => Volatile.Read(ref _bytes);
    public long Inodes => Volatile.Read(ref _inodes);

    /// <summary>Objects with a charge (status, tests).</summary>
    public int TrackedObjects
    {
        get
        {
            lock (_gate) return _ledger.Count;
        }
    }

    /// <summary>Charges a delta (negative frees). Growth past a limit returns ENOSPC (memory) or EDQUOT (disk, inodes) and charges nothing.</summary>
    public Errno TryCharge(long bytesDelta, long inodesDelta)
    {
        if (bytesDelta != 0)
        {
            long b = Interlocked.Add(ref _bytes, bytesDelta);
            if (bytesDelta > 0 && ByteLimit is long bl && b > bl)
            {
                Interlocked.Add(ref _bytes, -bytesDelta);
                return InMemory ? Errno.ENOSPC : Errno.EDQUOT;
            }
        }

        if (inodesDelta != 0)
        {
            long i = Interlocked.Add(ref _inodes, inodesDelta);
            if (inodesDelta > 0 && InodeLimit is long il && i > il)
            {
                Interlocked.Add(ref _inodes, -inodesDelta);
                if (bytesDelta != 0) Interlocked.Add(ref _bytes, -bytesDelta);
                return InMemory ? Errno.ENOSPC : Errno.EDQUOT;
            }
        }

        return Errno.OK;
    }

    /// <summary>A new object the container created (its inode was charged with <see cref="TryCharge"/> before the create).</summary>
    public void Created(in InodeIdentity obj)
    {
        if (obj.IsNone) return;
        lock (_gate) _ledger[obj] = new ObjectCharge { Inode = true };
        _dirty = true;
    }

    /// <summary>
    /// Before a growing operation: remembers an object first touched now with the allocation it has
    /// (<paramref name="allocatedBefore"/>), so that only what the container adds is ever charged for it.
    /// </summary>
    public void Touch(in InodeIdentity obj, long allocatedBefore)
    {
        if (obj.IsNone) return;
        lock (_gate)
        {
            if (!_ledger.ContainsKey(obj)) _ledger[obj] = new ObjectCharge { Baseline = allocatedBefore };
        }
    }

    /// <summary>
    /// After an operation on <paramref name="obj"/>: charges what it really holds now (its allocation above the
    /// baseline), giving back the <paramref name="reserved"/> estimate. Never refused: the operation already happened
    /// (a write into a hole may allocate more than was reserved; the next growth is then refused).
    /// </summary>
    public void Settle(in InodeIdentity obj, long allocatedNow, long reserved)
    {
        long delta = -reserved;
        if (!obj.IsNone)
        {
            lock (_gate)
            {
                if (_ledger.TryGetValue(obj, out ObjectCharge? c))
                {
                    long now = Math.Max(0, allocatedNow - c.Baseline);
                    delta += now - c.Charged;
                    if (now != c.Charged)
                    {
                        // The ledger changed even when the total did not (a reservation that matched the allocation
                        // exactly, as a large coalesced WRITE's does): it is owed to the disk all the same.
                        c.Charged = now;
                        _dirty = true;
                    }
                }
            }
        }

        if (delta != 0)
        {
            Interlocked.Add(ref _bytes, delta);
            _dirty = true;
        }
    }

    /// <summary>The object is gone (its last name removed, or replaced by a rename): what it was charged comes back.</summary>
    public void Removed(in InodeIdentity obj)
    {
        if (obj.IsNone) return;
        ObjectCharge? c;
        lock (_gate)
        {
            if (!_ledger.Remove(obj, out c)) return;
        }

        TryCharge(-c.Charged, c.Inode ? -1 : 0);
        _dirty = true;
    }

    /// <summary>
    /// Writes the ledger of persistent objects to <paramref name="path"/> (a new file renamed over the old one) when it
    /// changed. One save at a time: a save that finds another in flight waits for it, so that when any call returns, the
    /// state as of its start is on disk (the last save before a restart must not return while the timer's is half
    /// written and then lose it to the exit). A failed save leaves the ledger dirty for the next one.
    /// </summary>
    public void Save(string path)
    {
        lock (_saving)
        {
            if (!_dirty) return;
            _dirty = false; // before the snapshot: a change after it sets the flag again
            try
            {
                WriteLedger(path);
            }
            catch
            {
                _dirty = true;
                throw;
            }
        }
    }

    private void WriteLedger(string path)
    {
        var text = new StringBuilder();
        lock (_gate)
        {
            foreach ((InodeIdentity id, ObjectCharge c) in _ledger)
            {
                if (!id.Persistent) continue;
                text.Append(CultureInfo.InvariantCulture, $"{id.Device} {id.Inode} {id.Generation} {c.Baseline} {c.Charged} {(c.Inode ? 1 : 0)}\n");
            }
        }

        string temporary = path + ".new";
        File.Delete(temporary);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite };
        using (var stream = new FileStream(temporary, options))
        {
            stream.Write(Encoding.ASCII.GetBytes(text.ToString()));
            stream.Flush(flushToDisk: true);
        }

        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>Reloads a saved ledger (start-up); unreadable lines are skipped. Returns the objects loaded.</summary>
    public int Load(string path)
    {
        if (!File.Exists(path)) return 0;
        int loaded = 0;
        long bytes = 0, inodes = 0;
        lock (_gate)
        {
            foreach (string line in File.ReadLines(path))
            {
                string[] f = line.Split(' ');
                if (f.Length != 6
                    || !ulong.TryParse(f[0], CultureInfo.InvariantCulture, out ulong dev) || !ulong.TryParse(f[1], CultureInfo.InvariantCulture, out ulong ino)
                    || !uint.TryParse(f[2], CultureInfo.InvariantCulture, out uint gen) || !long.TryParse(f[3], CultureInfo.InvariantCulture, out long baseline)
                    || !long.TryParse(f[4], CultureInfo.InvariantCulture, out long charged) || f[5] is not ("0" or "1"))
                {
                    continue;
                }

                _ledger[new InodeIdentity(dev, ino, gen, Persistent: true)] = new ObjectCharge { Baseline = baseline, Charged = charged, Inode = f[5] == "1" };
                bytes += charged;
                inodes += f[5] == "1" ? 1 : 0;
                loaded++;
            }
        }

        Interlocked.Add(ref _bytes, bytes);
        Interlocked.Add(ref _inodes, inodes);
        return loaded;
    }
}
