"""A recording killed with SIGKILL loses at most its last second and leaves earlier episodes intact."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_sigkill_during_record_keeps_earlier_episodes_and_recovers_the_partial(tmp_path):
    out = tmp_path / "eps"
    proc = subprocess.Popen([sys.executable, "main.py", "record", "--task", "tower", "--episodes", "5",
                             "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        # Wait until the first episode is finished and the second one has been recording a while.
        while time.monotonic() < deadline:
            done = sorted(out.glob("*.h5")) if out.exists() else []
            partials = sorted(out.glob("*.partial")) if out.exists() else []
            if done and partials and partials[0].stat().st_size > 200_000:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the recording never reached its second episode")
        time.sleep(0.7)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    finished = sorted(out.glob("*.h5"))
    partials = sorted(out.glob("*.partial"))
    assert finished and len(partials) == 1
    for f in finished:
        r = subprocess.run([sys.executable, "main.py", "inspect", str(f), "--json"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        summary = json.loads(r.stdout)
        assert summary["success"] is True and summary["frames"] > 50
    # The next recording into the folder recovers the partial as an episode marked recovered.
    from recorders.episode_file import episode_summary, open_episode
    from recorders.episode_recovery import recover_partial

    recovered = recover_partial(partials[0])
    with open_episode(recovered) as ep:
        summary = episode_summary(ep)
    assert summary["recovered"] and summary["frames"] > 0
    assert summary["streams"]["front_rgb"]["count"] >= summary["frames"] - 10
