using InSpatialFs.Interop;

namespace InSpatialFs.Daemon.Control;

/// <summary>What the control files show and accept; the running instance implements it.</summary>
internal interface IControlPlane
{
    /// <summary>Generates the content of a snapshot file (status, policy, rules, mounts, stats, metrics, incidents).</summary>
    string Render(ControlFile file);

    /// <summary>The live event stream behind the `events` file.</summary>
    EventLog Events { get; }

    /// <summary>Runs one parsed command written to `control`. A refused command returns EINVAL (or EPERM) and a reason.</summary>
    Errno Execute(ControlCommand command, out string message);
}

/// <summary>The files of the control directory, in listing order.</summary>
internal enum ControlFile
{
    Status,
    Policy,
    Rules,
    Mounts,
    Stats,
    Metrics,
    Events,
    Incidents,
    Control,
}
