"""The command line end to end: record -> inspect -> segment -> check, and its error contract."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from recorders.episode_file import open_episode

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd=ROOT, timeout=300):
    return subprocess.run([sys.executable, "main.py", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def assert_one_line_error(result, contains: str):
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert contains in lines[0], lines[0]


@pytest.fixture(scope="module")
def swap_episodes(tmp_path_factory):
    out = tmp_path_factory.mktemp("swap")
    r = cli("record", "--task", "swap", "--episodes", "2", "--seed", "0", "--out", out)
    assert r.returncode == 0, r.stderr
    return out


def test_tasks_lists_the_suite():
    r = cli("tasks")
    assert r.returncode == 0
    for task in ("pick_place", "stack", "tower", "push", "swap", "restore", "sort"):
        assert task in r.stdout


def test_record_then_inspect_json_shows_calls_segments_cameras_success(swap_episodes):
    files = sorted(swap_episodes.glob("*.h5"))
    assert [f.name for f in files] == ["swap_0000.h5", "swap_0001.h5"]
    r = cli("inspect", files[0], "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["task"] == "swap" and summary["robot"] == "sim" and summary["success"] is True
    names = [c["code"].split("(")[0] for c in summary["calls"]]
    assert names == ["remember", "remember", "pick", "free_space", "place", "pick", "recall", "place", "pick",
                     "recall", "place", "done"]
    assert all(c["status"] == "ok" and c["source"] == "script" for c in summary["calls"])
    segs = summary["segments"]
    assert segs[0]["start"] == 0 and segs[-1]["end"] == summary["frames"]
    assert all(a["end"] == b["start"] for a, b in zip(segs, segs[1:]))
    assert [s["code"].split("(")[0] for s in segs if s["code"] != "idle"] == ["pick", "place"] * 3
    for cam in ("front_rgb", "wrist_rgb"):
        assert summary["streams"][cam]["shape"] == [128, 128, 3]
        assert summary["streams"][cam]["count"] == summary["frames"]
    assert summary["control_hz"] == 10 and summary["duration_s"] > 10


def test_inspect_human_readable(swap_episodes):
    r = cli("inspect", swap_episodes / "swap_0000.h5")
    assert r.returncode == 0 and "remember(" in r.stdout and "success: yes" in r.stdout


def test_segment_rederives_labels_in_place(swap_episodes):
    f = swap_episodes / "swap_0001.h5"
    before = json.loads(cli("inspect", f, "--json").stdout)["segments"]
    r = cli("segment", swap_episodes)
    assert r.returncode == 0, r.stderr
    assert json.loads(cli("inspect", f, "--json").stdout)["segments"] == before


def test_check_accepts_an_oracle_program_and_rejects_bad_ones(tmp_path):
    good = tmp_path / "good.py"
    good.write_text('pick("red cube")\nplace("red cube", "blue zone")\ndone()\n')
    r = cli("check", good)
    assert r.returncode == 0 and "OK" in r.stdout
    bad = tmp_path / "bad.py"
    bad.write_text('pick("red cube")\nimport os\n')
    r = cli("check", bad)
    assert r.returncode == 2 and "bad.py:2:" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("args, message", [
    (["record", "--task", "juggle", "--out", "x"], "unknown task 'juggle'"),
    (["record", "--task", "stack", "--seed", "-3", "--out", "x"], "non-negative integer"),
    (["record", "--task", "stack", "--episodes", "zero", "--out", "x"], "positive integer"),
    (["record", "--task", "stack"], "--out"),
    (["inspect", "does/not/exist.h5"], "does/not/exist.h5"),
    (["check", "nope.py"], "nope.py"),
    (["frobnicate"], "invalid choice"),
])
def test_user_errors_are_one_line_exit_2(args, message):
    assert_one_line_error(cli(*args), message)


def test_inspect_bad_files_is_one_line_exit_2(tmp_path, swap_episodes):
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    text = tmp_path / "notes.h5"
    text.write_text("not an episode")
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = [1, 2, 3]
    truncated = tmp_path / "truncated.h5"
    data = (swap_episodes / "swap_0000.h5").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    for path in (empty, text, foreign, truncated):
        assert_one_line_error(cli("inspect", path, "--json"), path.name)


def _empty_partial(path: Path) -> Path:
    """What a recording killed before its first flush leaves: a partial with no frames."""
    from recorders.episode_file import EpisodeMeta, StreamSpec
    from recorders.episode_writer import EpisodeWriter

    w = EpisodeWriter(path, EpisodeMeta("swap", "swap", "sim", 10.0), [StreamSpec("action", "array", (8,), "float32", 10.0)])
    w.close_unfinished()
    return w.partial


def test_record_again_after_a_kill_keeps_finished_episodes_and_removes_empty_partials(tmp_path, swap_episodes):
    out = tmp_path / "again"
    out.mkdir()
    finished = out / "swap_0000.h5"
    finished.write_bytes((swap_episodes / "swap_0000.h5").read_bytes())
    before = finished.read_bytes()
    partial = _empty_partial(out / "swap_0001.h5")
    r = cli("record", "--task", "swap", "--episodes", "2", "--seed", "0", "--obs", "state", "--out", out)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert f"removed an interrupted recording with no frames: {partial}" in r.stderr
    assert "swap_0000.h5  ok, already recorded: kept" in r.stdout
    assert finished.read_bytes() == before  # never overwritten
    assert sorted(p.name for p in out.iterdir()) == ["swap_0000.h5", "swap_0001.h5"]
    summary = json.loads(cli("inspect", out / "swap_0001.h5", "--json").stdout)
    assert summary["success"] is True and "front_rgb" not in summary["streams"]
    assert summary["provenance"] == {"driver": "script", "robot": "sim", "models": []}


def test_inspect_says_when_a_file_is_an_unfinished_recording(tmp_path, swap_episodes):
    partial = tmp_path / "swap_0000.h5.partial"
    partial.write_bytes((swap_episodes / "swap_0000.h5").read_bytes())
    r = cli("inspect", partial)
    assert r.returncode == 0 and "UNFINISHED recording (.partial" in r.stderr, r.stderr
    assert json.loads(cli("inspect", partial, "--json").stdout)["unfinished"] is True
    assert json.loads(cli("inspect", swap_episodes / "swap_0000.h5", "--json").stdout)["unfinished"] is False
    assert_one_line_error(cli("inspect", _empty_partial(tmp_path / "killed.h5")), "unfinished recording (.partial)")


def test_segment_refuses_an_episode_without_its_calls(tmp_path, swap_episodes):
    lost, emptied = tmp_path / "lost.h5", tmp_path / "emptied.h5"
    for f in (lost, emptied):
        f.write_bytes((swap_episodes / "swap_0001.h5").read_bytes())
    with h5py.File(lost, "r+") as f:
        del f["calls"]
    with h5py.File(emptied, "r+") as f:
        f["calls"].resize((0,))
    for f, reason in ((lost, "no call log"), (emptied, "call log is empty although its labels name calls")):
        before = json.loads(cli("inspect", f, "--json").stdout)["segments"]
        assert len(before) > 1
        assert_one_line_error(cli("segment", f), reason)
        assert json.loads(cli("inspect", f, "--json").stdout)["segments"] == before  # labels untouched


def test_record_out_must_be_a_folder(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    assert_one_line_error(cli("record", "--task", "stack", "--out", f), "must be a folder")


def test_train_policy_writes_a_run_and_refuses_to_overwrite_it(swap_episodes, tmp_path):
    run = tmp_path / "run"
    r = cli("train", "policy", "--data", swap_episodes, "--out", run, "--steps", "12", "--tiny",
            "--checkpoint-every", "6", "--batch-size", "8")
    assert r.returncode == 0, r.stderr
    assert f"policy in {run / 'final'}" in r.stdout
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in steps if "event" not in m][-1] == 12
    assert (run / "final" / "model.safetensors").is_file()
    assert_one_line_error(cli("train", "policy", "--data", swap_episodes, "--out", run, "--tiny"),
                          "already holds a training run")
    assert_one_line_error(cli("train", "policy", "--data", tmp_path / "missing", "--out", tmp_path / "r2"),
                          "does not exist")
    r = cli("train", "policy", "--data", swap_episodes, "--out", run, "--steps", "12", "--tiny", "--resume",
            "--checkpoint-every", "6", "--batch-size", "8", "--flat")
    assert_one_line_error(r, "cond")  # resuming with another model is refused, naming what differs

    # The trained (tiny, so unsuccessful) policy executes the oracle program's calls: run and eval.
    r = cli("run", "--task", "stack", "--policy", run, "--out", tmp_path / "ep.h5", "--max-call-s", "1")
    assert r.returncode == 0, r.stderr
    assert 'pick("' in r.stdout and "failed" in r.stdout and (tmp_path / "ep.h5").is_file()
    with open_episode(tmp_path / "ep.h5") as ep:  # the episode names the policy that drove it, by checkpoint
        provenance = ep.meta.provenance
    assert provenance.driver == "policy" and provenance.robot == "sim"
    assert [(m.role, m.run, Path(m.checkpoint).name) for m in provenance.models] == [("policy", str(run), "final")]
    r = cli("eval", "--policy", run, "--tasks", "stack", "--episodes", "1", "--max-call-s", "1", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["tasks"][0]["task"] == "stack" and result["tasks"][0]["episodes"] == 1
    assert result["calls"]["pick"]["calls"] == 1
    assert_one_line_error(cli("run", "--task", "stack the cubes", "--policy", run), "task of the suite")
    assert_one_line_error(cli("eval", "--policy", tmp_path / "nope", "--tasks", "stack"), "no such policy")
