"""The guard rails: each guard refuses what it should, the first refusal is reported, buckets and storms replay."""

from __future__ import annotations

import datetime

import pytest

from upkeep.engine import guards

NOW = datetime.datetime(2025, 3, 5, 12, 0, tzinfo=datetime.UTC)


def ago(seconds: float) -> datetime.datetime:
    return NOW - datetime.timedelta(seconds=seconds)


def run(
    started: datetime.datetime,
    *,
    incident: str = "inc",
    playbook: str = "pb",
    phase: str = "Succeeded",
    ns: str = "shop",
) -> guards.PastRun:
    return guards.PastRun(playbook=playbook, incident=incident, namespace=ns, started=started, phase=phase)


def facts(**changes: object) -> guards.RunFacts:
    values: dict[str, object] = {
        "namespace": "shop",
        "incident": "inc",
        "playbook": "pb",
        "playbook_spec": {"steps": [{"name": "restart", "action": "rolloutRestart"}]},
        "policy_spec": None,
        "runs": (),
        "incident_triggers": (),
    }
    values.update(changes)
    return guards.RunFacts(**values)  # type: ignore[arg-type]


def test_nothing_refuses_a_first_run() -> None:
    assert guards.check_run(facts(), NOW) == guards.ALLOWED


def test_the_global_pause_is_reported_before_every_other_guard() -> None:
    verdict = guards.check_run(
        facts(
            policy_spec={"remediation": {"paused": True}},
            playbook_spec={"paused": True, "guards": {"maxAttempts": 1}},
            runs=[run(ago(1))],
        ),
        NOW,
    )
    assert (verdict.allowed, verdict.guard) == (False, "Paused")
    assert verdict.skip_reason.startswith("Paused: ")


def test_a_paused_playbook_is_refused() -> None:
    assert guards.check_run(facts(playbook_spec={"paused": True}), NOW).guard == "PlaybookPaused"


def test_max_attempts_counts_runs_of_the_incident_but_not_skipped_ones() -> None:
    spec = {"guards": {"maxAttempts": 2, "cooldown": "0s", "rateLimit": {"perHour": 100, "burst": 10}}}
    two = [run(ago(100)), run(ago(50))]
    assert guards.check_run(facts(playbook_spec=spec, runs=two), NOW).guard == "MaxAttempts"
    skipped = [run(ago(100)), run(ago(50), phase="Skipped")]
    assert guards.check_run(facts(playbook_spec=spec, runs=skipped), NOW).allowed
    other = [run(ago(100), incident="other"), run(ago(50), incident="other")]
    assert guards.check_run(facts(playbook_spec=spec, runs=other), NOW).allowed


def test_cooldown_counts_from_the_last_run_of_the_incident() -> None:
    spec = {"guards": {"cooldown": "10m"}}
    refused = guards.check_run(facts(playbook_spec=spec, runs=[run(ago(300))]), NOW)
    assert refused.guard == "Cooldown" and "5m left" in refused.reason
    assert guards.check_run(facts(playbook_spec=spec, runs=[run(ago(601))]), NOW).allowed


def test_max_concurrent_counts_active_runs_of_the_playbook_across_incidents() -> None:
    spec = {"guards": {"maxConcurrent": 2}}
    one = [run(ago(5), incident="a", phase="Running")]
    assert guards.check_run(facts(playbook_spec=spec, runs=one), NOW).allowed
    two = [*one, run(ago(5), incident="b", phase="Pending")]
    assert guards.check_run(facts(playbook_spec=spec, runs=two), NOW).guard == "MaxConcurrent"


def test_token_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    per_second = 1 / 60
    assert guards.token_bucket([], per_second=per_second, burst=2, now=NOW) == (True, None)
    allowed, after = guards.token_bucket([NOW, NOW], per_second=per_second, burst=2, now=NOW)
    assert not allowed and after == NOW + datetime.timedelta(seconds=60)
    assert guards.token_bucket([ago(61), ago(61)], per_second=per_second, burst=2, now=NOW)[0]
    # a full bucket does not grow past burst: an hour of quiet gives two tokens, not sixty
    assert not guards.token_bucket([ago(3600), NOW, NOW], per_second=per_second, burst=2, now=NOW)[0]


def test_the_playbook_rate_limit_refuses_past_its_burst() -> None:
    spec = {"guards": {"maxConcurrent": 10, "rateLimit": {"perHour": 1, "burst": 2}}}
    runs = [run(ago(10), incident="a"), run(ago(5), incident="b")]
    verdict = guards.check_run(facts(playbook_spec=spec, runs=runs), NOW)
    assert verdict.guard == "RateLimit" and "Playbook's rate limit" in verdict.reason


def test_the_namespace_and_cluster_buckets_count_every_playbook() -> None:
    spec = {"guards": {"maxConcurrent": 100, "rateLimit": {"perHour": 1000, "burst": 100}}}
    policy = {"remediation": {"rateLimit": {"perNamespace": {"perMinute": 1, "burst": 1}}}}
    runs = [run(ago(1), playbook="other", incident="x")]
    verdict = guards.check_run(facts(playbook_spec=spec, policy_spec=policy, runs=runs), NOW)
    assert verdict.guard == "RateLimit" and "namespace shop" in verdict.reason
    elsewhere = [run(ago(1), playbook="other", incident="x", ns="web")]
    assert guards.check_run(facts(playbook_spec=spec, policy_spec=policy, runs=elsewhere), NOW).allowed
    cluster = {"remediation": {"rateLimit": {"cluster": {"perMinute": 1, "burst": 1}}}}
    assert guards.check_run(facts(playbook_spec=spec, policy_spec=cluster, runs=elsewhere), NOW).guard == "RateLimit"


def test_a_storm_starts_past_max_incidents_and_ends_after_the_quiet_period() -> None:
    window, quiet = datetime.timedelta(minutes=1), datetime.timedelta(minutes=2)
    three = [ago(30), ago(20), ago(10)]
    assert not guards.storm_state(three, max_incidents=3, window=window, quiet_period=quiet, now=NOW).active
    four = [*three, ago(5)]
    storm = guards.storm_state(four, max_incidents=3, window=window, quiet_period=quiet, now=NOW)
    assert storm.active and storm.started == ago(5) and storm.count == 4
    assert storm.ends == ago(5) + quiet
    later = NOW + quiet
    assert not guards.storm_state(four, max_incidents=3, window=window, quiet_period=quiet, now=later).active
    # spread out, they make no storm
    spread = [ago(400), ago(300), ago(200), ago(100)]
    assert not guards.storm_state(spread, max_incidents=3, window=window, quiet_period=quiet, now=NOW).active


def test_a_storm_keeps_its_identity_while_incidents_keep_coming() -> None:
    window, quiet = datetime.timedelta(minutes=1), datetime.timedelta(minutes=2)
    triggers = [ago(60 - second) for second in range(0, 60, 5)]
    first = guards.storm_state(triggers[:5], max_incidents=3, window=window, quiet_period=quiet, now=NOW)
    later = guards.storm_state(triggers, max_incidents=3, window=window, quiet_period=quiet, now=NOW)
    assert first.active and later.active and first.started == later.started


def test_the_incidents_of_a_storm_that_ended_do_not_start_another_when_the_window_outlasts_the_quiet() -> None:
    window, quiet = datetime.timedelta(minutes=1), datetime.timedelta(seconds=8)
    storm = [ago(30)] * 20
    assert guards.storm_state(storm, max_incidents=5, window=window, quiet_period=quiet, now=ago(25)).active
    # 29 s later, the quiet period is long over: one new incident is remediated, not the start of a second storm
    after = guards.storm_state([*storm, ago(1)], max_incidents=5, window=window, quiet_period=quiet, now=NOW)
    assert not after.active
    policy = {"remediation": {"storm": {"maxIncidents": 5, "window": "1m", "quietPeriod": "8s"}}}
    assert guards.check_run(facts(policy_spec=policy, incident_triggers=[*storm, ago(1)]), NOW).allowed
    # more than five new ones after the quiet period do make a new storm, which starts at the sixth
    again = [*storm, *(ago(6 - second) for second in range(6))]
    second = guards.storm_state(again, max_incidents=5, window=window, quiet_period=quiet, now=NOW)
    assert second.active and second.started == ago(1) and second.count == 6


def test_the_storm_guard_refuses_cluster_wide() -> None:
    policy = {"remediation": {"storm": {"maxIncidents": 2, "window": "1m", "quietPeriod": "1m"}}}
    verdict = guards.check_run(facts(policy_spec=policy, incident_triggers=[ago(3), ago(2), ago(1)]), NOW)
    assert verdict.guard == "Storm" and "3 incidents" in verdict.reason


FREEZE = {
    "metadata": {"name": "default"},
    "spec": {"windows": [{"name": "always", "type": "Freeze", "schedule": "* * * * *", "duration": "2m"}]},
}


def test_a_freeze_window_refuses_a_run_with_a_step_that_changes_the_cluster() -> None:
    assert guards.freeze_window([FREEZE], NOW) == "default/always"
    verdict = guards.check_run(facts(change_policies=[FREEZE]), NOW)
    assert verdict.guard == "Freeze" and "restart" in verdict.reason


@pytest.mark.parametrize(
    "step",
    [
        {"name": "tell", "action": "notify"},
        {"name": "pause", "action": "wait"},
        {"name": "restart", "action": "rolloutRestart", "safeDuringFreeze": True},
    ],
)
def test_steps_safe_during_a_freeze_pass(step: dict[str, object]) -> None:
    assert guards.check_run(facts(playbook_spec={"steps": [step]}, change_policies=[FREEZE]), NOW).allowed


def test_respect_freeze_false_ignores_freezes_and_maintenance_windows_never_freeze() -> None:
    spec = {"guards": {"respectFreeze": False}, "steps": [{"name": "r", "action": "rolloutRestart"}]}
    assert guards.check_run(facts(playbook_spec=spec, change_policies=[FREEZE]), NOW).allowed
    maintenance = {"spec": {"windows": [{**FREEZE["spec"]["windows"][0], "type": "Maintenance"}]}}  # type: ignore[index]
    assert guards.freeze_window([maintenance], NOW) is None


@pytest.mark.parametrize(
    ("wanted", "ready", "desired", "removing", "allowed"),
    [
        (None, 1, 3, 1, True),
        (2, 3, 3, 1, True),
        (2, 2, 3, 1, False),
        ("50%", 3, 4, 1, True),
        ("50%", 2, 4, 1, False),
        ("100%", 3, 3, 0, True),
        ("34%", 2, 3, 1, False),  # 34% of 3 is 1.02: two replicas needed
    ],
)
def test_min_healthy(wanted: object, ready: int, desired: int, removing: int, allowed: bool) -> None:
    verdict = guards.min_healthy(wanted, ready=ready, desired=desired, removing=removing)
    assert verdict.allowed is allowed
    if not allowed:
        assert verdict.guard == "MinHealthy" and f"of {desired} replicas" in verdict.reason


def test_min_healthy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="percentage"):
        guards.required_healthy("half", 4)


def test_a_start_written_to_the_second_is_replayed_at_the_end_of_that_second() -> None:
    """startedAt has whole seconds: a run started at 12:00:00.9 reads 12:00:00. At 12:00:01.2 a bucket of one
    token refilled once a second has had 0.3 s since that start, not 1.2 s: no token yet."""
    second = datetime.datetime(2026, 1, 31, 12, 0, 0, tzinfo=datetime.UTC)
    later = second + datetime.timedelta(seconds=1.2)
    allowed, when = guards.token_bucket([second], per_second=1.0, burst=1, now=later)
    assert not allowed and when is not None and when > later
    allowed, _ = guards.token_bucket([second], per_second=1.0, burst=1, now=second + datetime.timedelta(seconds=2))
    assert allowed
    # A start known to the microsecond is replayed as it is; one in the current second is not put after now.
    exact = second + datetime.timedelta(microseconds=1)
    assert guards.token_bucket([exact], per_second=1.0, burst=1, now=exact + datetime.timedelta(seconds=1.01))[0]
    assert not guards.token_bucket([second], per_second=1.0, burst=1, now=second + datetime.timedelta(seconds=0.5))[0]
