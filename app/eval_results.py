"""Evaluation results as the Train workspace shows and keeps them: `eval --json` output -> table rows.

No Qt. `wilson_interval` gives every evaluation's 95% intervals (eval, planner and policy
evaluation alike); `parse_eval_output` finds the result object in the command's stdout, `eval_table` turns it
into rows (tasks, then call types), and `save_eval` / `latest_eval` keep results beside the run in
`<run>/evals/eval_YYYYmmdd-HHMMSS.json`, so an old run shows its last evaluation.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from app.train_runs import RunError

EVALS_DIR = "evals"


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class EvalRow:
    name: str  # a task, or a call type
    successes: int
    episodes: int  # episodes of a task, or calls of a call type
    rate: float
    ci95: tuple[float, float] | None
    is_call: bool = False

    @property
    def interval_text(self) -> str:
        return "" if self.ci95 is None else f"{100 * self.ci95[0]:.0f}% – {100 * self.ci95[1]:.0f}%"


def parse_eval_output(stdout: str) -> dict:
    """The result object `eval --json` printed (its last JSON line with "tasks")."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except ValueError:
                continue
            if isinstance(result, dict) and isinstance(result.get("tasks"), list):
                return result
    raise RunError("the evaluation printed no result")


def eval_table(result: dict) -> list[EvalRow]:
    """One row per task, then one per call type (a learned policy's eval counts ok calls and gives
    intervals; the oracle's gives rates only)."""
    rows = [EvalRow(t["task"], int(t["successes"]), int(t["episodes"]), float(t["rate"]),
                    tuple(t["ci95"]) if t.get("ci95") else None) for t in result["tasks"]]
    for name, c in sorted(result.get("calls", {}).items()):
        n = int(c["calls"])
        ok = int(c["ok"]) if "ok" in c else round(float(c["rate"]) * n)
        rows.append(EvalRow(name, ok, n, float(c["rate"]), tuple(c["ci95"]) if c.get("ci95") else None, True))
    return rows


def eval_summary(result: dict) -> str:
    parts = [f"policy {Path(str(result.get('policy', '?'))).name}", f"{result.get('split', '?')} split"]
    if result.get("planner") not in (None, "oracle"):
        parts.insert(0, f"planner {Path(str(result['planner'])).name}")
    inference = result.get("inference_ms")
    if inference and inference.get("chunks"):
        parts.append(f"inference {inference['mean']:.0f} ms mean over {inference['chunks']} chunks")
    if "stalls" in result:
        parts.append(f"{result['stalls']} stalls")
    return ", ".join(parts)


def save_eval(run, result: dict, now: float | None = None) -> Path:
    """Keep an evaluation beside the run (evals/eval_YYYYmmdd-HHMMSS.json), written atomically."""
    folder = Path(run) / EVALS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"eval_{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    os.replace(tmp, path)
    return path


def latest_eval(run) -> dict | None:
    """The newest saved evaluation of a run, if any (unreadable files are passed over)."""
    folder = Path(run) / EVALS_DIR
    for path in sorted(folder.glob("eval_*.json"), reverse=True) if folder.is_dir() else []:
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
            eval_table(result)
            return result
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None
