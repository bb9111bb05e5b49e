"""`report generalisation`: the plan (app/report_plan.py), the document (app/report_document.py) and,
end to end on the small budget, the command (app/report_generalisation.py) with its resume."""
from __future__ import annotations

import json
import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from app.cli import HANDLERS, build_parser, command_key, main
from app.report_document import NO_POLICY, PLOT_FILE, POOLED, REPORT_FILE, UNREACHABLE, heldout_svg, markdown
from app.report_plan import BUDGETS, FLAT_MULTI, FLAT_TASK, HIERARCHY, SYSTEMS, Budget, Count, plan
from recorders.task_suite import TASKS

SVG = "{http://www.w3.org/2000/svg}"
CELL = re.compile(r"^(\d+)/(\d+) \((\d+)-(\d+)%\)( " + re.escape(NO_POLICY) + ")?$")


def listed_commands(text: str) -> list[str]:
    """The command lines of the report's ```sh blocks."""
    return [ln for block in re.findall(r"```sh\n(.*?)```", text, re.S) for ln in block.splitlines() if ln.strip()]


def tables(text: str) -> dict[str, list[dict[str, str]]]:
    """Each Markdown table under a `## ` heading, as rows of header -> cell (the heading's first one)."""
    found, heading = {}, None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("## "):
            heading = line[3:]
        if line.startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|---") and heading not in found:
            header = [c.strip() for c in line.strip("|").split("|")]
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("| "):
                    break
                rows.append(dict(zip(header, (c.strip() for c in row.strip("|").split("|")))))
            found[heading] = rows
    return found


def numbers(cell: str) -> tuple[int, int]:
    m = CELL.match(cell)
    assert m, f"not a k/n (lo-hi%) cell: {cell!r}"
    return int(m[1]), int(m[2])


# ---- the plan -------------------------------------------------------------------------------------
def test_the_plan_is_commands_of_this_cli_with_one_policy_budget(tmp_path):
    p = plan(BUDGETS["full"], tmp_path, "state", 3)
    assert p.held_out == tuple(t for t, d in TASKS.items() if d.held_out) and p.held_out
    assert not set(p.trained) & set(p.held_out)
    parser = build_parser()
    policy_budgets = set()
    for step in p.steps:
        args = parser.parse_args(list(step.argv))
        assert command_key(args) in HANDLERS
        if step.argv[:2] == ("train", "policy"):
            policy_budgets.add((args.steps, args.batch_size, getattr(args, "tiny", False), args.obs, args.seed))
    assert policy_budgets == {(3000, 64, False, "state", 3)}  # the hierarchy's and every flat policy's
    slugs = [s.slug for s in p.steps]
    assert len(slugs) == len(set(slugs))
    # a held-out task's per-task flat policy exists only once it has demonstrations
    zero = [m for m in p.measures if m.system == FLAT_TASK and m.table == "held-out" and m.demos == 0]
    assert {m.task for m in zero} == set(p.held_out) and all(m.result is None for m in zero)
    assert all(m.result is not None for m in p.measures if m not in zero)
    # every measure's result is an eval step's output, asked for the measure's task
    evals = {s.output: s for s in p.steps if s.kind == "eval"}
    for m in p.measures:
        if m.result is not None:
            tasks = evals[m.result].argv[evals[m.result].argv.index("--tasks") + 1].split(",")
            assert m.task in tasks


def test_each_step_waits_for_the_steps_whose_output_it_reads(tmp_path):
    from app.report_generalisation import inputs_of

    p = plan(BUDGETS["small"], tmp_path)
    needs = inputs_of(p.steps)
    assert needs["eval-trained-hierarchy"] == {"train-planner-k0", "train-policy-k0"}
    assert needs["train-policy-k0"] == {f"record-{t}" for t in p.trained}
    assert needs["train-policy-k2"] == needs["train-policy-k0"] | {f"record-{t}-{k}-{k}" for t in p.held_out
                                                                  for k in (1, 2)}
    assert needs["eval-heldout-hierarchy-k2"] == {"train-planner-k2", "train-policy-k2"}
    assert all(not needs[s.slug] for s in p.steps if s.kind == "record")
    order = [s.slug for s in p.steps]
    assert all(order.index(n) < order.index(slug) for slug, ns in needs.items() for n in ns)


def test_held_out_demonstrations_are_recorded_once_and_added_up(tmp_path):
    p = plan(BUDGETS["full"], tmp_path)
    records = {s.output.name: int(s.argv[s.argv.index("--episodes") + 1]) for s in p.steps if s.kind == "record"}
    planners = {s.output.name: s.argv for s in p.steps if s.argv[:2] == ("train", "planner")}
    for task in p.held_out:
        assert records[f"{task}_1-5"] == 5 and records[f"{task}_6-10"] == 5
        assert not any(task in a for a in planners["planner_k0"])
        assert sum(records[Path(a).name] for a in planners["planner_k10"] if Path(a).name.startswith(task)) == 10


def test_a_budget_refuses_levels_that_do_not_start_at_zero():
    with pytest.raises(ValueError, match="heldout_demos"):
        Budget(**{**BUDGETS["small"].to_dict(), "heldout_demos": (5, 10)})


# ---- the document ---------------------------------------------------------------------------------
def test_the_document_puts_each_count_in_its_own_cell(tmp_path):
    p = plan(BUDGETS["full"], tmp_path)
    n = p.budget.eval_episodes
    # distinct numbers per cell, so a cell read from the wrong key shows
    counts = {}
    for i, m in enumerate(p.measures):
        counts[(m.table, m.task, m.system, m.demos)] = Count(0, n, False) if m.result is None else Count(i % (n + 1), n)
    text = markdown(tmp_path, p, counts, {})
    t = tables(text)
    held = t["Held-out compositions against the number of demonstrations"]
    assert len(held) == (1 + len(p.held_out)) * len(p.budget.heldout_demos)
    for row in held:
        k = int(row["demos of each"])
        for system in SYSTEMS:
            got = numbers(row[system])
            if row["task"] == POOLED:
                parts = [counts[("held-out", task, system, k)] for task in p.held_out]
                assert got == (sum(c.successes for c in parts), sum(c.episodes for c in parts))
            else:
                c = counts[("held-out", row["task"], system, k)]
                assert got == (c.successes, c.episodes)
                assert row[system].endswith(NO_POLICY) == (not c.ran)
    trained = t["Trained tasks"]
    assert [r["task"] for r in trained] == [*p.trained, "all"]
    for row in trained[:-1]:
        for system in SYSTEMS:
            c = counts[("trained", row["task"], system, 0)]
            assert numbers(row[system]) == (c.successes, c.episodes)
    para = t["Held-out phrasings"]
    assert [name for name, _ in p.phrasings] == ["paraphrase", "paraphrase-b"]
    for row in para[:-1]:
        for name, tasks in p.phrasings:
            if row["task"] in tasks:
                assert numbers(row[f"hierarchy, {name}"]) == (counts[(name, row["task"], HIERARCHY, 0)].successes, n)
        assert row[f"{FLAT_MULTI}, any phrasing"] == UNREACHABLE  # the flat policies never read the words

    root = ET.fromstring(heldout_svg(p, counts))
    panels = {g.get("data-panel"): g for g in root.iter(f"{SVG}g") if g.get("class") == "panel"}
    assert set(panels) == {POOLED, *p.held_out}
    tower = p.held_out[0]
    series = {g.get("data-series"): g for g in panels[tower].iter(f"{SVG}g") if g.get("class") == "series"}
    assert set(series) == set(SYSTEMS)
    for system, g in series.items():
        points = [pt for pt in g.iter(f"{SVG}g") if pt.get("class") == "point"]
        assert [int(pt.get("data-demos")) for pt in points] == list(p.budget.heldout_demos)
        for pt in points:
            c = counts[("held-out", tower, system, int(pt.get("data-demos")))]
            assert (int(pt.get("data-successes")), int(pt.get("data-episodes"))) == (c.successes, c.episodes)


# ---- end to end -----------------------------------------------------------------------------------
def marker_times(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for folder in ("steps", "results") for p in (out / folder).glob("*.json")}


@pytest.mark.slow
def test_small_report_end_to_end_then_resumes_without_redoing_steps(tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["report", "generalisation", "--out", str(out), "--budget", "small"]
    assert main(argv) == 0
    first = capsys.readouterr().err
    p = plan(BUDGETS["small"], out)
    assert first.count("done in") == len(p.steps)

    text = (out / REPORT_FILE).read_text(encoding="utf-8")
    t = tables(text)
    held = t["Held-out compositions against the number of demonstrations"]
    assert len(held) == (1 + len(p.held_out)) * len(p.budget.heldout_demos)
    for row in held + t["Trained tasks"]:
        for system in SYSTEMS:
            numbers(row[system])  # every cell k/n with its interval
    for row in t["Held-out phrasings"]:
        for name, tasks in p.phrasings:
            if row["task"] in (*tasks, "all"):
                numbers(row[f"hierarchy, {name}"].removesuffix(f" ({len(tasks)} tasks)"))
    # the cells are the eval results' numbers
    trained_json = json.loads((out / "results" / "trained-hierarchy.json").read_text())
    for row_json in trained_json["tasks"]:
        row = next(r for r in t["Trained tasks"] if r["task"] == row_json["task"])
        assert numbers(row[HIERARCHY]) == (row_json["successes"], row_json["episodes"])
        assert row_json["episodes"] == p.budget.eval_episodes
    flat_json = json.loads((out / "results" / "heldout-flat-k1.json").read_text())
    for row_json in flat_json["tasks"]:
        row = next(r for r in held if r["task"] == row_json["task"] and r["demos of each"] == "1")
        assert numbers(row[FLAT_MULTI]) == (row_json["successes"], row_json["episodes"])

    root = ET.parse(out / PLOT_FILE).getroot()
    series = [g.get("data-series") for g in root.iter(f"{SVG}g") if g.get("class") == "series"]
    assert sorted(series) == sorted(list(SYSTEMS) * (1 + len(p.held_out)))

    commands = listed_commands(text)
    assert commands == [s.command for s in p.steps]
    parser = build_parser()
    for line in commands:
        words = shlex.split(line)
        assert words[:2] == ["python", "main.py"]
        words = words[2:words.index(">")] if ">" in words else words[2:]
        assert command_key(parser.parse_args(words)) in HANDLERS
    # each run of the report is listed with the command that made it
    assert f"--out {out} --budget small --obs state --seed 0" in text

    # again: every step is skipped, nothing is rewritten but the report
    before = marker_times(out)
    assert main(argv) == 0
    again = capsys.readouterr().err
    assert again.count("skipped, done earlier") == len(p.steps) and "done in" not in again
    assert marker_times(out) == before

    # a training stopped midway (its checkpoint kept, no final model) resumes from its checkpoint; only it runs
    run = out / "runs" / "policy_k2"
    for f in (run / "final").iterdir():
        f.unlink()
    (run / "final").rmdir()
    (out / "steps" / "train-policy-k2.json").unlink()
    assert main(argv) == 0
    resumed = capsys.readouterr().err
    assert resumed.count("done in") == 1 and "resuming" in resumed and (run / "final").is_dir()

    # --jobs 2: steps run as processes, each once the steps whose output it reads are done
    slugs = [s.slug for s in p.steps]
    train, evaluate = slugs.index("train-flat-k2") + 1, slugs.index("eval-heldout-flat-k2") + 1
    for slug in ("train-flat-k2", "eval-heldout-flat-k2"):
        (out / "steps" / f"{slug}.json").unlink()
    (out / "results" / "heldout-flat-k2.json").unlink()
    assert main([*argv, "--jobs", "2"]) == 0
    parallel = capsys.readouterr().err
    assert parallel.count("done in") == 2
    assert parallel.index(f"[{train}/{len(slugs)}] done in") < parallel.index(f"[{evaluate}/{len(slugs)}] multi-task")
    assert json.loads((out / "results" / "heldout-flat-k2.json").read_text())["tasks"]

    # another budget, obs or seed into the same folder is refused before anything runs
    assert main([*argv, "--seed", "1"]) == 2
    assert "other settings" in capsys.readouterr().err
