"""Snapshot-liveness properties (``simulator.checks.transfers``): each finds what it names, and
raftsim's Streaming holds all of them where the peers' policies break them."""

from __future__ import annotations

import functools
import pathlib
import tempfile

from hypothesis import HealthCheck, given, settings

from simulator import SearchSpace, TraceRecord, fault_programs, run, run_example, seeds
from simulator.checks.transfers import installed_then_failed, resend_ratio, restart_from_zero, slower_than_link
from simulator.scenario import RunOptions, resolve, run_scenario
from transports.streaming import Outcome, TransferProgress


def record(time, node, kind, **fields):
    return TraceRecord(time, node, 1, kind, tuple(fields.items()))


def transfer(size, resent=0, seconds=1.0, outcome=Outcome.INSTALLED):
    return TransferProgress(from_=1, to=4, snapshot_index=9, snapshot_id="s", mode="streaming", size=size,
                            bytes_sent=size + resent, bytes_done=size, resent_bytes=resent, retries=1,
                            largest_resend=resent, started_at=0.0, updated_at=seconds, outcome=outcome)


def test_a_request_for_byte_zero_after_progress_is_found_and_a_fresh_start_is_not():
    progress = record(1.0, 4, "transfer_progress", index=9, offset=65536)
    again = record(2.0, 4, "snapshot_request", index=9, offset=0, to=1)
    assert restart_from_zero([progress, again]) == [
        "at 2.000 s n4 asked for snapshot 9 from byte 0 after verifying 65,536 bytes of it"]
    # A digest mismatch makes the verified bytes worthless: starting over is right.
    mismatch = record(1.5, 4, "transfer_digest_mismatch", index=9)
    assert restart_from_zero([progress, mismatch, again]) == []
    assert restart_from_zero([record(1.0, 4, "snapshot_request", index=9, offset=0)]) == []
    restarted = record(3.0, 4, "transfer_restarted", index=9, discarded=1024)
    assert "threw away 1,024 verified bytes" in restart_from_zero([restarted])[0]


def test_an_install_reported_failed_by_its_sender_is_found():
    installed = record(1.0, 4, "transfer_installed", source=1, index=9)
    acked = record(1.1, 1, "deliver", type="snapshot_ack", **{"from": 4}, to=1, installed=True)
    failed = record(2.0, 1, "transfer_failed", to=4, index=9, reason="gave up")
    assert "reported snapshot 9 to n4 failed (gave up), though n4 installed it" in installed_then_failed(
        [installed, acked, failed])[0]
    # The acknowledgement was lost on the way: the sender could not know (found by a sweep, seed 1507).
    assert installed_then_failed([installed, failed]) == []
    assert installed_then_failed([failed, record(3.0, 4, "transfer_installed", source=1, index=9)]) == []


def test_resend_ratio_and_link_speed_bounds():
    assert resend_ratio([transfer(1000, resent=500)], bound=1.0) == []
    assert resend_ratio([transfer(1000, resent=1500)], bound=1.0)
    assert slower_than_link([transfer(1_000_000, seconds=2.0)], 1_000_000) == []  # 2 <= 2 * 1 + 5
    assert slower_than_link([transfer(1_000_000, seconds=8.0)], 1_000_000)
    assert slower_than_link([transfer(1_000_000, seconds=80.0, outcome=Outcome.ABORTED)], 1_000_000) == []


def scenario(name, policy_name, **params):
    options = RunOptions(mode="streaming", policy=policy_name, params=tuple((k, str(v)) for k, v in params.items()),
                         max_virtual_seconds=120)
    captured = {}
    story = functools.partial(run_scenario, on_cluster=lambda cluster: captured.setdefault("cluster", cluster))
    return run(story, resolve(name), options), captured["cluster"]


def test_raftsim_holds_the_properties_where_a_policy_that_starts_over_breaks_them():
    result, cluster = scenario("flaky_link_catch_up", "raftsim", within=30)
    assert result.ok
    assert restart_from_zero(cluster.trace.records) == []
    assert installed_then_failed(cluster.trace.records) == []
    assert resend_ratio(cluster.transfers(), bound=0.5) == []
    result, cluster = scenario("flaky_link_catch_up", "hashicorp", within=30)
    assert not result.ok
    assert len(restart_from_zero(cluster.trace.records)) >= 3
    assert resend_ratio(cluster.transfers(), bound=1.0)


def test_a_steady_link_carries_raftsims_snapshot_in_time_proportional_to_its_size():
    for size in ("2MiB", "12MiB"):
        result, cluster = scenario("slow_link_catch_up", "raftsim", size=size, within=60)
        assert result.ok
        assert slower_than_link(cluster.transfers(), 2_000_000, factor=1.5, slack=2.0) == []


@settings(max_examples=25, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(fault_programs(SearchSpace(mode="streaming", store="disk", vocabulary="transfers")), seeds())
def test_random_fault_programs_never_make_raftsim_throw_verified_bytes_away(program, seed):
    # run_example runs the program's end-of-run checks, transfers_keep_their_progress among them.
    space = SearchSpace(mode="streaming", store="disk", vocabulary="transfers")
    result = run_example(program, space, seed, pathlib.Path(tempfile.mkdtemp(prefix="raftsim-liveness-")))
    assert result.ok, (result.violations, result.failed_checks)


def test_the_end_of_run_check_catches_a_resume_from_zero_defect(tmp_path):
    from simulator import Crash, FailChunk, Program, Propose, Restart, Wait

    space = SearchSpace(mode="streaming", store="memory", vocabulary="transfers", defects=("resume_from_zero",))
    program = Program((Crash(node=3), Propose(count=30), FailChunk(k=2, action="cut"), Restart(node=3),
                       Wait(seconds=2.0)))
    result = run_example(program, space, 1, tmp_path)
    assert not result.ok
    assert any("re-sen" in text or "keeps the bytes it verified" in text for text in result.violations), result
