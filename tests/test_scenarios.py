"""The runnable scenarios run, tell their story, and replay exactly."""

from __future__ import annotations

import pytest

from scenarios import first_election, node_join


def test_first_election_story_ends_with_every_node_in_agreement(capsys):
    assert first_election.main(["--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "won term" in out
    assert "sends it the snapshot" in out
    assert "Every node applied the same 10 commands: True" in out


def test_node_join_newcomer_catches_up_by_snapshot(capsys):
    assert node_join.main(["--seed", "2", "--workflows", "120", "--payload", "256"]) == 0
    out = capsys.readouterr().out
    assert "n4 installed snapshot" in out
    assert "all 4 nodes hold the same workflow state: True" in out


def test_node_join_replays_the_same_trace_for_the_same_seed(capsys):
    node_join.main(["--seed", "5", "--workflows", "50"])
    first = capsys.readouterr().out
    node_join.main(["--seed", "5", "--workflows", "50"])
    assert capsys.readouterr().out == first


def test_node_join_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit) as exit:
        node_join.main(["--workflows", "0"])
    assert exit.value.code == 2
    assert "--workflows must be >= 1" in capsys.readouterr().err


def test_node_join_streaming_moves_the_snapshot_in_chunks_with_little_memory(capsys):
    args = ["--seed", "3", "--workflows", "150", "--payload", "2048", "--chunk-size", "16384"]
    assert node_join.main([*args, "--mode", "streaming"]) == 0
    streaming = capsys.readouterr().out
    assert "streaming transfer:" in streaming
    assert "held in memory at once: 16,384" in streaming
    assert node_join.main([*args, "--mode", "embedded"]) == 0
    embedded = capsys.readouterr().out
    assert "embedded transfer:" in embedded
    assert "held in memory at once: 16,384" not in embedded
