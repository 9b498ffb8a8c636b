using System.Diagnostics;
using System.Text;

namespace InSpatialFs.TestKit.Processes;

/// <summary>The outcome of a program run by a test.</summary>
public sealed record ShellResult(int ExitCode, string StdOut, string StdErr)
{
    public string Both => StdOut + StdErr;

    public override string ToString() => $"exit {ExitCode}\n--- stdout ---\n{StdOut}\n--- stderr ---\n{StdErr}";
}

/// <summary>Runs real programs (coreutils, tar, git, fio, runc) the way a user would, with a time limit.</summary>
public static class Shell
{
    /// <summary>Runs <c>bash -c script</c>; a run past <paramref name="timeout"/> is killed and reported as exit 124.</summary>
    public static ShellResult Run(string script, TimeSpan? timeout = null, string? workingDirectory = null, IDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo("/bin/bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add(script);
        if (environment != null)
        {
            foreach ((string key, string value) in environment)
            {
                info.Environment[key] = value;
            }
        }

        using var process = Process.Start(info)!;
        process.StandardInput.Close();
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data != null) lock (stdout) stdout.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (stderr) stderr.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(timeout ?? TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            return new ShellResult(124, stdout.ToString(), stderr + "\n(timed out)");
        }

        process.WaitForExit();
        return new ShellResult(process.ExitCode, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Runs and asserts success, returning stdout.</summary>
    public static string Check(string script, TimeSpan? timeout = null, string? workingDirectory = null, IDictionary<string, string>? environment = null)
    {
        ShellResult r = Run(script, timeout, workingDirectory, environment);
        Assert.That(r.ExitCode, Is.Zero, $"`{script}` failed: {r}");
        return r.StdOut;
    }

    /// <summary>True when a program is on PATH.</summary>
    public static bool Has(string program) => Run($"command -v {program}").ExitCode == 0;
}
