"""What the command line does with input it cannot use: one line, and an exit code that means one thing.

Exit codes: 2 for bad input (a parameter, an option, a store, a trace file),
1 for a failed run, which includes a scenario whose own code raised (told as
``FILE:LINE: Error: message``), 130 for Ctrl-C; a closed pipe ends the run
quietly. None of them prints a traceback. Each case here is one that printed a
traceback, or ran on silently, before these checks existed.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from simulator.cli import main

SMALL_JOIN = ["node_join", "--param", "workflows=120", "--param", "payload=256"]


def raftsim(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def scenario_file(folder: Path, name: str, body: str) -> str:
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return str(path)


# -- parameters: declared types and ranges ---------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["basic", "--param", "commands=abc"], "--param commands expects a whole number"),
        (["mid_transfer_failure", "--param", "k=0"], "--param k must be >= 1, got '0'"),
        (["partition_during_transfer", "--param", "seconds=-1"], "--param seconds must be >= 0"),
        (["pysyncobj_large_command", "--engine", "pysyncobj", "--param", "workaround=maybe"],
         "--param workaround must be one of on, off"),
        (["basic", "--param", "nope=1"], "scenario has no parameter 'nope'"),
    ],
)
def test_a_bad_parameter_is_refused_before_the_run(capsys, argv, expected):
    code, out = raftsim("run", *argv)
    assert code == 2
    assert expected in one_line_error(capsys)
    assert out == ""  # refused before anything ran


def test_a_size_parameter_takes_units(capsys):
    code, out = raftsim("run", "large_snapshot", "--param", "size=256KiB", "--json")
    assert code in (0, 1), capsys.readouterr().err  # it ran (its own checks judge a small snapshot)
    [transfer] = json.loads(out)["transfers"]
    assert 256 * 1024 - 1024 < transfer["size"] <= 256 * 1024


# -- stores ------------------------------------------------------------------------------------


def test_a_disk_store_that_is_a_file_or_cannot_be_made_is_refused(capsys, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert raftsim("run", *SMALL_JOIN, "--mode", "streaming", "--store", f"disk:{a_file}")[0] == 2
    assert "is not a folder" in one_line_error(capsys)
    assert raftsim("run", *SMALL_JOIN, "--mode", "streaming", "--store", f"disk:{a_file}/sub")[0] == 2
    assert "cannot be created" in one_line_error(capsys)


def test_a_used_disk_store_is_refused_so_a_second_run_cannot_change_the_first_ones_result(capsys, tmp_path):
    store = tmp_path / "store"
    code, first = raftsim("run", *SMALL_JOIN, "--mode", "streaming", "--store", f"disk:{store}", "--json")
    assert code == 0, capsys.readouterr().err
    assert any(store.iterdir())
    code, _ = raftsim("run", *SMALL_JOIN, "--mode", "streaming", "--store", f"disk:{store}", "--json")
    assert code == 2
    assert "is not empty" in one_line_error(capsys)


def test_disk_with_no_folder_is_refused(capsys):
    assert raftsim("run", *SMALL_JOIN, "--mode", "streaming", "--store", "disk:")[0] == 2
    assert "names no folder" in one_line_error(capsys)


def test_a_bad_bucket_name_is_refused_and_a_password_is_never_echoed(capsys):
    assert raftsim("run", *SMALL_JOIN, "--mode", "streaming", "--store", "s3://bad!bucket/x")[0] == 2
    assert "not a valid bucket name" in one_line_error(capsys)
    assert raftsim("run", *SMALL_JOIN, "--mode", "streaming", "--store", "s3://me:hunter2@bucket/x")[0] == 2
    line = one_line_error(capsys)
    assert "must not carry credentials" in line
    assert "hunter2" not in line


# -- options that do not apply -----------------------------------------------------------------


def test_options_that_do_not_apply_are_refused_or_warned_about(capsys):
    assert raftsim("run", *SMALL_JOIN, "--engine", "pysyncobj", "--mode", "streaming")[0] == 2
    assert "--mode does not apply to --engine pysyncobj" in one_line_error(capsys)
    assert raftsim("run", *SMALL_JOIN, "--mode", "embedded", "--store", "disk")[0] == 2
    assert "does not apply to --mode embedded" in one_line_error(capsys)
    code, _ = raftsim("run", *SMALL_JOIN, "--mode", "embedded", "--chunk-size", "64KiB", "--quiet")
    assert code == 0
    assert "warning: in embedded mode --chunk-size only sizes" in capsys.readouterr().err


def test_a_folder_named_like_a_built_in_scenario_does_not_shadow_it(capsys, tmp_path, monkeypatch):
    (tmp_path / "node_join").mkdir()
    monkeypatch.chdir(tmp_path)
    code, out = raftsim("run", *SMALL_JOIN, "--json")
    assert code == 0, capsys.readouterr().err
    assert json.loads(out)["scenario"] == "node_join"


# -- trace files -------------------------------------------------------------------------------


@pytest.mark.parametrize(("where", "expected"), [("folder", "is a folder"), ("missing", "does not exist")])
def test_a_trace_file_that_cannot_be_written_is_refused_before_the_run(capsys, tmp_path, where, expected):
    target = tmp_path if where == "folder" else tmp_path / "no-such-folder" / "t.jsonl"
    code, out = raftsim("run", *SMALL_JOIN, "--trace", str(target))
    assert code == 2
    assert expected in one_line_error(capsys)
    assert out == ""


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda record: record.update(t="abc"), "field t must be a non-negative number"),
        (lambda record: record.pop("seq"), "lacks field 'seq'"),
        (lambda record: record.update(node=True), "field node must be a whole number"),
    ],
)
def test_replay_of_an_edited_trace_names_the_bad_line(capsys, tmp_path, edit, expected):
    trace = tmp_path / "run.jsonl"
    assert raftsim("run", *SMALL_JOIN, "--quiet", "--trace", str(trace))[0] == 0
    lines = trace.read_text().splitlines()
    record = json.loads(lines[2])
    edit(record)
    lines[2] = json.dumps(record)
    trace.write_text("\n".join(lines) + "\n")
    assert raftsim("replay", str(trace))[0] == 2
    line = one_line_error(capsys)
    assert f"{trace}:3:" in line and expected in line


# -- the scenario's own errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "line", "expected"),
    [
        ('"""Broken."""\nasync def scenario(sim)\n    pass\n', 2, "syntax error"),
        ('"""Raises at import."""\nx = 1 / 0\n\nasync def scenario(sim):\n    pass\n', 2,
         "ZeroDivisionError: division by zero"),
        ('"""Raises in its story."""\n\nasync def scenario(sim):\n    await sim.cluster.wait_for_leader()\n'
         '    raise RuntimeError("boom")\n', 5, "RuntimeError: boom"),
        ('"""Misuses the API."""\n\nasync def scenario(sim):\n    sim.cluster.fail_chunk(0, "cut", to=4)\n', 4,
         "ValueError: chunk numbers start at 1"),
    ],
)
def test_a_scenario_whose_code_raises_fails_in_one_line_naming_file_and_line(capsys, tmp_path, body, line,
                                                                           expected):
    path = tmp_path / "story.py"
    path.write_text(body, encoding="utf-8")
    code, _ = raftsim("run", str(path), "--quiet")
    assert code == 1
    error = one_line_error(capsys)
    assert error.startswith(f"raftsim: scenario error: {path}:{line}: ")
    assert expected in error


def test_an_unknown_cluster_key_is_told_before_the_run(capsys, tmp_path):
    path = scenario_file(tmp_path, "typo", '''
        """A typo in CLUSTER."""
        CLUSTER = {"nodez": 3}

        async def scenario(sim):
            pass
    ''')
    assert raftsim("run", path)[0] == 2
    line = one_line_error(capsys)
    assert "CLUSTER has unknown key 'nodez'" in line and "nodes" in line


def test_a_story_that_never_ends_fails_at_the_virtual_time_limit(capsys, tmp_path):
    path = scenario_file(tmp_path, "forever", '''
        """Waits forever."""
        import trio

        async def scenario(sim):
            await trio.sleep_forever()
    ''')
    code, out = raftsim("run", path, "--quiet", "--max-virtual-seconds", "30")
    assert code == 1
    assert "FAILED after 30.000 virtual seconds" in out
    assert "ran past the limit of 30 virtual seconds (--max-virtual-seconds)" in out


def test_limits_must_be_positive(capsys):
    assert raftsim("run", *SMALL_JOIN, "--max-virtual-seconds", "0")[0] == 2
    assert "--max-virtual-seconds must be > 0" in one_line_error(capsys)


# -- signals and pipes (real processes) --------------------------------------------------------


def test_ctrl_c_stops_a_run_with_a_short_message_and_exit_130():
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "run", "large_snapshot", "--mode", "embedded",
         "--param", "size=256MiB"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    process.stdout.readline()  # the story has begun
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 130
    assert err.strip() == "raftsim: interrupted"


def test_a_reader_that_goes_away_ends_the_run_without_a_traceback():
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "run", "node_join", "--mode", "streaming"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    process.stdout.readline()
    process.stdout.close()  # as `| head -1` does
    err = process.stderr.read().decode()
    process.wait(timeout=300)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert process.returncode == 141
