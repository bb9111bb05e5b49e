"""Training runs of the diffusion policy: run folder, metrics, exact stop/resume, episode filters, errors."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models.diffusion_policy import DiffusionPolicy
from models.policy_config import TrainOptions
from models.policy_dataset import PolicyDataset
from models.train_policy import find_episodes, latest_checkpoint, train_policy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    """Two stack demonstrations (seed 1 with edited labels), one swap, and a trashed copy."""
    from recorders.demo_recorder import RecordOptions, record_demo
    from recorders.episode_file import open_episode, write_labels
    from recorders.task_suite import make_instance

    folder = tmp_path_factory.mktemp("train_episodes")
    for task, seed in (("stack", 0), ("stack", 1), ("swap", 0)):
        record_demo(make_instance(task, seed), folder / f"{task}_{seed:04d}.h5", RecordOptions(obs="state"))
    edited = folder / "stack_0001.h5"
    with open_episode(edited) as ep:
        labels = [{**s.to_dict(), "source": "edited"} for s in ep.labels]
    write_labels(edited, labels)
    (folder / ".trash").mkdir()
    shutil.copy(folder / "swap_0000.h5", folder / ".trash" / "swap_0000.h5")
    return folder


def options_for(episodes, out, **kw) -> TrainOptions:
    base = dict(data=[episodes], out=out, tiny=True, steps=30, batch_size=16, lr=1e-3, warmup_steps=3,
                checkpoint_every=10, log_every=1, seed=3, device="cpu")
    return TrainOptions(**{**base, **kw})


def read_metrics(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def step_lines(out) -> list[dict]:
    return [m for m in read_metrics(out) if "event" not in m]


@pytest.fixture(scope="module")
def reference(episodes, tmp_path_factory):
    """An uninterrupted 30-step run, and the progress calls it made."""
    calls = []
    out = tmp_path_factory.mktemp("runs") / "reference"
    result = train_policy(options_for(episodes, out), progress=lambda s, n, m: calls.append((s, n, dict(m))))
    return result, calls


def test_a_run_writes_options_metrics_checkpoints_and_the_final_policy(episodes, reference):
    result, calls = reference
    out = result.out
    assert result.step == 30 and not result.stopped and result.final == out / "final"
    assert result.dataset["episodes"] == 3  # the trashed copy is not trained on
    assert TrainOptions.from_dict(json.loads((out / "options.json").read_text())) == options_for(episodes, out)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_000010", "step_000020", "step_000030"]
    for ckpt in (out / "checkpoints").iterdir():
        assert sorted(p.name for p in ckpt.iterdir()) == ["config.json", "model.safetensors", "norm_stats.json",
                                                          "trainer_state.json", "trainer_state.safetensors"]
    assert not list(out.rglob("*.pt")) and not list(out.rglob("*.bin")) and not list(out.rglob("*.tmp"))

    lines = read_metrics(out)
    steps = step_lines(out)
    assert lines[0]["event"] == "started" and lines[-1]["event"] == "finished" and lines[-1]["step"] == 30
    assert [m["step"] for m in steps] == list(range(1, 31))
    assert set(steps[0]) == {"step", "loss", "diffusion", "done", "lr", "samples_per_s", "elapsed_s", "eta_s"}
    assert all(m["samples_per_s"] > 0 and m["eta_s"] >= 0 for m in steps)
    assert steps[-1]["eta_s"] == 0 and steps[0]["lr"] < steps[3]["lr"]  # warmup, then cosine decay
    assert steps[3]["lr"] > steps[15]["lr"] > steps[-1]["lr"]
    losses = [m["loss"] for m in steps]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert [c[0] for c in calls] == list(range(1, 31)) and {c[1] for c in calls} == {30}
    assert calls[-1][2] == steps[-1]

    # final/ holds the EMA weights of the last checkpoint, loads and samples chunks
    assert all(torch.equal(a, b) for a, b in zip(load_file(out / "final" / "model.safetensors").values(),
                                                 load_file(out / "checkpoints/step_000030/model.safetensors").values()))
    policy = DiffusionPolicy.load(out / "final")
    data = PolicyDataset(find_episodes([episodes])[:1])
    batch = {k: v.unsqueeze(0) for k, v in data[5].items()}
    chunk = policy.predict(batch, generator=torch.Generator().manual_seed(0))
    assert chunk["action"].shape == (1, 16, 8) and torch.isfinite(chunk["action"]).all()


def test_a_stopped_run_resumes_exactly_where_it_left_off(episodes, reference, tmp_path):
    ref, _ = reference
    out = tmp_path / "run"
    asked = []
    stopped = train_policy(options_for(episodes, out), should_stop=lambda: asked.append(1) or len(asked) >= 20)
    assert stopped.stopped and stopped.step == 20 and stopped.final is None
    assert stopped.checkpoint == out / "checkpoints" / "step_000020" == latest_checkpoint(out)
    assert read_metrics(out)[-1]["event"] == "stopped" and not (out / "final").exists()

    resumed = train_policy(options_for(episodes, out, resume=True))
    assert resumed.step == 30 and resumed.final == out / "final"
    events = [m["event"] for m in read_metrics(out) if "event" in m]
    assert events == ["started", "stopped", "resumed", "finished"]
    steps = step_lines(out)
    assert [m["step"] for m in steps] == list(range(1, 31))
    expected = step_lines(ref.out)
    # same data order, noise, optimiser moments, LR schedule and EMA as the run that never stopped
    assert [m["lr"] for m in steps] == pytest.approx([m["lr"] for m in expected], rel=1e-9)
    assert [m["loss"] for m in steps] == pytest.approx([m["loss"] for m in expected], rel=1e-4)
    assert steps[-1]["elapsed_s"] >= steps[19]["elapsed_s"]
    a = load_file(out / "checkpoints/step_000030/trainer_state.safetensors")
    b = load_file(ref.out / "checkpoints/step_000030/trainer_state.safetensors")
    assert a.keys() == b.keys() and any(k.startswith("optimizer.") for k in a)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    final, ref_final = load_file(out / "final/model.safetensors"), load_file(ref.out / "final/model.safetensors")
    assert all(torch.allclose(final[k], ref_final[k], atol=1e-5) for k in final)


def test_resuming_refuses_a_different_model_and_a_run_without_checkpoints(episodes, reference, tmp_path):
    with pytest.raises(ValueError, match=r"options that change the model differ: .*embed_dim 128 -> 64"):
        train_policy(options_for(episodes, reference[0].out, resume=True, tiny=False, embed_dim=64))
    with pytest.raises(ValueError, match="no checkpoint yet|no readable options.json"):
        train_policy(options_for(episodes, tmp_path / "empty", resume=True))


def test_task_and_edited_filters_choose_the_episodes(episodes, tmp_path):
    one_step = dict(steps=1, checkpoint_every=0)
    swap = train_policy(options_for(episodes, tmp_path / "swap", tasks=("swap",), **one_step))
    assert swap.dataset["episodes"] == 1 and swap.final is not None
    edited = train_policy(options_for(episodes, tmp_path / "edited", edited_only=True, **one_step))
    assert edited.dataset["episodes"] == 1 and edited.dataset["edited_segments"] == edited.dataset["segments"] > 0
    both = train_policy(options_for(episodes, tmp_path / "both", tasks=("stack", "swap"), **one_step))
    assert both.dataset["episodes"] == 3
    assert sorted(p.name for p in (tmp_path / "both" / "checkpoints").iterdir()) == ["step_000001"]


def test_clear_errors(episodes, reference, tmp_path):
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match="no episodes"):
        train_policy(options_for(episodes, tmp_path / "a", data=[tmp_path / "nothing"]))
    with pytest.raises(ValueError, match="does not exist"):
        train_policy(options_for(episodes, tmp_path / "a", data=[tmp_path / "missing"]))
    with pytest.raises(ValueError, match="no training windows after filtering"):
        train_policy(options_for(episodes, tmp_path / "a", tasks=("swap",), edited_only=True))
    assert not (tmp_path / "a").exists()
    with pytest.raises(ValueError, match="already holds a training run"):
        train_policy(options_for(episodes, reference[0].out))
    with pytest.raises(ValueError, match="unknown task"):
        options_for(episodes, tmp_path / "a", tasks=("juggle",))
    with pytest.raises(ValueError, match="mixed_precision must be one of"):
        replace(options_for(episodes, tmp_path / "a"), mixed_precision="fp8")


@pytest.mark.slow
def test_two_processes_train_one_policy_through_accelerate(episodes, tmp_path):
    """torchrun starts two CPU processes (gloo): the windows are sharded, one process writes the run."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "ddp"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           str(root / "main.py"), "train", "policy", "--data", str(episodes), "--out", str(out),
                           "--steps", "4", "--tiny", "--batch-size", "4", "--checkpoint-every", "2", "--device", "cpu"],
                          cwd=root, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert events[0]["processes"] == 2 and [e["event"] for e in events if "event" in e] == ["started", "finished"]
    assert latest_checkpoint(out).name == "step_000004" and (out / "final" / "model.safetensors").is_file()
    assert proc.stdout.count("trained 4 steps") == 1


def test_an_episode_with_nan_is_skipped_by_name_and_the_weights_stay_finite(episodes, tmp_path):
    """A NaN at one frame of one stream used to make every weight NaN (and exit 0)."""
    from models.norm_stats import NormStats
    from tests.synthetic_episodes import write_pick_place

    bad = write_pick_place(tmp_path / "glitch.h5", nan_in="ee_pose")
    told = []
    result = train_policy(options_for(episodes, tmp_path / "run", data=[episodes, bad], steps=3, checkpoint_every=0),
                          report=told.append)
    assert told == [f"skipped {bad}: stream ee_pose holds NaN or inf at frame 7 (1 frame(s)); the episode is skipped"]
    assert result.dataset["episodes"] == 3 and any(str(bad) in s for s in result.dataset["skipped"])
    weights = load_file(result.final / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())
    stats = NormStats.load(result.final)
    assert all(v == v for values in (*stats.mins.values(), *stats.maxs.values()) for v in values)


def test_the_cli_names_skipped_episodes_and_resumes_with_the_runs_own_options(episodes, tmp_path, capsys):
    from app.cli import main
    from tests.synthetic_episodes import write_pick_place

    bad = write_pick_place(tmp_path / "glitch.h5", nan_in="action", nan_frame=30)
    out = tmp_path / "run"
    assert main(["train", "policy", "--data", str(episodes), str(bad), "--out", str(out), "--tiny", "--steps", "2",
                 "--batch-size", "4", "--checkpoint-every", "1", "--device", "cpu", "--frame", "world",
                 "--seed", "4"]) == 0
    err = capsys.readouterr().err
    assert f"skipped {bad}: stream action holds NaN or inf at frame 30" in err
    saved = json.loads((out / "options.json").read_text())

    # --resume needs only the run: its data, frame, seed and size come from options.json; --steps extends it
    assert main(["train", "policy", "--resume", "--out", str(out), "--steps", "3"]) == 0
    again = json.loads((out / "options.json").read_text())
    assert again == {**saved, "steps": 3, "resume": True}
    assert read_metrics(out)[-1]["step"] == 3
    assert f"skipped {bad}" in capsys.readouterr().err  # the resumed run names it again

    # an option that shapes the model, or the data, cannot change on resume: one line, exit 2
    for change in (["--obs", "rgb"], ["--flat"], ["--data", str(bad)], ["--seed", "5"]):
        assert main(["train", "policy", "--resume", "--out", str(out), *change]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "a resumed run keeps the options it was started with" in err
    assert main(["train", "policy", "--out", str(tmp_path / "new")]) == 2
    assert "--data is required for a new run" in capsys.readouterr().err
