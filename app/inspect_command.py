"""`inspect`, `segment` and `check`: read-only views of episodes and programs, and re-segmentation."""
from __future__ import annotations

import sys
from pathlib import Path

from app.errors import EXIT_USER_ERROR, UserError, print_json


def run_inspect(path: Path, as_json: bool) -> int:
    from recorders.episode_file import PARTIAL_SUFFIX, episode_summary, open_episode

    with open_episode(path) as ep:
        summary = episode_summary(ep)
    if as_json:
        print_json(summary)
        return 0
    ok = {True: "yes", False: "no", None: "unknown"}[summary["success"]]
    if summary["unfinished"]:
        print(f"{path} is an UNFINISHED recording ({PARTIAL_SUFFIX}: killed or still running); `record` into its "
              f"folder recovers it", file=sys.stderr)
    print(f"{path}\n  task: {summary['task']} ({summary['instruction']})\n  robot: {summary['robot']}, "
          f"{summary['frames']} frames at {summary['control_hz']:g} Hz = {summary['duration_s']:.1f} s, success: {ok}")
    provenance = summary.get("provenance") or {}
    if provenance.get("objects") == "perceived":
        print("  objects: perceived (the tracker on the cameras' RGB-D)")
    for fault in summary.get("faults", ()):
        print(f"  FAULT at {fault['t']:.1f} s in {fault['stream']}: {fault['text']}")
    print("  streams:")
    for name, s in summary["streams"].items():
        coded = "" if s.get("encoding", "raw") == "raw" else f"  ({s['encoding']})"
        print(f"    {name:<18} {s['count']:>6} x {tuple(s['shape'])} at {s['rate_hz']:g} Hz{coded}")
    print("  calls:")
    for c in summary["calls"]:
        status = "" if c["status"] == "ok" else f"  [{c['status']}]"
        print(f"    {c['t_start']:7.2f}-{c['t_end']:7.2f} s  {c['code']}  ({c['source']}){status}")
    print("  segments:")
    for s in summary["segments"]:
        print(f"    frames {s['start']:>5}-{s['end']:<5} {s['code']}  ({s['source']})")
    memory = summary.get("memory")
    if memory is not None:
        print("  memory:")
        for k in memory["poses"] + memory["captured"]:
            x, y, z = k["pose"][:3]
            print(f"    {k['time']:7.2f} s  {k['key']:<24} ({x:+.3f}, {y:+.3f}, {z:+.3f}) m  [{k['source']}]")
    return 0


def _episode_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(path.glob("*.h5"))
        if not files:
            raise UserError(f"no episode files (*.h5) in {path}")
        return files
    if not path.exists():
        raise UserError(f"no such file or folder: {path}")
    return [path]


def run_segment(path: Path) -> int:
    import numpy as np

    from recorders.episode_file import open_episode, write_labels
    from recorders.segmentation import resegment

    files = _episode_files(path)
    refused = 0
    for f in files:
        with open_episode(f) as ep:
            missing = ep.calls_missing
            calls = ep.calls
            times = np.asarray(ep.stream_time("action"))
            current = list(ep.labels)
        if missing is not None:
            if len(files) == 1:
                raise UserError(f"{f}: {missing}; its labels are left as they are")
            print(f"error: {f}: {missing}; its labels are left as they are", file=sys.stderr)
            refused += 1
            continue
        labels = resegment(calls, times, current)
        write_labels(f, [s.to_dict() for s in labels])
        edited = sum(s.source == "edited" for s in labels)
        print(f"{f}: {len(labels)} segments ({edited} edited kept)")
    return EXIT_USER_ERROR if refused else 0


def run_check(program: Path) -> int:
    from models.program_check import check_program

    if not program.is_file():
        raise UserError(f"no such program file: {program}")
    try:
        source = program.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{program} is not a UTF-8 text file") from None
    issues = check_program(source)
    if issues:
        first = issues[0]
        more = f" (+{len(issues) - 1} more)" if len(issues) > 1 else ""
        print(f"{program}:{first.line}: {first.message}{more}", file=sys.stderr)
        for issue in issues[1:]:
            print(f"{program}:{issue.line}: {issue.message}", file=sys.stderr)
        return 2
    n = sum(1 for line in source.splitlines() if line.strip() and not line.strip().startswith("#"))
    print(f"{program}: OK ({n} calls)")
    return 0
