using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Memory;

/// <summary>Real programs on the mounted in-memory filesystem (issue 2, "Real programs on the mount").</summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class RealProgramsOnMemoryMountTests : MemoryMountFixture
{
    [Test]
    public void Copy_of_thousands_of_files_is_identical_to_the_source()
    {
        string dir = NewDirectory("cp");
        string source = "/usr/share/doc";
        int files = int.Parse(Shell.Check($"find {source} -type f | wc -l").Trim(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.That(files, Is.GreaterThan(1000), "the source tree should hold a few thousand files");

        Shell.Check($"cp -a {source} '{dir}/doc'", TimeSpan.FromMinutes(5));
        ShellResult diff = Shell.Run($"diff -r --no-dereference {source} '{dir}/doc'", TimeSpan.FromMinutes(5));
        Assert.That(diff.ExitCode, Is.Zero, diff.ToString());

        string copiedCount = Shell.Check($"find '{dir}/doc' -type f | wc -l").Trim();
        Assert.That(int.Parse(copiedCount, System.Globalization.CultureInfo.InvariantCulture), Is.EqualTo(files));
        AssertDaemonAlive();
    }

    [Test]
    public void Tar_round_trip_preserves_contents_and_metadata()
    {
        string dir = NewDirectory("tar");
        Shell.Check($"tar -C /usr/share -cf '{dir}/share.tar' common-licenses misc 2>/dev/null || tar -C /usr/share -cf '{dir}/share.tar' common-licenses");
        Shell.Check($"mkdir '{dir}/out' && tar -C '{dir}/out' -xpf '{dir}/share.tar'");
        Shell.Check($"tar -C '{dir}/out' -cf '{dir}/again.tar' $(ls '{dir}/out')");
        string listA = Shell.Check($"tar -tvf '{dir}/share.tar' | sort");
        string listB = Shell.Check($"tar -tvf '{dir}/again.tar' | sort");
        Assert.That(listB, Is.EqualTo(listA), "names, modes, owners, sizes and times survive the round trip");
        ShellResult diff = Shell.Run($"diff -r /usr/share/common-licenses '{dir}/out/common-licenses'");
        Assert.That(diff.ExitCode, Is.Zero, diff.ToString());
    }

    [Test]
    public void Git_init_add_commit_and_fsck_work()
    {
        string dir = NewDirectory("git");
        Shell.Check($"cp -a /usr/share/common-licenses '{dir}/repo'");
        string log = Shell.Check(
            $"cd '{dir}/repo' && git init -q && git -c user.name=t -c user.email=t@example.com add -A && " +
            "git -c user.name=t -c user.email=t@example.com commit -qm first && " +
            "echo change >> GPL-3 && git -c user.name=t -c user.email=t@example.com commit -qam second && " +
            "git fsck --strict && git log --oneline | wc -l", TimeSpan.FromMinutes(3));
        Assert.That(log.Trim().Split('\n')[^1].Trim(), Is.EqualTo("2"));
    }

    [Test]
    public void Sqlite_creates_and_queries_a_database()
    {
        if (!Shell.Has("sqlite3"))
        {
            Assert.Ignore("sqlite3 is not installed (make deps installs it)");
        }

        string dir = NewDirectory("sqlite");
        string result = Shell.Check(
            $"sqlite3 '{dir}/t.db' \"create table t(id integer primary key, v text); " +
            "with recursive c(x) as (select 1 union all select x+1 from c where x < 5000) insert into t(v) select hex(randomblob(32)) from c; " +
            "create index tv on t(v); pragma integrity_check; select count(*) from t;\"");
        Assert.That(result.Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(new[] { "ok", "5000" }));
        string journal = Shell.Check($"sqlite3 '{dir}/t.db' \"pragma journal_mode=wal; insert into t(v) values('x'); select count(*) from t;\"");
        Assert.That(journal, Does.Contain("5001"));
    }

    [Test]
    public void Fio_verified_writes_and_reads_with_two_jobs()
    {
        if (!Shell.Has("fio"))
        {
            Assert.Ignore("fio is not installed (make deps installs it)");
        }

        string dir = NewDirectory("fio");
        ShellResult r = Shell.Run(
            $"fio --name=verify --directory='{dir}' --size=256m --numjobs=2 --bs=64k --rw=randwrite --ioengine=psync " +
            "--verify=crc32c --do_verify=1 --verify_fatal=1 --group_reporting --output-format=terse", TimeSpan.FromMinutes(5));
        Assert.That(r.ExitCode, Is.Zero, r.ToString());
        Assert.That(r.Both, Does.Not.Contain("verify failed").And.Not.Contain("bad magic"));
        AssertDaemonAlive();
    }
}
