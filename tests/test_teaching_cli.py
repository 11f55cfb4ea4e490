"""The command line as a learner meets it: list in reading order, compare any scenario, quiet output.

(Pacing and ``--speed`` are in tests/test_pacing.py; ``--html`` pages in
tests/test_html_report.py.)
"""

from __future__ import annotations

import io
import json
import re

import pytest

from simulator.cli.listing import FAILS_ON_PURPOSE, readme_order
from simulator.cli.main import main
from simulator.scenario import find_scenarios


def raftsim(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_list_follows_the_readme_reading_order_and_names_modes_and_engines():
    code, out = raftsim("list")
    assert code == 0
    numbered = [line for line in out.splitlines() if re.match(r"^\s*\d+\. ", line)]
    names = [line.split()[1] for line in numbered]
    assert names[:3] == ["basic", "node_join", "snapshot_unavailable"]
    assert sorted(names) == sorted(info.name for info in find_scenarios())
    # Every scenario the README teaches is in its place, in the README's order.
    readme = (find_scenarios()[0].path.parent / "README.md").read_text(encoding="utf-8")
    taught = [name for name in re.findall(r"^## \d+\. .*?`(\w+)`", readme, re.M) if name in names]
    assert taught == [name for name in names if name in taught]
    rows = {line.split()[1]: line for line in numbered}
    assert re.search(r"partition_during_transfer\s+streaming\s+native\s", rows["partition_during_transfer"])
    assert re.search(r"node_join\s+embedded, streaming\s+native, pysyncobj\s", rows["node_join"])
    assert re.search(r"pysyncobj_large_command\s+-\s+pysyncobj\s", rows["pysyncobj_large_command"])
    on_purpose = sorted(name for name, line in rows.items() if FAILS_ON_PURPOSE in line)
    assert on_purpose == ["pysyncobj_empty_snapshot_loop", "pysyncobj_large_command", "stale_lease_read"]


def test_every_scenario_the_readme_teaches_exists():
    folder = find_scenarios()[0].path.parent
    taught = readme_order(folder / "README.md")
    # (first_election is a script of its own, run with python -m, not by raftsim run.)
    assert len(taught) >= 10 and all((folder / f"{name}.py").is_file() for name in taught)


def test_the_scenarios_that_fail_on_purpose_do_fail_and_pass_with_the_workaround():
    code, _ = raftsim("run", "pysyncobj_large_command", "--engine", "pysyncobj", "--quiet")
    assert code == 1
    code, _ = raftsim("run", "pysyncobj_large_command", "--engine", "pysyncobj", "--quiet", "--param", "workaround=on")
    assert code == 0


def test_compare_shows_the_one_column_of_a_streaming_only_scenario():
    code, out = raftsim("compare", "partition_during_transfer")
    assert code == 0, out
    header = next(line for line in out.splitlines() if "streaming" in line)
    assert header.split() == ["streaming"]
    rows = {line.split("  ")[0]: line.split() for line in out.splitlines() if "  " in line}
    assert rows["result"][-1] == "ok" and rows["transfer retries"][-1] == "2"


def test_compare_json_gives_each_columns_summary():
    code, out = raftsim("compare", "partition_during_transfer", "--json")
    assert code == 0
    body = json.loads(out)
    assert body["scenario"] == "partition_during_transfer" and body["ok"] is True
    assert list(body["columns"]) == ["streaming"]
    _, run_out = raftsim("run", "partition_during_transfer", "--json")
    assert body["columns"]["streaming"]["trace_sha256"] == json.loads(run_out)["trace_sha256"]


@pytest.mark.parametrize("argv", [["--quiet"], ["--quiet", "--realtime", "--speed", "1000"]])
def test_quiet_output_starts_with_the_summary_not_a_blank_line(argv):
    code, out = raftsim("run", "basic", *argv)
    assert code == 0
    assert out.startswith("basic (seed 0, embedded): ok after")


def test_the_story_is_still_set_apart_from_the_summary_by_a_blank_line():
    _, out = raftsim("run", "basic")
    assert "\n\nbasic (seed 0, embedded): ok after" in out


def test_words_a_story_says_at_time_zero_come_after_the_nodes_started(tmp_path):
    path = tmp_path / "early.py"
    path.write_text('"""Early: the story speaks before anything happens."""\n'
                    "async def scenario(sim):\n"
                    "    sim.say('three nodes, one story')\n"
                    "    await sim.cluster.wait_for_leader()\n")
    code, out = raftsim("run", str(path))
    assert code == 0
    lines = out.splitlines()
    assert lines[:4] == ["[    0.000s] n1 started (term 0)", "[    0.000s] n2 started (term 0)",
                         "[    0.000s] n3 started (term 0)", "[    0.000s] three nodes, one story"]


def test_a_transfer_finished_by_a_new_leader_names_both_senders():
    code, out = raftsim("run", "leader_change_during_transfer", "--mode", "streaming", "--json")
    assert code == 0
    [transfer] = json.loads(out)["transfers"]
    assert transfer["senders"] == [1, 2] and transfer["from"] == 2
    _, text = raftsim("run", "leader_change_during_transfer", "--mode", "streaming", "--quiet")
    assert "  transfer n1,n2->n4 snapshot 21: installed" in text


def test_replay_html_writes_the_page_of_the_trace(tmp_path):
    import re

    from simulator.observe.html.model import page_model
    from simulator.observe.trace import read_jsonl

    trace, page = tmp_path / "run.jsonl", tmp_path / "run.html"
    assert raftsim("run", "partition_during_transfer", "--quiet", "--trace", str(trace))[0] == 0
    code, out = raftsim("replay", str(trace), "--html", str(page))
    assert code == 0 and "n4 installed snapshot 21" in out
    data = json.loads(re.search(r'id="run-data">(.*?)</script>', page.read_text(encoding="utf-8"), re.S).group(1))
    assert data == page_model(read_jsonl(trace), title="raftsim replay run.jsonl")
    # Cut links are shaded on the node they cut off, not on every node that lost a link to it.
    assert [nodes for _, _, nodes, _ in data["network"]] == [[4]]


@pytest.mark.parametrize("where", ["missing-folder/page.html", "."])
def test_an_html_file_that_cannot_be_written_is_refused_before_the_run(where, tmp_path, capsys):
    target = tmp_path / where
    assert main(["run", "basic", "--quiet", "--html", str(target)], out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("raftsim: error: --html")


def test_replay_html_of_a_trace_with_ill_typed_fields_is_one_line(tmp_path, capsys):
    trace = tmp_path / "odd.jsonl"
    trace.write_text('{"t":0.0,"node":1,"seq":1,"kind":"start","term":0}\n'
                     '{"t":1.0,"node":1,"seq":2,"kind":"role","role":"leader","term":"one","leader":1}\n'
                     '{"t":2.0,"node":2,"seq":3,"kind":"deliver","type":"append","from":1,"to":2,"term":"one"}\n')
    code = main(["replay", str(trace), "--html", str(tmp_path / "odd.html")], out=io.StringIO())
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("raftsim: error: --html") and "not as raftsim" in err
