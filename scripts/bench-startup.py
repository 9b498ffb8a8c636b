#!/usr/bin/env python3
"""Per-instance cost of each file system server, side by side in one run (part of `make bench`).

For every target: the time from exec until the mount answers (a stat of the mountpoint returns with the new
device: the kernel holds that stat until the server has answered INIT), the server's RSS after one idle second
(and its anonymous part, what each further instance of the same binary adds), what it costs while idle (CPU time and
context switches of all its threads, and its keeper's, over IDLE_S seconds in which nothing touches the mount: timers
and polling threads that wake an idle server cost CPU and wake-ups for every container on the host),
and its RSS growth per 100,000 live nodes (files created and then looked up, so the kernel holds a reference to
each and the server must keep it), right after that burst and again once the server has been quiet for QUIET_S seconds
(ours gives back what the GC kept committed after a burst: IdleMemoryReturn). Rounds rotate the order; the table gives
medians.

usage: bench-startup.py WORKDIR [ROUNDS] [TARGETS...]
targets: fuse-overlayfs bindfs inspatialfs-memory inspatialfs-host inspatialfs-host-background inspatialfs-host-uring
         inspatialfs-overlay
(inspatialfs-host-background is `mount --background`, as mount(8) and fstab start it: it returns once mounted.
inspatialfs-host-uring is `mount --io-uring`: requests over io_uring, no keeper; it is measured only on a kernel with
FUSE over io_uring, whose switch the run turns on and puts back.)
"""
import glob, os, shutil, signal, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("INSPATIALFS_BIN") or os.path.join(ROOT, "bin", "inspatialfs")
NODES = int(os.environ.get("NODES", "100000"))
QUIET_S = float(os.environ.get("QUIET_S", "6"))
IDLE_S = float(os.environ.get("IDLE_S", "10"))


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


# VmRSS counts every mapped page of the program image, and on this kernel the page cache holds a binary in large
# folios that are mapped whole: a 14 MB NativeAOT image shows 11-12 MiB resident whatever the server touches, pages
# shared by every instance of the binary. RssAnon (heap, stacks, buffers) is what each further instance adds.


def cpu_and_switches(pids):
    """CPU nanoseconds (schedstat) and context switches (voluntary and not) summed over every thread of these processes."""
    ns = switches = 0
    for pid in pids:
        for task in glob.glob(f"/proc/{pid}/task/*"):
            try:
                with open(f"{task}/schedstat") as f:
                    ns += int(f.read().split()[0])
                with open(f"{task}/status") as f:
                    switches += sum(int(l.split()[1]) for l in f if "ctxt_switches:" in l)
            except OSError:
                pass  # the thread ended meanwhile
    return ns, switches


def idle_cost(pids):
    """CPU (ms per second) and context switches per second of an instance that nothing touches for IDLE_S seconds."""
    ns0, sw0 = cpu_and_switches(pids)
    time.sleep(IDLE_S)
    ns1, sw1 = cpu_and_switches(pids)
    return (ns1 - ns0) / 1e6 / IDLE_S, (sw1 - sw0) / IDLE_S


def newest_pid(name, full=False):
    out = subprocess.run(["pgrep", "-n", "-f" if full else "-x", name], capture_output=True, text=True).stdout.strip()
    return int(out) if out else None


class Target:
    def __init__(self, name, work):
        self.name, self.work = name, work
        self.mnt = os.path.join(work, "mnt")
        self.backing = os.path.join(work, "backing")
        self.proc = None

    def command(self):
        w, n = self.work, self.name
        if n == "fuse-overlayfs":
            return ["fuse-overlayfs", "-o", f"lowerdir={w}/lower,upperdir={self.backing},workdir={w}/ovwork", self.mnt]
        if n == "bindfs":
            return ["bindfs", "-o", "allow_other", self.backing, self.mnt]
        if n == "inspatialfs-memory":
            return [BIN, "mount", "--memory", "--memory-size", "1GiB", "--log-level", "warning", "--state-dir", f"{w}/state", self.mnt]
        if n == "inspatialfs-host":
            return [BIN, "mount", "--source", self.backing, "--log-level", "warning", "--state-dir", f"{w}/state", self.mnt]
        if n == "inspatialfs-host-uring":
            return [BIN, "mount", "--source", self.backing, "--io-uring", "--log-level", "warning", "--state-dir", f"{w}/state", self.mnt]
        if n == "inspatialfs-host-background":
            return [BIN, "mount", "--background", "--source", self.backing, "--log-level", "warning", "--state-dir", f"{w}/state", self.mnt]
        if n == "inspatialfs-overlay":
            return [BIN, "overlay-mount", "-o", f"lowerdir={w}/lower,upperdir={self.backing},workdir={w}/ovwork", self.mnt]
        raise SystemExit(f"bench-startup: unknown target {n}")

    def server_pid(self):
        if self.name in ("fuse-overlayfs", "bindfs"):
            return newest_pid(self.name)
        if self.name == "inspatialfs-overlay":
            # overlay-mount returns once mounted. Its server runs the same command line: since 2026-12-06 as the child
            # of the keeper the mount program became (whose command line holds it too: the newest of the two is the
            # server); from 2026-12-05 as the process the mount program forked. Before that it was spawned as
            # `inspatialfs mount --config .../overlay-instance.yaml`.
            return newest_pid(f"overlay-mount -o .* {self.mnt}$", full=True) or \
                newest_pid("inspatialfs mount --config .*/overlay-instance.yaml", full=True)
        keeper = self.keeper_pid()
        if keeper:
            # A kept mount: `inspatialfs mount` became inspatialfs-keeper (same pid; with --background, the keeper was
            # started detached and instance.pid names it), and its child is the server.
            with open(f"/proc/{keeper}/task/{keeper}/children") as f:
                children = f.read().split()
            return int(children[0]) if children else keeper
        return self.proc.pid

    def keeper_pid(self):
        """The keeper holding this instance's descriptors, or None (its RSS is part of the instance's cost)."""
        if self.proc is None or self.name not in ("inspatialfs-memory", "inspatialfs-host", "inspatialfs-host-background", "inspatialfs-overlay"):
            return None
        pid = self.proc.pid
        if self.name == "inspatialfs-overlay":
            server = self.server_pid()
            if server is None:
                return None
            with open(f"/proc/{server}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])  # the server's parent: its keeper, when kept
        if self.name == "inspatialfs-host-background":
            with open(f"{self.work}/state/instance.pid") as f:
                pid = int(f.read().split()[0])
        try:
            with open(f"/proc/{pid}/comm") as f:
                return pid if f.read().strip() == "inspatialfs-kee" else None
        except OSError:
            return None

    def start(self):
        # A fresh state directory too: a new instance, not one that reloads an earlier run's journals.
        for d in (self.mnt, self.backing, f"{self.work}/lower", f"{self.work}/ovwork", f"{self.work}/state"):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
        if self.name == "inspatialfs-overlay":
            # overlay-mount keeps its state under /var/lib/inspatialfs/NAME: drop an earlier round's (its
            # runtime-written marks would be reloaded, and a restart is not what this measures).
            for conf in glob.glob("/var/lib/inspatialfs/*/overlay-instance.yaml"):
                with open(conf) as f:
                    if f'mountpoint: "{self.mnt}"' in f.read():
                        shutil.rmtree(os.path.dirname(conf), ignore_errors=True)
        parent_dev = os.stat(self.work).st_dev
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = t0 + 20
        while time.monotonic() < deadline:
            try:
                if os.stat(self.mnt).st_dev != parent_dev:
                    break
            except OSError:
                pass
            time.sleep(0.0005)
        else:
            raise RuntimeError(f"{self.name} did not mount")
        return time.monotonic() - t0

    def stop(self):
        subprocess.run(["umount", self.mnt], stderr=subprocess.DEVNULL)
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        subprocess.run(["umount", "-l", self.mnt], stderr=subprocess.DEVNULL)


def live_nodes_growth(t, pid):
    """RSS growth (MiB) per 100,000 files created and then stat'ed (each one a node the kernel holds): right after, and
    after QUIET_S seconds without requests."""
    before = rss_kib(pid)
    dirs = 100
    for d in range(dirs):
        os.mkdir(os.path.join(t.mnt, f"d{d:03d}"))
    for i in range(NODES):
        fd = os.open(os.path.join(t.mnt, f"d{i % dirs:03d}", f"f{i:06d}"), os.O_CREAT | os.O_WRONLY, 0o644)
        os.close(fd)
    for i in range(NODES):
        os.stat(os.path.join(t.mnt, f"d{i % dirs:03d}", f"f{i:06d}"))
    after = rss_kib(pid)
    time.sleep(QUIET_S)
    quiet = rss_kib(pid)
    scale = 100000 / NODES / 1024
    return (after - before) * scale, (quiet - before) * scale


URING_SWITCH = "/sys/module/fuse/parameters/enable_uring"


def main():
    work = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    names = sys.argv[3:] or ["fuse-overlayfs", "bindfs", "inspatialfs-memory", "inspatialfs-host", "inspatialfs-host-background",
                             "inspatialfs-host-uring", "inspatialfs-overlay"]
    names = [n for n in names if not n.startswith(("fuse-", "bindfs")) or shutil.which(n.split()[0])]
    uring_before = None
    if "inspatialfs-host-uring" in names:
        if os.path.exists(URING_SWITCH):
            with open(URING_SWITCH) as f:
                uring_before = f.read().strip()
            with open(URING_SWITCH, "w") as f:
                f.write("Y")
        else:
            names.remove("inspatialfs-host-uring")
    try:
        measure(work, rounds, names)
    finally:
        if uring_before is not None:
            with open(URING_SWITCH, "w") as f:
                f.write(uring_before)


def measure(work, rounds, names):
    start, idle, anon, per_nodes, idle_load = {}, {}, {}, {}, {}
    for r in range(rounds):
        shift = r % len(names)
        for n in names[shift:] + names[:shift]:
            t = Target(n, os.path.join(work, "startup"))
            os.makedirs(t.work, exist_ok=True)
            try:
                start.setdefault(n, []).append(t.start() * 1000)
                time.sleep(1.0)
                pid = t.server_pid()
                keeper = t.keeper_pid()
                idle.setdefault(n, []).append((rss_kib(pid) + (rss_kib(keeper) if keeper else 0)) / 1024)
                anon.setdefault(n, []).append((rss_kib(pid, "RssAnon") + (rss_kib(keeper, "RssAnon") if keeper else 0)) / 1024)
                if r == 0:  # the idle and growth figures are steady; once is enough
                    idle_load[n] = idle_cost([p for p in (pid, keeper) if p])
                    per_nodes[n] = live_nodes_growth(t, pid)
            finally:
                t.stop()
    print("target\tstart_ms\tidle_rss_mib\tidle_anon_mib\tidle_cpu_ms_per_s\tidle_switches_per_s\trss_mib_per_100k_nodes\tsame_once_quiet")
    for n in names:
        if n in start:
            burst, quiet = per_nodes.get(n, (float('nan'), float('nan')))
            cpu, switches = idle_load.get(n, (float('nan'), float('nan')))
            print(f"{n}\t{statistics.median(start[n]):.1f}\t{statistics.median(idle[n]):.1f}\t{statistics.median(anon[n]):.1f}\t{cpu:.3f}\t{switches:.1f}\t"
                  f"{burst:.1f}\t{quiet:.1f}")


if __name__ == "__main__":
    main()
