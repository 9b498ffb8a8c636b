using InSpatialFs.Interop;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Policy;

/// <summary>
/// The privilege and code controls decided from the request fields alone. Each refusal is EPERM with a
/// constant typed reason (<see cref="ReasonKind.Privilege"/>, shown as "privilege:setuid", ...). Symlink rule: a target "leaves the namespace" when, resolved
/// lexically against fs.dir, it climbs above the root with "..", or (absolute or relative) lands in /proc
/// or /sys, whose magic links (/proc/*/root, /proc/*/cwd, /proc/*/fd) lead out of any mount namespace.
/// Other absolute targets stay inside: the container's root is this mount. Where the proxy resolved the chain
/// (<see cref="FsEvent.LinkResolved"/>: links inside the namespace followed), the rule applies to where it leads.
/// </summary>
public static class PrivilegeControls
{
    public static readonly VerdictReason Setuid = Control("setuid"), Device = Control("device_node"), FifoSocket = Control("fifo_socket");
    public static readonly VerdictReason SecurityXattr = Control("security_xattr"), XattrWrite = Control("xattr_write");
    public static readonly VerdictReason HardlinkOwner = Control("hardlink_not_owner"), HardlinkClass = Control("hardlink_not_allowed");
    public static readonly VerdictReason SymlinkEscape = Control("symlink_escape"), SymlinkToForbidden = Control("symlink_to_forbidden");

    /// <summary>exec.runtime_written: deny, for an exec and for a loader's or interpreter's read of such code.</summary>
    public static readonly VerdictReason RuntimeWrittenExec = new(ReasonKind.ExecDenied, "exec_runtime_written"),
        RuntimeWrittenInterpreted = new(ReasonKind.ExecDenied, "interpret_runtime_written");

    private static VerdictReason Control(string name) => new(ReasonKind.Privilege, name);

    /// <summary>Returns the reason a control refuses the op, or null. <paramref name="sourceClass"/> is the class of fs.path (the link source for link).</summary>
    public static VerdictReason? Check(EffectiveControls c, FsEvent a, PathClass sourceClass)
    {
        switch (a.Op)
        {
            case FsOp.Chmod:
                return c.RefuseSetuid && HasSetId(a.Mode) ? Setuid : null;
            case FsOp.Create:
            case FsOp.TmpFile:
            case FsOp.MkDir:
                return c.RefuseSetuid && HasSetId(a.Mode) ? Setuid : null;
            case FsOp.MkNod:
            {
                uint type = a.Mode & LibC.S_IFMT;
                if (c.RefuseDevices && type is LibC.S_IFCHR or LibC.S_IFBLK) return Device;
                if (c.RefuseFifosSockets && type is LibC.S_IFIFO or LibC.S_IFSOCK) return FifoSocket;
                return c.RefuseSetuid && HasSetId(a.Mode) ? Setuid : null;
            }

            case FsOp.SetXattr:
            case FsOp.RemoveXattr:
                if (c.RefuseAllXattrWrites) return XattrWrite;
                if (c.RefuseSecurityXattrs && a.XattrName is string n
                    && (n.StartsWith("security.", StringComparison.Ordinal) || n.StartsWith("trusted.", StringComparison.Ordinal)))
                {
                    return SecurityXattr;
                }

                return null;
            case FsOp.Link:
                if (!c.RestrictHardlinks) return null;
                if (a.NodeUid != a.Uid) return HardlinkOwner;
                return sourceClass == PathClass.Allowed ? null : HardlinkClass;
            case FsOp.Symlink:
                return c.RestrictSymlinks && a.LinkTarget is string t && SymlinkLeavesNamespace(a.Path, a.LinkResolved ?? t) ? SymlinkEscape : null;
            case FsOp.ReadLink:
                // Checked on use as well: a link made harmless and armed later by another link is caught here.
                return c.RestrictSymlinks && a.LinkResolved is string r && SymlinkLeavesNamespace(a.Path, r) ? SymlinkEscape : null;
            default:
                return null;
        }
    }

    /// <summary>setuid on anything, setgid on anything but a directory (where it only sets group inheritance).</summary>
    public static bool HasSetId(uint mode)
    {
        if ((mode & LibC.S_ISUID) != 0) return true;
        return (mode & LibC.S_ISGID) != 0 && (mode & LibC.S_IFMT) != LibC.S_IFDIR;
    }

    /// <summary>Lexical resolution of a symlink created at <paramref name="linkPath"/> (see the class comment).</summary>
    public static bool SymlinkLeavesNamespace(string linkPath, string target)
    {
        if (target.Length == 0) return false;

        // Depth tracking only: components are counted, never materialized.
        int depth = 0;
        bool firstIsSensitive = false;
        ReadOnlySpan<char> first = default;
        if (target[0] != '/')
        {
            int slash = linkPath.LastIndexOf('/');
            ReadOnlySpan<char> dir = slash <= 0 ? ReadOnlySpan<char>.Empty : linkPath.AsSpan(1, slash - 1);
            foreach (Range r in dir.Split('/'))
            {
                ReadOnlySpan<char> comp = dir[r];
                if (comp.IsEmpty || comp is ".") continue;
                if (depth == 0) first = comp;
                depth++;
            }
        }

        ReadOnlySpan<char> t = target.AsSpan();
        foreach (Range r in t.Split('/'))
        {
            ReadOnlySpan<char> comp = t[r];
            if (comp.IsEmpty || comp is ".") continue;
            if (comp is "..")
            {
                if (depth == 0) return true;
                depth--;
                if (depth == 0) first = default;
                continue;
            }

            if (depth == 0) first = comp;
            depth++;
            if (depth >= 1) firstIsSensitive |= first is "proc" or "sys";
        }

        return firstIsSensitive;
    }
}
