"""Training the policy on a supervised run's interventions: which segments a takeover overlaps
(models/policy_dataset.py), `--interventions only` and `--intervention-weight W` (models/policy_config.py,
the weighted draws of models/train_policy.py), the CLI and the Train form that derive from them, and a
tiny run that trains on the operator's corrections only."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from app.cli import parse_args
from app.errors import UserError
from app.train_command import option_argv, options_from_args
from app.train_launch import TrainSettings, form_defaults, help_of, train_argv
from models.option_fields import default_of, options_of, resumed_options
from models.policy_config import TrainOptions
from models.policy_dataset import PolicyDataset
from models.train_policy import StepBatches, sample_weights, train_policy
from recorders.intervention import Intervention, takeover_frames
from tests.synthetic_episodes import FRAMES, write_pick_place, write_supervised

PICK, PLACE = 'pick("red cube")', 'place("red cube", "blue cube")'


@pytest.fixture
def data(tmp_path):
    """A supervised run (the operator took over the pick at frames 10..19) and a plain demonstration."""
    return write_supervised(tmp_path / "supervised.h5"), write_pick_place(tmp_path / "plain.h5")


def tiny(data, out, **kw) -> TrainOptions:
    base = dict(data=[str(p) for p in data], out=str(out), tiny=True, steps=3, batch_size=4, lr=1e-3,
                warmup_steps=1, checkpoint_every=0, log_every=1, seed=0, device="cpu")
    return TrainOptions(**{**base, **kw})


# ---- which segments are interventions ---------------------------------------------------------------
def test_takeover_frames_are_those_in_the_stretch_half_open_and_only_of_takeovers():
    times = np.arange(6) / 10.0
    interventions = [Intervention("takeover", PICK, 0.1, 0.3), Intervention("skip", PICK, 0.5, 0.5),
                     Intervention("abort", PICK, 0.4, 0.6)]
    assert takeover_frames(interventions, times).tolist() == [False, True, True, False, False, False]
    assert takeover_frames([], times).tolist() == [False] * 6


def test_a_segment_is_an_intervention_when_a_takeover_covers_one_of_its_frames(data, tmp_path):
    supervised, plain = data
    ds = PolicyDataset([supervised, plain])
    assert [(s.episode, s.start, s.end, s.code, s.intervention) for s in ds.segments] == [
        (0, 0, 10, PICK, False), (0, 10, 20, PICK, True), (0, 20, FRAMES, PLACE, False),  # the skip covers no frame
        (1, 0, 20, PICK, False), (1, 20, FRAMES, PLACE, False)]
    d = ds.describe()
    assert (d["interventions"], d["intervention_segments"], d["intervention_frames"], d["left_out_segments"],
            d["segments"], d["samples"]) == ("all", 1, 10, 0, 5, 2 * FRAMES)
    # a stretch that runs one frame into the place makes the place an intervention too
    longer = write_supervised(tmp_path / "longer.h5", takeover_end=2.01)
    assert [s.intervention for s in PolicyDataset([longer]).segments] == [False, True, True]
    # the flat baseline's one segment per episode is an intervention when a takeover lies in it
    assert [s.intervention for s in PolicyDataset([supervised, plain], cond="flat").segments] == [True, False]


def test_only_keeps_exactly_the_segments_a_takeover_overlaps(data):
    supervised, plain = data
    ds = PolicyDataset([supervised, plain], interventions="only")
    assert [(s.episode, s.start, s.end, s.code) for s in ds.segments] == [(0, 10, 20, PICK)]
    assert [s.t for s in ds.samples] == list(range(10, 20)) and len(ds) == 10
    d = ds.describe()
    assert (d["episodes"], d["interventions"], d["segments"], d["intervention_segments"], d["intervention_frames"],
            d["left_out_segments"], d["skipped"]) == (2, "only", 1, 1, 10, 4, [])
    assert ds[0]["action"].shape == (16, 8)  # the item is cut from the episode as with "all"
    with pytest.raises(ValueError, match="interventions must be one of all, only, got 'some'"):
        PolicyDataset([supervised], interventions="some")


# ---- the weighted draws ----------------------------------------------------------------------------------
def test_intervention_samples_weigh_w_and_are_drawn_w_times_as_often(data):
    ds = PolicyDataset(data)
    flags = np.array([ds.segments[s.segment].intervention for s in ds.samples])
    assert flags.sum() == 10
    weights = sample_weights(ds, 3.0)
    assert weights.dtype == torch.float64 and weights.shape == (len(ds),)
    assert weights[torch.from_numpy(flags)].eq(3.0).all() and weights[torch.from_numpy(~flags)].eq(1.0).all()
    assert sample_weights(ds, 1.0) is None  # weight 1: plain permutations, as before the option existed
    assert sample_weights(PolicyDataset(data, interventions="only"), 3.0) is None  # all equal

    batches = list(StepBatches(len(ds), 16, seed=5, first=1, last=2000, weights=weights))
    counts = Counter(i for batch in batches for i in batch)
    drawn = np.array([counts[i] for i in range(len(ds))], dtype=float)
    per_intervention, per_other = drawn[flags].mean(), drawn[~flags].mean()
    assert per_intervention / per_other == pytest.approx(3.0, rel=0.1)
    # the draws are a function of (seed, step): a resumed run draws the same batches
    assert list(StepBatches(len(ds), 16, seed=5, first=1501, last=2000, weights=weights)) == batches[1500:]
    unweighted = list(StepBatches(len(ds), 16, seed=5, first=1, last=5))
    assert all(len(set(b)) == 16 for b in unweighted)  # without weights: a permutation per epoch
    with pytest.raises(ValueError, match="one weight per sample"):
        StepBatches(len(ds), 16, seed=5, first=1, last=2, weights=weights[:-1])


# ---- options, CLI and Train form --------------------------------------------------------------------
def test_the_options_their_flags_defaults_and_resume_rule():
    o = options_of(TrainOptions)
    assert (o["interventions"].flag, o["interventions"].choices, default_of(TrainOptions, "interventions")) == \
        ("--interventions", ("all", "only"), "all")
    assert (o["intervention_weight"].flag, o["intervention_weight"].minimum,
            default_of(TrainOptions, "intervention_weight")) == ("--intervention-weight", 1, 1.0)
    assert o["interventions"].resume == o["intervention_weight"].resume == "keep"  # they shape the data
    with pytest.raises(ValueError, match="intervention_weight must be >= 1, got 0.5"):
        TrainOptions(data=("a.h5",), out="r", intervention_weight=0.5)
    with pytest.raises(ValueError, match="interventions must be one of all, only, got 'most'"):
        TrainOptions(data=("a.h5",), out="r", interventions="most")
    old = TrainOptions.from_dict({"data": ["a.h5"], "out": "r"})  # a run from before the options existed
    assert (old.interventions, old.intervention_weight) == ("all", 1.0)
    saved = TrainOptions(data=("a.h5",), out="r", interventions="only", intervention_weight=2)
    assert saved.intervention_weight == 2.0 and isinstance(saved.intervention_weight, float)
    assert TrainOptions.from_dict(json.loads(json.dumps(saved.to_dict()))) == saved
    assert resumed_options(saved, {"interventions": "only", "steps": 10}).steps == 10
    for change in ({"interventions": "all"}, {"intervention_weight": 3.0}):
        with pytest.raises(ValueError, match="a resumed run keeps the options it was started with"):
            resumed_options(saved, change)


def test_the_cli_parses_both_options_and_refuses_a_weight_below_one(tmp_path):
    plain = options_from_args(TrainOptions, parse_args(["train", "policy", "--data", "a.h5", "--out", "r"]))
    assert (plain.interventions, plain.intervention_weight) == ("all", 1.0)
    args = parse_args(["train", "policy", "--data", "a.h5", "--out", "r", "--interventions", "only",
                       "--intervention-weight", "2.5"])
    options = options_from_args(TrainOptions, args)
    assert (options.interventions, options.intervention_weight) == ("only", 2.5)
    assert options_from_args(TrainOptions, parse_args(["train", "policy", *option_argv(options)])) == options
    with pytest.raises(UserError, match="intervention_weight must be >= 1, got 0.5"):
        options_from_args(TrainOptions, parse_args(["train", "policy", "--data", "a.h5", "--out", "r",
                                                    "--intervention-weight", "0.5"]))
    s = TrainSettings(data=("a.h5",), out=str(tmp_path / "r"), interventions="only", intervention_weight=4.0)
    assert options_from_args(TrainOptions, parse_args(train_argv(s))) == s.options()
    assert (s.options().interventions, s.options().intervention_weight) == ("only", 4.0)
    planner = TrainSettings(data=("a.h5",), out="r", variant="planner", interventions="only")
    assert not hasattr(planner.options(), "interventions")  # a policy option: the planner ignores it


def test_the_train_form_shows_both_options_at_their_defaults_with_tooltips(qtbot):
    from widgets.train_settings_form import TrainSettingsForm

    form = TrainSettingsForm()
    qtbot.addWidget(form)
    box, spin = form.interventions, form.intervention_weight
    assert tuple(box.itemData(i) for i in range(box.count())) == options_of(TrainOptions)["interventions"].choices
    assert box.currentData() == default_of(TrainOptions, "interventions") == form_defaults("call")["interventions"]
    assert spin.value() == default_of(TrainOptions, "intervention_weight")
    assert spin.minimum() == options_of(TrainOptions)["intervention_weight"].minimum
    assert (box.toolTip(), spin.toolTip()) == (help_of("interventions"), help_of("intervention_weight"))
    assert box.isEnabled() and spin.isEnabled()

    episodes, runs = [Path("a.h5")], Path("runs")
    spin.setValue(3.0)
    assert form.settings(episodes, runs).options().intervention_weight == 3.0
    box.setCurrentIndex(box.findData("only"))
    assert not spin.isEnabled()  # with "only" every segment is an intervention: the weight does nothing
    options = form.settings(episodes, runs).options()
    assert (options.interventions, replace(options, interventions="all", intervention_weight=1.0, out="x")) == \
        ("only", TrainOptions(data=("a.h5",), out="x"))
    form.variant.setCurrentIndex(form.variant.findData("planner"))
    assert not box.isEnabled() and not spin.isEnabled()


# ---- training --------------------------------------------------------------------------------------------
def test_only_without_any_takeover_is_refused_with_one_clear_line(data, tmp_path, capsys):
    from app.cli import main
    from app.errors import EXIT_USER_ERROR

    _, plain = data
    with pytest.raises(ValueError) as refused:
        train_policy(tiny([plain], tmp_path / "run", interventions="only"))
    message = str(refused.value)
    assert "\n" not in message and "overlaps a takeover intervention" in message and "1 selected episode" in message
    assert not (tmp_path / "run").exists()  # nothing was started
    capsys.readouterr()
    argv = ["train", "policy", "--data", str(plain), "--out", str(tmp_path / "cli"), "--tiny", "--device", "cpu",
            "--interventions", "only"]
    assert main(argv) == EXIT_USER_ERROR  # the CLI (and the Train workspace's log) shows it as one error line
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {message}"]


@pytest.mark.slow
def test_a_tiny_run_trains_on_the_interventions_only_and_saves_the_option(data, tmp_path):
    out = tmp_path / "run"
    result = train_policy(tiny(data, out, interventions="only"))
    assert result.step == 3 and result.final == out / "final"
    assert (result.dataset["samples"], result.dataset["intervention_segments"], result.dataset["left_out_segments"]) \
        == (10, 1, 4)
    saved = json.loads((out / "options.json").read_text())
    assert (saved["interventions"], saved["intervention_weight"]) == ("only", 1.0)
    assert TrainOptions.from_dict(saved) == tiny(data, out, interventions="only")
    started = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert (started["event"], started["samples"], started["intervention_segments"]) == ("started", 10, 1)

    weighted = train_policy(tiny(data, tmp_path / "weighted", intervention_weight=4.0))
    assert weighted.step == 3 and weighted.dataset["samples"] == 2 * FRAMES
    assert json.loads((tmp_path / "weighted" / "options.json").read_text())["intervention_weight"] == 4.0


def test_a_takes_takeover_stretch_is_the_intervention_segment(tmp_path):
    """On a real take of the sim workcell the takeover's times and the frames share the take's clock:
    the hotkey stretch the operator drove, and only it, is an intervention segment."""
    from recorders.arms.base import ArmCommand
    from recorders.cell.registry import open_workcell
    from recorders.episode_meta import Provenance
    from recorders.observation import observe
    from recorders.robot_api_spec import Call
    from recorders.take import Take
    from recorders.task_suite import make_instance

    inst = make_instance("stack", 0)
    pick, place = Call("pick", (inst.roles["A"],)), Call("place", (inst.roles["A"], inst.roles["B"]))

    def ticks(n: int) -> None:
        for _ in range(n):
            ob = observe(cell, cameras=False)
            take.tick(cell.arm.command(ArmCommand(ob.state.ee_pose, ob.state.gripper_closed)), ob)
            cell.arm.wait_tick()

    with open_workcell("sim", inst.scene, 10.0) as cell:
        with Take(tmp_path / "ep.h5", cell, Provenance("policy", "sim"), obs="state", control_hz=10.0,
                  inst=inst) as take:
            for call, source, n in ((pick, "script", 4), (pick, "hotkey", 5), (place, "script", 6)):
                take.log.open_call(call, source)
                ticks(n)
                record = take.log.close_call("aborted" if source == "script" and call is pick else "ok")
                if source == "hotkey":
                    take.log_intervention(Intervention("takeover", pick.code, record.t_start, record.t_end))
            path = take.finish().path
    ds = PolicyDataset([path])
    assert [(s.start, s.end, s.code, s.intervention) for s in ds.segments] == [
        (0, 4, pick.code, False), (4, 9, pick.code, True), (9, 15, place.code, False)]
    assert [(s.start, s.end) for s in PolicyDataset([path], interventions="only").segments] == [(4, 9)]
