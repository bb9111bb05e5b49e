"""The Train workspace: run folders and commands (app/train_runs.py, no Qt), then the panel offscreen
training a tiny policy in a real subprocess, stopping and resuming it, evaluating it, and its errors."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from app.cli import parse_args
from app.errors import UserError
from app.eval_results import eval_table, latest_eval, parse_eval_output, save_eval
from app.train_command import options_from_args
from app.train_launch import TrainSettings, eval_argv, parse_tasks, resume_argv, train_argv
from app.train_runs import (CHECKPOINTS, FINAL, METRICS_FILE, OPTIONS_FILE, STATE_JSON, MetricsReader, RunError,
                            RunProgress, list_checkpoints, list_runs)
from models.planner_config import PlannerTrainOptions
from models.policy_config import TrainOptions


# ---- app/train_runs.py ---------------------------------------------------------------------------
def test_run_folder_names_match_the_trainer():
    import app.train_runs as tr
    import models.run_folder as rf
    from models.diffusion_policy import WEIGHTS_FILE

    assert (tr.OPTIONS_FILE, tr.METRICS_FILE, tr.CHECKPOINTS, tr.FINAL, tr.STATE_JSON) == \
        (rf.OPTIONS_FILE, rf.METRICS_FILE, rf.CHECKPOINTS, rf.FINAL, rf.STATE_JSON)
    assert tr.WEIGHTS_FILE == WEIGHTS_FILE


@pytest.mark.parametrize("model, options_class", [("policy", TrainOptions), ("planner", PlannerTrainOptions)])
def test_the_parsers_choices_defaults_and_help_are_the_configs(model, options_class, tmp_path):
    """app/train_command.py derives every `train` argument from the options' declarations."""
    from app.train_command import options_from_args
    from models.option_fields import NO_SWITCH, default_of, options_of

    args = parse_args(["train", model, "--data", "a.h5", "--out", str(tmp_path / "r")])
    options = options_from_args(options_class, args)
    for name, o in options_of(options_class).items():
        if name not in ("data", "out", "warmup_steps"):
            assert getattr(options, name) == default_of(options_class, name), name
    flagged = {o.flag: (name, o) for name, o in options_of(options_class).items() if o.flag}
    assert {"--data", "--out", "--steps", "--seed", "--device", "--resume", "--tiny", "--no-memory"} <= set(flagged)
    sub = _subparser(model)
    for action in sub._actions:
        if action.option_strings and action.option_strings[0] in flagged:
            name, o = flagged[action.option_strings[0]]
            assert action.dest == name and o.help in action.help
            if o.switch is NO_SWITCH:
                assert tuple(action.choices or ()) == o.choices
            else:
                assert action.const == o.switch and (not o.choices or o.switch in o.choices)


def _subparser(model: str):
    """The argparse parser of `train MODEL` (to read its actions)."""
    import argparse

    from app.errors import Parser
    from app.train_command import add_train_parsers

    top = Parser(prog="t")
    add_train_parsers(top.add_subparsers(dest="command", parser_class=Parser))
    train = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    return next(a for a in train._actions if isinstance(a, argparse._SubParsersAction)).choices[model]


def test_commands_leave_a_core_to_the_app_unless_the_user_chose_threads():
    from app.train_launch import command_env

    assert command_env({}, cpus=8) == {"OMP_NUM_THREADS": "7"}
    assert command_env({}, cpus=1) == {"OMP_NUM_THREADS": "1"}
    assert command_env({"OMP_NUM_THREADS": "4"}, cpus=8) == {}


@pytest.mark.parametrize("variant, flat, no_memory", [("call", False, False), ("flat", True, False),
                                                      ("no-memory", False, True)])
def test_train_argv_is_what_the_cli_parses_for_each_variant(variant, flat, no_memory, tmp_path):
    files = (tmp_path / "a.h5", tmp_path / "b.h5")
    s = TrainSettings(data=files, out=tmp_path / "runs" / "r", tasks=("stack",), edited_only=True, obs="rgb",
                      variant=variant, frame="world", prediction="epsilon", down_dims=(64, 128), steps=20,
                      batch_size=8, lr=3e-4, seed=5,
                      device="cpu", checkpoint_every=10, tiny=True)
    args = parse_args(train_argv(s))
    assert (args.command, args.model) == ("train", "policy")
    options = options_from_args(TrainOptions, args)
    assert options == s.options()
    assert options.data == tuple(map(str, files)) and options.out == str(tmp_path / "runs" / "r")
    assert (options.cond == "flat", not options.memory, options.obs, options.tasks, options.edited_only, options.tiny,
            options.frame, options.down_dims, options.prediction) == \
        (flat, no_memory, "rgb", ("stack",), True, True, "world", (64, 128), "epsilon")
    assert (options.steps, options.batch_size, options.lr, options.seed, options.device, options.checkpoint_every) == \
        (20, 8, 3e-4, 5, "cpu", 10)
    assert not options.resume
    plain = options_from_args(TrainOptions, parse_args(train_argv(TrainSettings(data=files, out=tmp_path / "r2"))))
    assert plain == TrainOptions(data=files, out=tmp_path / "r2")  # every other value: the trainer's default


@pytest.mark.parametrize("change, message", [
    (dict(data=()), "no episodes selected"), (dict(variant="big"), "variant must be one of"),
    (dict(steps=0), "steps must be >= 1, got 0"), (dict(lr=0.0), "lr must be > 0"),
    (dict(tasks=("juggle",)), "unknown task"), (dict(device="tpu"), "device must be one of"),
    (dict(frame="camera"), "frame must be one of"), (dict(down_dims=(64, 0)), "down_dims must be >= 1, got 0"),
    (dict(variant="planner", batch_size=0), "batch_size must be >= 1"),
])
def test_settings_refuse_bad_values_with_one_line(change, message):
    with pytest.raises(ValueError, match=message):
        TrainSettings(**{**dict(data=("a.h5",), out="runs/r"), **change})


def _fake_run(run: Path, events: list[dict], steps: list[int] = (), checkpoints=(), final=False) -> Path:
    """A run folder laid out as models/train_policy.py writes it (without the weights' contents)."""
    run.mkdir(parents=True)
    (run / OPTIONS_FILE).write_text(json.dumps({
        "data": ["/data/a.h5"], "out": str(run), "obs": "state", "cond": "flat", "memory": True, "tasks": ["stack"],
        "down_dims": [64, 128],  # and no "frame" or "prediction": a run from before those options
        "edited_only": False, "steps": 40, "batch_size": 8, "lr": 0.001, "seed": 2, "device": "cpu",
        "mixed_precision": "no", "checkpoint_every": 10, "num_workers": 0, "tiny": True}))
    lines = [events[0]] + [{"step": s, "loss": 1.0 / s, "diffusion": 0.5 / s, "done": 0.5 / s, "lr": 1e-3,
                            "samples_per_s": 100.0, "elapsed_s": s / 10, "eta_s": (40 - s) / 10} for s in steps]
    (run / METRICS_FILE).write_text("".join(json.dumps(m) + "\n" for m in lines + events[1:]))
    for step in checkpoints:
        folder = run / CHECKPOINTS / f"step_{step:06d}"
        folder.mkdir(parents=True)
        (folder / STATE_JSON).write_text(json.dumps({"step": step}))
    (run / CHECKPOINTS / "step_000099.tmp").mkdir(parents=True)  # a checkpoint being written
    (run / CHECKPOINTS / "step_000050").mkdir()  # half-written: no trainer_state.json yet
    if final:
        (run / FINAL).mkdir()
        (run / FINAL / "model.safetensors").write_bytes(b"")
    return run


def test_resume_argv_keeps_the_runs_own_options(tmp_path):
    started = {"event": "started", "step": 0, "steps": 40}
    run = _fake_run(tmp_path / "r", [started, {"event": "stopped", "step": 20}], [10, 20], checkpoints=[10, 20])
    assert resume_argv(run) == ["train", "policy", "--out", str(run), "--resume"]  # the run reads its own options
    options = options_from_args(TrainOptions, parse_args(resume_argv(run)))
    assert options.resume and options.out == str(run) and options.data == ("/data/a.h5",)
    assert (options.cond, options.memory, options.tiny, options.tasks, options.steps, options.lr, options.seed) == \
        ("flat", True, True, ("stack",), 40, 0.001, 2)
    # keys the run predates take the older runs' values (models/policy_config.OLDER_DEFAULTS)
    assert (options.frame, options.prediction, options.down_dims) == ("world", "epsilon", (64, 128))
    longer = options_from_args(TrainOptions, parse_args(resume_argv(run) + ["--steps", "80", "--device", "auto"]))
    assert (longer.steps, longer.device, longer.warmup_steps) == (80, "auto", options.warmup_steps)
    with pytest.raises(UserError, match="a resumed run keeps the options it was started with; obs was 'state'"):
        options_from_args(TrainOptions, parse_args(resume_argv(run) + ["--obs", "rgb"]))
    bare = _fake_run(tmp_path / "bare", [started])
    with pytest.raises(RunError, match="no checkpoint to resume from"):
        resume_argv(bare)
    with pytest.raises(RunError, match="no readable options.json"):
        resume_argv(tmp_path)


def test_metrics_reader_reads_only_new_whole_lines(tmp_path):
    path = tmp_path / METRICS_FILE
    reader = MetricsReader(path)
    assert reader.read_new().records == []  # no file yet
    path.write_text('{"event": "started", "step": 0, "steps": 30}\n{"step": 10, "loss": 1.5}\n{"step": 20, "lo')
    first = reader.read_new()
    assert [e["event"] for e in first.events] == ["started"] and [s["step"] for s in first.steps] == [10]
    assert reader.read_new().records == []  # the half-written line waits for its newline
    with open(path, "a") as f:
        f.write('ss": 1.2}\nnot json\n{"loss": 3}\n{"event": "finished", "step": 30}\n')
    second = reader.read_new()
    assert [s["step"] for s in second.steps] == [20] and second.steps[0]["loss"] == 1.2
    assert [e["event"] for e in second.events] == ["finished"] and reader.bad_lines == 2
    progress = RunProgress()
    progress.add(first)
    progress.add(second)
    assert (progress.total, progress.step, progress.state, progress.latest["loss"]) == (30, 30, "finished", 1.2)
    path.unlink()
    path.write_text('{"event": "started", "step": 0, "steps": 5}\n')  # a new file: start over
    again = reader.read_new()
    assert again.restarted and progress.add(again) and progress.steps == [] and progress.total == 5


def test_durations_read_as_a_person_would_say_them():
    from app.train_runs import format_duration

    assert [format_duration(s) for s in (None, 4.4, 125, 3725)] == ["?", "4 s", "2 min 05 s", "1 h 02 min"]


def test_a_resume_drops_the_steps_the_killed_attempt_logged_after_its_checkpoint(tmp_path):
    lines = [{"event": "started", "step": 0, "steps": 30}, {"step": 10, "loss": 2.0}, {"step": 20, "loss": 1.0},
             {"event": "resumed", "step": 10, "steps": 30}, {"step": 20, "loss": 1.1}, {"step": 30, "loss": 0.9}]
    (tmp_path / METRICS_FILE).write_text("".join(json.dumps(m) + "\n" for m in lines))
    progress = RunProgress()
    progress.add(MetricsReader(tmp_path / METRICS_FILE).read_new())
    assert [(s["step"], s["loss"]) for s in progress.steps] == [(10, 2.0), (20, 1.1), (30, 0.9)]
    assert progress.state == "started"


def test_runs_are_listed_with_state_and_complete_checkpoints(tmp_path):
    runs = tmp_path / "runs"
    started = {"event": "started", "step": 0, "steps": 40}
    done = _fake_run(runs / "done", [started, {"event": "finished", "step": 40}], [10, 20, 30, 40], [20, 40], True)
    stopped = _fake_run(runs / "stopped", [started, {"event": "stopped", "step": 23}], [10, 20], [10, 23])
    killed = _fake_run(runs / "killed", [started], [10, 20, 30], [10, 20])
    (runs / "not-a-run").mkdir()
    os.utime(done / METRICS_FILE, (1e9, 1e9))  # oldest
    found = {r.name: r for r in list_runs(runs)}
    assert set(found) == {"done", "stopped", "killed"} and list_runs(runs)[-1].name == "done"
    assert found["done"].describe() == "finished 40 of 40 steps" and not found["done"].resumable
    assert [(c.name, c.step, c.final) for c in found["done"].checkpoints] == \
        [("step_000020", 20, False), ("step_000040", 40, False), ("final", 40, True)]
    assert found["stopped"].describe() == "stopped at step 23 of 40" and found["stopped"].resumable
    assert found["stopped"].loss == pytest.approx(1 / 20)
    assert found["killed"].describe() == "unfinished at step 30 of 40; resumes from 20"
    assert {r.name: r.state for r in list_runs(runs, active=[killed])}["killed"] == "running"
    newest = max(list_checkpoints(stopped), key=lambda c: c.mtime)
    assert found["stopped"].newest_policy == newest and list_runs(tmp_path / "missing") == []


POLICY_EVAL = {"policy": "/runs/r", "split": "train", "robot": "sim", "stalls": 0,
               "inference_ms": {"chunks": 4, "mean": 12.5, "p95": 20.0, "max": 21.0},
               "tasks": [{"task": "stack", "episodes": 2, "successes": 1, "rate": 0.5, "ci95": [0.095, 0.905]}],
               "calls": {"place": {"calls": 2, "ok": 1, "rate": 0.5, "ci95": [0.095, 0.905]},
                         "pick": {"calls": 3, "ok": 2, "rate": 2 / 3, "ci95": [0.208, 0.939]}}}


def test_eval_output_becomes_task_and_call_rows(tmp_path):
    stdout = "some warning\n" + json.dumps(POLICY_EVAL) + "\n"
    rows = eval_table(parse_eval_output(stdout))
    assert [(r.name, r.successes, r.episodes, r.is_call) for r in rows] == \
        [("stack", 1, 2, False), ("pick", 2, 3, True), ("place", 1, 2, True)]
    assert rows[0].interval_text == "10% – 90%"
    oracle = {"tasks": [{"task": "swap", "episodes": 4, "successes": 4, "rate": 1.0, "ci95": [0.51, 1.0]}],
              "calls": {"pick": {"calls": 8, "rate": 1.0}}}
    assert [(r.name, r.successes, r.episodes, r.ci95) for r in eval_table(oracle)][1] == ("pick", 8, 8, None)
    with pytest.raises(RunError, match="printed no result"):
        parse_eval_output("error: no such policy\n")
    assert latest_eval(tmp_path) is None
    save_eval(tmp_path, POLICY_EVAL, now=1000)
    save_eval(tmp_path, oracle, now=2000)
    assert latest_eval(tmp_path) == oracle
    args = parse_args(eval_argv(tmp_path, parse_tasks(" stack, pick_place "), 3, seed=4, max_call_s=5))
    assert (args.policy, args.tasks, args.episodes, args.seed, args.json, args.max_call_s) == \
        (str(tmp_path), "stack,pick_place", 3, 4, True, 5.0)
    with pytest.raises(RunError, match="unknown task"):
        parse_tasks("stack,juggle")


# ---- the panel -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> Path:
    """Two pick_place demonstrations and one stack, state only (cheap to record and to train on)."""
    from recorders.demo_recorder import RecordOptions, record_demo
    from recorders.task_suite import make_instance

    from recorders.episode_file import open_episode, write_labels

    folder = tmp_path_factory.mktemp("train_gui_episodes")
    for task, seed in (("pick_place", 0), ("pick_place", 1), ("stack", 0)):
        record_demo(make_instance(task, seed), folder / f"{task}_{seed:04d}.h5", RecordOptions(obs="state"))
    with open_episode(folder / "pick_place_0001.h5") as ep:  # as if a person had fixed its labels
        labels = [{**s.to_dict(), "source": "edited"} for s in ep.labels]
    write_labels(folder / "pick_place_0001.h5", labels)
    return folder


def test_episodes_are_chosen_by_task_edited_labels_and_ticks(make_panel, episodes):
    chooser = make_panel(episodes).chooser
    assert chooser.table.rowCount() == 3 and chooser.task.count() == 3  # all tasks, pick_place, stack
    chooser.edited_only.setChecked(True)
    assert [e.name for e in chooser.selected()] == ["pick_place_0001.h5"]
    assert chooser.count_label.text().endswith("selected (2 filtered out)")
    chooser.edited_only.setChecked(False)
    chooser.set_task("stack")
    assert [e.name for e in chooser.selected()] == ["stack_0000.h5"]
    chooser.set_task(None)
    chooser.set_ticked(episodes / "stack_0000.h5", False)
    assert [e.name for e in chooser.selected()] == ["pick_place_0000.h5", "pick_place_0001.h5"]
    assert chooser.table.item(2, 0).checkState().name == "Unchecked"


@pytest.fixture
def make_panel(qtbot, tmp_path):
    panels = []

    def make(data_dir):
        from widgets.train_panel import TrainPanel

        panel = TrainPanel(data_dir, tmp_path / "runs")
        # the tiny model trains fastest on one thread (torch's pool crawls when the cores are busy)
        panel.set_command_env({"OMP_NUM_THREADS": "1"})
        qtbot.addWidget(panel)
        panel.resize(1400, 860)
        panel.show()
        panels.append(panel)
        return panel

    yield make
    for panel in panels:  # a failed test must not leave a trainer running
        panel.shutdown()


def tiny_settings(panel, steps: int, checkpoint_every: int, name: str) -> None:
    panel.form.tiny.setChecked(True)
    panel.form.steps.setValue(steps)
    panel.form.batch_size.setValue(4)
    panel.form.lr.setText("1e-3")
    panel.form.checkpoint_every.setValue(checkpoint_every)
    panel.form.device.setCurrentText("cpu")
    panel.form.run_name.setText(name)


def run_state(panel, name: str) -> str:
    return panel.runs_view.state_text(name)


def test_the_train_form_starts_at_the_trainers_defaults(qtbot):
    """The form's choices, values and tooltips come from the options' declarations, per trainer."""
    from models.option_fields import default_of, options_of
    from models.planner_config import SCRATCH_LR
    from widgets.train_settings_form import TrainSettingsForm

    form = TrainSettingsForm()
    qtbot.addWidget(form)
    combos = {"obs": form.obs, "frame": form.frame, "prediction": form.prediction, "device": form.device}
    for name, box in combos.items():
        assert tuple(box.itemData(i) for i in range(box.count())) == options_of(TrainOptions)[name].choices
        assert box.currentData() == default_of(TrainOptions, name)
        assert box.toolTip() == options_of(TrainOptions)[name].help
    assert form.widths.text() == ",".join(map(str, default_of(TrainOptions, "down_dims")))
    spins = {"steps": form.steps, "batch_size": form.batch_size, "seed": form.seed,
             "checkpoint_every": form.checkpoint_every}
    assert {n: b.value() for n, b in spins.items()} == {n: default_of(TrainOptions, n) for n in spins}
    assert float(form.lr.text()) == default_of(TrainOptions, "lr")
    settings = form.settings([Path("a.h5")], Path("runs"))
    assert replace(settings.options(), out="x") == TrainOptions(data=("a.h5",), out="x")

    form.variant.setCurrentIndex(form.variant.findData("planner"))
    assert (form.steps.value(), form.batch_size.value(), float(form.lr.text())) == \
        (default_of(PlannerTrainOptions, "steps"), default_of(PlannerTrainOptions, "batch_size"), SCRATCH_LR)
    form.steps.setValue(77)  # a value the user chose stays when the model changes back
    form.variant.setCurrentIndex(form.variant.findData("call"))
    assert (form.steps.value(), form.batch_size.value()) == (77, default_of(TrainOptions, "batch_size"))


@pytest.mark.slow
def test_the_log_names_each_skipped_episode_and_why(make_panel, episodes, qtbot, tmp_path):
    import shutil

    from PySide6.QtCore import Qt

    from tests.synthetic_episodes import write_pick_place

    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(episodes / "pick_place_0000.h5", data)
    glitch = write_pick_place(data / "glitch.h5", nan_in="ee_pose", nan_frame=3)
    panel = make_panel(data)
    tiny_settings(panel, steps=2, checkpoint_every=0, name="nan")
    with qtbot.waitSignal(panel.training_finished, timeout=150_000) as finished:
        qtbot.mouseClick(panel.train_button, Qt.MouseButton.LeftButton)
    assert finished.args == [0], panel.message.text()
    log = panel.log.toPlainText()
    assert f"skipped {glitch}: stream ee_pose holds NaN or inf at frame 3" in log, log


@pytest.mark.slow
def test_train_a_filtered_dataset_then_evaluate_it(make_panel, episodes, qtbot):
    from PySide6.QtCore import Qt

    panel = make_panel(episodes)
    assert panel.chooser.table.rowCount() == 3
    panel.chooser.set_task("pick_place")
    assert panel.chooser.table.rowCount() == 2 and panel.chooser.count_label.text().startswith("2 episodes")
    tiny_settings(panel, steps=20, checkpoint_every=10, name="pp")
    with qtbot.waitSignal(panel.training_finished, timeout=150_000) as finished:
        qtbot.mouseClick(panel.train_button, Qt.MouseButton.LeftButton)
        assert panel.is_training() and not panel.train_button.isEnabled() and panel.stop_button.isEnabled()
    assert finished.args == [0], panel.message.text()
    run = panel.runs_dir / "pp"
    options = json.loads((run / OPTIONS_FILE).read_text())
    assert sorted(Path(p).name for p in options["data"]) == ["pick_place_0000.h5", "pick_place_0001.h5"]
    assert options["tasks"] == ["pick_place"] and options["tiny"] and options["steps"] == 20
    assert options["frame"] == "anchor" and options["cond"] == "call" and options["memory"]
    assert panel.progress.value() == panel.progress.maximum() == 20
    assert panel.plot.points("loss") == 2 and panel.plot.points("lr") == 2  # logged every 10 steps
    assert panel.runs_view.checkpoint_names() == ["step_000010", "step_000020", "final"]
    assert run_state(panel, "pp") == "finished 20 of 20 steps" and "trained 20 steps" in panel.message.text()
    assert panel.train_button.isEnabled() and not panel.stop_button.isEnabled() and not panel.resume_button.isEnabled()

    box = panel.evaluation
    box.tasks.setText("pick_place")
    box.episodes.setValue(1)
    box.max_call_s.setValue(5)
    with qtbot.waitSignal(box.evaluation_finished, timeout=120_000) as evaluated:
        qtbot.mouseClick(box.evaluate_button, Qt.MouseButton.LeftButton)
    assert evaluated.args[0] is not None, box.status.text()
    assert box.table.item(0, 0).text() == "pick_place" and box.table.item(0, 1).text() in ("0/1", "1/1")
    assert box.table.rowCount() >= 2 and box.table.item(1, 0).text().strip().endswith("()")  # per call type
    assert latest_eval(run)["tasks"][0]["task"] == "pick_place"


@pytest.mark.slow
def test_stop_writes_a_checkpoint_and_resume_finishes_the_run(make_panel, episodes, qtbot):
    from PySide6.QtCore import Qt

    panel = make_panel(episodes)
    tiny_settings(panel, steps=80, checkpoint_every=0, name="sr")
    assert panel.start_training()
    # bounds, not speeds: a training process starts in seconds alone, in minutes beside other work
    qtbot.waitUntil(lambda: panel.poll() or panel.plot.points() >= 1, timeout=300_000)  # the first metrics
    with qtbot.waitSignal(panel.training_finished, timeout=180_000) as finished:
        qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)
        assert not panel.stop_button.isEnabled()
    assert finished.args == [0]
    state = run_state(panel, "sr")
    assert state.startswith("stopped at step"), state
    k = int(state.split()[3])
    assert 10 <= k < 80 and panel.runs_view.checkpoint_names() == [f"step_{k:06d}"]
    assert "stopped at step" in panel.message.text() and panel.resume_button.isEnabled()

    with qtbot.waitSignal(panel.training_finished, timeout=300_000) as finished:
        qtbot.mouseClick(panel.resume_button, Qt.MouseButton.LeftButton)
    assert finished.args == [0], panel.message.text()
    assert run_state(panel, "sr") == "finished 80 of 80 steps"
    assert panel.progress.value() == 80 and panel.runs_view.checkpoint_names() == [f"step_{k:06d}", "step_000080",
                                                                                    "final"]
    lines = [json.loads(line) for line in (panel.runs_dir / "sr" / METRICS_FILE).read_text().splitlines()]
    events = [m["event"] for m in lines if "event" in m]
    assert events == ["started", "stopped", "resumed", "finished"]
    assert panel.plot.points() == 8  # steps 10, 20, ..., 80: the stop and resume left no gap or repeat


@pytest.mark.slow
def test_shutdown_stops_a_running_training_cleanly(make_panel, episodes, qtbot):
    panel = make_panel(episodes)
    tiny_settings(panel, steps=5000, checkpoint_every=0, name="long")
    assert panel.start_training()
    qtbot.waitUntil(lambda: panel.poll() or panel.plot.points() >= 1, timeout=90_000)
    panel.shutdown()
    assert not panel.is_training()
    run = panel.runs_dir / "long"
    last = json.loads((run / METRICS_FILE).read_text().splitlines()[-1])
    assert last["event"] == "stopped" and 10 <= last["step"] < 5000
    assert [c.step for c in list_checkpoints(run)] == [last["step"]]


def test_errors_are_one_line_and_start_nothing(make_panel, episodes, tmp_path, qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    missing = make_panel(tmp_path / "nowhere")
    assert "is not a folder" in missing.message.text()
    assert not missing.start_training() and "no data folder" in missing.message.text()

    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    empty = make_panel(empty_dir)
    assert empty.chooser.count_label.text() == "no episodes in empty"
    empty.window().activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is empty.window(), timeout=3000)
    empty.chooser.table.setFocus()
    qtbot.keyClick(empty.chooser.table, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)  # Ctrl+Enter
    assert empty.message.text().startswith("no episodes selected") and not empty.is_training()
    assert not empty.runs_dir.exists()

    panel = make_panel(episodes)
    panel.chooser.tick_all(False)
    assert not panel.start_training() and panel.message.text().startswith("no episodes selected")
    panel.chooser.tick_all(True)
    panel.form.lr.setText("fast")
    assert not panel.start_training() and "learning rate must be a number" in panel.message.text()
    panel.form.lr.setText("1e-3")
    (panel.runs_dir / "taken").mkdir(parents=True)
    (panel.runs_dir / "taken" / OPTIONS_FILE).write_text("{}")
    panel.form.run_name.setText("taken")
    assert not panel.start_training() and "already holds a run" in panel.message.text()
    panel.form.run_name.setText("../escape")
    assert not panel.start_training() and "plain folder name" in panel.message.text()
    assert not panel.is_training() and "\n" not in panel.message.text()


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "darwin", reason="the failure needs a machine without an Apple GPU")
def test_a_training_command_that_fails_shows_its_error_line(make_panel, episodes, qtbot):
    panel = make_panel(episodes)
    tiny_settings(panel, steps=5, checkpoint_every=0, name="mps")
    panel.form.device.setCurrentText("mps")
    with qtbot.waitSignal(panel.training_finished, timeout=90_000) as finished:
        assert panel.start_training()
    assert finished.args == [2]
    assert panel.message.text() == "training failed (exit 2): device mps was asked for, but torch sees no Apple GPU"
    assert panel.train_button.isEnabled() and not panel.stop_button.isEnabled()


# ---- the planner ---------------------------------------------------------------------------------
def test_planner_commands_are_what_the_cli_parses_and_resume_keeps_the_runs_options(tmp_path):
    from app.train_launch import PLANNER, default_run_name, is_planner_run

    s = TrainSettings(data=("a.h5", "b.h5"), out=tmp_path / "runs" / "v", tasks=("swap",), variant=PLANNER, steps=7,
                      batch_size=3, lr=1e-3, device="cpu", checkpoint_every=2, tiny=True, colour_swaps=2,
                      scene_facts=True)
    args = parse_args(train_argv(s))
    assert args.model == "planner" and options_from_args(PlannerTrainOptions, args) == s.options()
    assert (s.options().steps, s.options().batch_size, s.options().lr, s.options().tasks) == (7, 3, 1e-3, ("swap",))
    assert (s.options().colour_swaps, s.options().scene_facts, s.options().rephrasings) == (2, True, 0)
    assert s.options().balance_tasks  # the default; a run saved before the option existed did not balance:
    older = {k: v for k, v in s.options().to_dict().items() if k != "balance_tasks"}
    assert PlannerTrainOptions.from_dict(older).balance_tasks is False
    run = tmp_path / "runs" / "v"
    (run / CHECKPOINTS / "step_000002").mkdir(parents=True)
    (run / CHECKPOINTS / "step_000002" / STATE_JSON).write_text("{}")
    options = PlannerTrainOptions(data=("a.h5",), out=str(run), val=("c.h5",), memory=False, steps=7, tiny=True)
    (run / OPTIONS_FILE).write_text(json.dumps(options.to_dict()))
    assert is_planner_run(run) and not is_planner_run(tmp_path)
    again = options_from_args(PlannerTrainOptions, parse_args(resume_argv(run)))
    assert again == replace(options, resume=True)
    assert (again.memory, again.tiny, again.val) == (False, True, ("c.h5",))
    evaluate = parse_args(eval_argv(run, ("swap",), 2, planner=True))
    assert (evaluate.planner, evaluate.policy, evaluate.episodes) == (str(run), "oracle", 2)
    assert default_run_name(PLANNER, "state", now=0).startswith("planner-")


@pytest.fixture(scope="module")
def camera_episodes(tmp_path_factory) -> Path:
    """Two pick_place demonstrations with small front-camera frames (the planner's input)."""
    from recorders.demo_recorder import record_demo
    from recorders.cell.scene import CameraSettings
    from recorders.task_suite import make_instance

    folder = tmp_path_factory.mktemp("train_gui_camera_episodes")
    for seed in (0, 1):
        record_demo(make_instance("pick_place", seed, cameras=CameraSettings(48, 48)), folder / f"pick_place_{seed:04d}.h5")
    return folder


@pytest.mark.slow
def test_train_a_planner_then_evaluate_it_with_the_oracle_skills(make_panel, camera_episodes, qtbot, tmp_path):
    from PySide6.QtCore import Qt

    panel = make_panel(camera_episodes)
    form = panel.form
    form.variant.setCurrentIndex(form.variant.findData("planner"))
    assert not form.obs.isEnabled() and not form.frame.isEnabled() and not form.widths.isEnabled()
    assert form.steps.value() == 2000 and form.lr.text() == "1e-3"  # the planner's defaults
    assert form.colour_swaps.isEnabled() and form.scene_facts.isEnabled()
    form.colour_swaps.setValue(1)
    form.rephrasings.setValue(1)
    form.scene_facts.setChecked(True)
    form.balance_tasks.setChecked(False)
    tiny_settings(panel, steps=6, checkpoint_every=3, name="vlm")
    with qtbot.waitSignal(panel.training_finished, timeout=150_000) as finished:
        qtbot.mouseClick(panel.train_button, Qt.MouseButton.LeftButton)
    assert finished.args == [0], panel.message.text()
    run = panel.runs_dir / "vlm"
    saved_options = json.loads((run / OPTIONS_FILE).read_text())
    assert saved_options["model"] == "planner"
    assert (saved_options["colour_swaps"], saved_options["rephrasings"], saved_options["scene_facts"],
            saved_options["balance_tasks"]) == (1, 1, True, False)
    assert json.loads((run / "final" / "planner.json").read_text())["planner"]["camera"]["intrinsics"]["width"] == 48
    assert panel.runs_view.checkpoint_names() == ["step_000003", "step_000006", "final"]
    assert panel.plot.points("loss") >= 1
    box = panel.evaluation
    assert box.planner and "newest planner" in box.target.text()
    box.tasks.setText("pick_place")
    box.episodes.setValue(1)
    with qtbot.waitSignal(box.evaluation_finished, timeout=120_000) as evaluated:
        qtbot.mouseClick(box.evaluate_button, Qt.MouseButton.LeftButton)
    assert evaluated.args[0] is not None, box.status.text()
    assert box.table.item(0, 0).text() == "pick_place" and box.table.item(0, 1).text() in ("0/1", "1/1")
    saved = latest_eval(run)
    assert saved["planner"] == str(run) and saved["policy"] == "oracle"
    form.variant.setCurrentIndex(form.variant.findData("call"))
    assert form.obs.isEnabled() and form.steps.value() == 6  # what the user typed stays
    assert not form.colour_swaps.isEnabled() and not form.scene_facts.isEnabled()
    panel.grab().save(str(tmp_path / "train_planner.png"))
