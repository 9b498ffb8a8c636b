using System.Globalization;

namespace InSpatialFs.Security.Identity;

/// <summary>The status lines that say who is treated as what: the proofs in force, host_users, and pinned callers by proof.</summary>
internal static class MembershipReport
{
    public static IReadOnlyList<(string Key, string Value)> Lines(CallerRegistry callers, MembershipOptions options, bool containerHasQuotas)
    {
        IReadOnlyDictionary<Membership, int> counts = callers.CountByMembership();
        var members = counts.Where(kv => kv.Key != Membership.Host).ToList();
        int memberCount = members.Sum(kv => kv.Value);
        string growth = containerHasQuotas ? "growth writes refused: the container has quotas" : "no quotas configured: writes allowed";
        string byProof = memberCount == 0 ? "" : " (" + string.Join(", ", members.Select(kv => $"{Name(kv.Key)} {kv.Value}")) + ")";
        return
        [
            ("membership", callers.Container.Describe()),
            ("host_root", MembershipOptions.Name(options.HostRoot)),
            ("host_users", MembershipOptions.Name(options.HostUsers) + (options.HostUsers == HostAccess.NoQuotaWrites ? $" ({growth})" : "")),
            ("callers_members", memberCount.ToString(CultureInfo.InvariantCulture) + byProof),
            ("callers_host", counts.GetValueOrDefault(Membership.Host).ToString(CultureInfo.InvariantCulture)),
        ];
    }

    public static string Name(Membership m) => m switch
    {
        Membership.Cgroup => "cgroup",
        Membership.PidNamespace => "pid-namespace",
        Membership.InitAncestry => "init-ancestry",
        Membership.MemberAncestry => "member-ancestry",
        Membership.RootOnMount => "root-on-mount",
        _ => "host",
    };
}
