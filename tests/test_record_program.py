"""`record --program FILE`: a written program checked against the workcell's names and recorded as
episodes labelled by its calls; on a real arm with a reset pause and the operator's verdict (the real
arm here is the simulated one with fake RealSense devices, kind franky)."""
from __future__ import annotations

import sys

import pytest

from app.cli import main
from recorders.episode_file import open_episode
from recorders.task_suite import make_instance

pytestmark = pytest.mark.slow


def test_a_program_runs_in_fresh_simulated_layouts(tmp_path, capsys):
    red = make_instance("pick_place", 0).scene
    zone = red.zone_names[0]
    program = tmp_path / "prog.py"
    program.write_text(f'pick("red cube")\nplace("red cube", "{zone}")\n')
    out = tmp_path / "eps"
    assert main(["record", "--program", str(program), "--out", str(out), "--episodes", "1", "--seed", "0",
                 "--instruction", f"put the red cube in the {zone}", "--obs", "state"]) == 0
    (path,) = sorted(out.glob("*.h5"))
    with open_episode(path) as ep:
        assert ep.task == "instruction" and ep.instruction == f"put the red cube in the {zone}"
        assert [c.code for c in ep.calls] == ['pick("red cube")', f'place("red cube", "{zone}")']
        assert [s.code for s in ep.labels] == ['pick("red cube")', f'place("red cube", "{zone}")']
    program.write_text('pick("sponge")\n')
    assert main(["record", "--program", str(program), "--out", str(out)]) == 2
    assert "prog.py:1: unknown object 'sponge'" in capsys.readouterr().err


def test_a_real_arm_pauses_for_a_reset_and_asks_the_verdict(tmp_path, monkeypatch):
    import app.workcell_setup as setup
    from app.cli import parse_args
    from app.record_program import run_record_program
    from tests.fake_devices import FakeCameraDevice
    from tests.test_real_takes import FakeRealCell

    opened = []

    def open_fake(kind, spec, control_hz, host, chosen):
        assert kind == "franky" and host == "10.0.0.2" and chosen.camera == "realsense"
        opened.append(FakeRealCell({"front": FakeCameraDevice("111"), "wrist": FakeCameraDevice("222", seed=1)}))
        return opened[-1]
    monkeypatch.setattr(setup, "open_setup_workcell", open_fake)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    from tests.test_device_streams import INST

    program = tmp_path / "prog.py"
    cube, zone = INST.scene.object_names[0], INST.scene.zone_names[0]
    program.write_text(f'pick("{cube}")\nplace("{cube}", "{zone}")\n')  # runs again from where it ended
    answers = iter(["", "y", "", "n"])  # reset, verdict; reset, verdict
    asked = []
    args = parse_args(["record", "--program", str(program), "--robot", "franky", "--robot-ip", "10.0.0.2",
                       "--episodes", "2", "--out", str(tmp_path / "eps"), "--data", str(tmp_path / "data")])
    assert run_record_program(args, ask=lambda q: asked.append(q) or next(answers)) == 0
    assert len(opened) == 1  # one connection for every episode
    assert [q.split()[0] for q in asked] == ["reset", "did", "reset", "did"]
    paths = sorted((tmp_path / "eps").glob("*.h5"))
    verdicts = []
    for path in paths:
        with open_episode(path) as ep:
            verdicts.append(ep.success)
            assert ep.robot == "franky" and ep.stream_count("front_rgb") > 0
    assert verdicts == [True, False]
