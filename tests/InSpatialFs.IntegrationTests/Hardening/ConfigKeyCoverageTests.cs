using System.Reflection;
using InSpatialFs.Daemon.Config;

namespace InSpatialFs.IntegrationTests.Hardening;

/// <summary>
/// Issue 10, "Every accepted setting has its effect": walks every key the config loader accepts and fails for any key
/// that no test exercises. Each key names the integration test(s) that set it in a config file and observe its effect;
/// the walk checks those tests exist (a renamed or deleted test fails here) and that no listed key is stale. A key added
/// to the loader without a test showing what it does fails this test until one is named here.
/// </summary>
[TestFixture]
public sealed class ConfigKeyCoverageTests
{
    private const string Effect = nameof(ConfigKeyEffectTests) + "." + nameof(ConfigKeyEffectTests.Each_key_changes_the_outcome_of_its_operation);

    private static readonly Dictionary<string, string[]> ExercisedBy = new(StringComparer.Ordinal)
    {
        ["name"] = [nameof(CrashRecoveryTests) + "." + nameof(CrashRecoveryTests.After_kill_9_under_a_running_container_the_same_config_starts_again_and_keeps_its_incidents)],
        ["mountpoint"] = [nameof(CrashRecoveryTests) + "." + nameof(CrashRecoveryTests.After_kill_9_under_a_running_container_the_same_config_starts_again_and_keeps_its_incidents)],
        ["control"] = [nameof(CrashRecoveryTests) + "." + nameof(CrashRecoveryTests.After_kill_9_under_a_running_container_the_same_config_starts_again_and_keeps_its_incidents)],
        ["state_dir"] = ["IncidentPersistenceTests.A_new_daemon_lists_every_incident_reported_before_a_kill_9"],
        ["isolation"] = ["IsolationLevelTests.Operation_is_allowed_or_denied_with_the_levels_errno_and_recorded", "IsolationLevelTests.Status_reports_the_level_and_no_dropped_events"],
        ["mounts[].path"] = ["RuncContainerTests.Busybox_container_creates_reads_renames_links_and_removes_files"],
        ["mounts[].source"] = ["RuncContainerTests.Busybox_container_creates_reads_renames_links_and_removes_files"],
        ["mounts[].readonly"] = ["RuncContainerTests.Busybox_container_creates_reads_renames_links_and_removes_files"],
        ["mounts[].direct"] = ["DirectFallbackRateLimitTests.A_container_reading_a_spliced_direct_file_is_held_to_the_byte_rate", nameof(ConfigKeyEffectTests) + "." + nameof(ConfigKeyEffectTests.Allow_direct_and_memory_size_take_effect)],
        ["mounts[].memory.size"] = [nameof(ConfigKeyEffectTests) + "." + nameof(ConfigKeyEffectTests.Allow_direct_and_memory_size_take_effect)],
        ["paths.forbidden"] = ["IsolationLevelTests.Operation_is_allowed_or_denied_with_the_levels_errno_and_recorded"],
        ["paths.readonly"] = ["IsolationLevelTests.Operation_is_allowed_or_denied_with_the_levels_errno_and_recorded"],
        ["paths.allowed"] = ["IsolationLevelTests.Operation_is_allowed_or_denied_with_the_levels_errno_and_recorded"],
        ["resources.memory"] = [Effect],
        ["resources.disk"] = ["HostQuotaTests.Growth_past_the_disk_and_inode_quota_gets_EDQUOT_and_removal_frees_it"],
        ["resources.inodes"] = ["HostQuotaTests.Growth_past_the_disk_and_inode_quota_gets_EDQUOT_and_removal_frees_it"],
        ["resources.open_files"] = [Effect],
        ["resources.ops_per_second"] = [Effect],
        ["resources.bytes_per_second"] = ["RateLimitTests.Container_data_transfer_is_delayed_to_the_byte_rate_and_host_processes_are_not"],
        ["exec.runtime_written"] = [Effect],
        ["controls.refuse_setuid"] = [Effect],
        ["controls.refuse_devices"] = [Effect],
        ["controls.refuse_fifos_sockets"] = [Effect],
        ["controls.refuse_security_xattrs"] = [Effect],
        ["controls.refuse_all_xattr_writes"] = [Effect],
        ["controls.restrict_hardlinks"] = [Effect],
        ["controls.restrict_symlinks"] = [Effect],
        ["controls.allow_direct"] = [nameof(ConfigKeyEffectTests) + "." + nameof(ConfigKeyEffectTests.Allow_direct_and_memory_size_take_effect)],
        ["controls.exec_runtime_written"] = [Effect],
        ["response.suspend_on"] = ["ContainerSuspendTests.A_forbidden_read_suspends_the_container_until_it_is_resumed"],
        ["container.cgroup"] = ["AttackFamiliesTests.Each_attack_family_raises_its_rule_with_its_response_and_nothing_else_fires"],
        ["rules.files"] = [Effect],
        ["rules.builtins"] = ["FalcoRulesInContainerTests.Attacks_fire_the_corresponding_Falco_rules_with_Falco_s_output_and_fields"],
        ["outputs"] = ["AlertOutputChannelsTests.Every_channel_delivers_Falco_s_alert_to_its_receiver"],
        ["container.init_pid"] = ["InitPidConfigTests.A_process_in_the_configured_inits_pid_namespace_is_a_member_and_a_host_process_is_not"],
        ["host_users.root"] = [Effect],
        ["host_users.others"] = ["HostUserAttackTests.Nobody_cannot_charge_the_containers_quota_through_allow_other_but_the_container_can"],
        ["incidents.rate"] = [Limits],
        ["incidents.max_burst"] = [Limits],
        ["incidents.rotate_bytes"] = [Limits],
        ["incidents.keep"] = [Limits],
        ["events.journal"] = ["EventJournalConfigTests.Journal_false_writes_no_event_journal_and_the_events_file_and_incidents_go_on"],
        ["events.rotate_bytes"] = ["EventJournalConfigTests.Rotate_bytes_and_keep_rotate_the_event_journal_and_bound_its_files"],
        ["events.keep"] = ["EventJournalConfigTests.Rotate_bytes_and_keep_rotate_the_event_journal_and_bound_its_files"],
        ["mounts[].overlay.lower"] = [Overlay],
        ["mounts[].overlay.upper"] = [Overlay],
        ["mounts[].overlay.work"] = [Overlay],
        ["metrics_listen"] = ["OperatorOutputTests.Metrics_listen_serves_the_exposition_to_a_scraper_and_nothing_else", "OperatorOutputTests.A_metrics_listen_address_in_use_refuses_the_start"],
        ["io_uring"] = ["IoUringTransportTests.The_config_key_io_uring_is_the_flag_for_an_instance_started_from_its_file"],
    };

    private const string Limits = "IncidentLimitsTests.A_source_over_its_rate_limit_is_counted_as_suppressed_and_the_file_rotates_and_survives_a_restart";
    private const string Overlay = "OverlayFormatTests.Layers_merge_whiteouts_hide_and_opaque_directories_stop_the_merge";

    [Test]
    public void Every_key_the_loader_accepts_is_exercised_by_a_named_test()
    {
        IReadOnlyList<string> accepted = ConfigLoader.AcceptedKeys();
        Dictionary<string, MethodInfo> tests = typeof(ConfigKeyCoverageTests).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Instance).Select(m => (Key: t.Name + "." + m.Name, Method: m)))
            .Where(x => x.Method.GetCustomAttributes().Any(a => a is TestAttribute or TestCaseAttribute or TestCaseSourceAttribute))
            .GroupBy(x => x.Key).ToDictionary(g => g.Key, g => g.First().Method, StringComparer.Ordinal);

        string[] untested = [.. accepted.Where(k => !ExercisedBy.ContainsKey(k))];
        string[] stale = [.. ExercisedBy.Keys.Where(k => !accepted.Contains(k))];
        string[] missing = [.. ExercisedBy.SelectMany(e => e.Value.Where(t => !tests.ContainsKey(t)).Select(t => $"{e.Key} -> {t}"))];
        string[] rowless = [.. accepted.Where(k => ExercisedBy.TryGetValue(k, out string[]? by) && by.Contains(Effect) && !ConfigKeyEffectTests.Rows.Any(r => r.Key == k))];
        TestContext.Out.WriteLine($"{accepted.Count} accepted keys: {string.Join(", ", accepted)}");
        Assert.Multiple(() =>
        {
            Assert.That(untested, Is.Empty, "keys the loader accepts that no test exercises (name the test that shows each one's effect above)");
            Assert.That(stale, Is.Empty, "keys listed here that the loader no longer accepts");
            Assert.That(missing, Is.Empty, "tests named here that do not exist (renamed?)");
            Assert.That(rowless, Is.Empty, "keys sent to the effect test without a row of their own");
            Assert.That(accepted, Has.Member("controls.refuse_setuid").And.Member("mounts[].memory.size"), "positive control: the walk sees nested keys");
        });
    }
}
