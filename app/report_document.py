"""The generalisation report's document: DIR/report.md and its plot DIR/heldout.svg.

Given the plan (app/report_plan.py) and each cell's count (app/report_generalisation.py), writes the
Markdown - the held-out compositions' table against the number of demonstrations, the trained
tasks' table, the held-out phrasing sets', the budget with how it is counted, what each system sees, and
the exact command of every step - and one SVG, drawn by hand (no plotting dependency): success
against demonstrations of the held-out compositions, all of them pooled and each alone, with
Wilson 95% interval bars, one series per system. Every series is a `<g class="series">` whose points
carry their numbers (data-demos, data-successes, data-episodes), so the figure can be checked.

    Plan + {(table, task, system, demos): Count} + step seconds -> report.md, heldout.svg
"""
from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from app.eval_results import wilson_interval
from app.report_plan import FLAT_MULTI, FLAT_TASK, HIERARCHY, SYSTEMS, Count, Plan

REPORT_FILE = "report.md"
PLOT_FILE = "heldout.svg"
POOLED = "all held-out"
COLOURS = {HIERARCHY: "#1f6fb4", FLAT_MULTI: "#d1495b", FLAT_TASK: "#2a9d5c"}
NO_POLICY = "‡"  # a per-task flat policy of a task with no demonstrations does not exist
UNREACHABLE = "n/a †"  # a flat policy never reads the instruction's words
NO_PHRASINGS = "no phrasings"  # the set has none for the task

Counts = dict[tuple[str, str, str, int], Count]


def cell(c: Count) -> str:
    lo, hi = wilson_interval(c.successes, c.episodes)
    return f"{c.successes}/{c.episodes} ({100 * lo:.0f}-{100 * hi:.0f}%)" + ("" if c.ran else f" {NO_POLICY}")


def pooled(counts: Counts, table: str, tasks, system: str, demos: int) -> Count:
    parts = [counts[(table, t, system, demos)] for t in tasks]
    return Count(sum(c.successes for c in parts), sum(c.episodes for c in parts), all(c.ran for c in parts))


def write_report(out: Path, p: Plan, counts: Counts, seconds: dict[str, float]) -> Path:
    (out / PLOT_FILE).write_text(heldout_svg(p, counts), encoding="utf-8")
    path = out / REPORT_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(markdown(out, p, counts, seconds), encoding="utf-8")
    tmp.replace(path)
    return path


# ---- Markdown -------------------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def markdown(out: Path, p: Plan, counts: Counts, seconds: dict[str, float]) -> str:
    b, n = p.budget, p.budget.eval_episodes
    seeds = f"seeds {p.seed}-{p.seed + n - 1} of the test split"
    lines = [
        "# Generalisation: the hierarchy against flat policies",
        "",
        f"Budget `{b.name}`, policies on `--obs {p.obs}`, seed {p.seed}. Made by "
        f"`python main.py report generalisation --out {out} --budget {b.name} --obs {p.obs} --seed {p.seed}`.",
        "",
        "- **hierarchy**: the learned planner writes each next call from the front camera, the instruction and "
        "the calls so far; the call-conditioned diffusion policy executes it.",
        "- **flat multi-task**: one `--flat` policy trained on exactly the hierarchy's episodes.",
        "- **flat per-task**: a `--flat` policy for each task, trained on that task's episodes alone.",
        "",
        f"Every cell is successes/episodes on {seeds} (colour combinations held back from the demonstrations), "
        "the same seeds for every system, success checked from the simulator's state; in brackets the Wilson "
        "95% interval. Held-out compositions: "
        f"{', '.join(p.held_out)} (never demonstrated at 0). Trained tasks: {', '.join(p.trained)}.",
        "",
        "## Held-out compositions against the number of demonstrations",
        "",
        f"![success against demonstrations of the held-out compositions]({PLOT_FILE})",
        "",
    ]
    rows = []
    for task in (POOLED, *p.held_out):
        for k in b.heldout_demos:
            row = [task, str(k)]
            for system in SYSTEMS:
                c = pooled(counts, "held-out", p.held_out, system, k) if task == POOLED else \
                    counts[("held-out", task, system, k)]
                row.append(cell(c))
            rows.append(row)
    lines += _table(["task", "demos of each", *SYSTEMS], rows)
    lines += ["", f"{NO_POLICY} With no demonstration of a task there is no per-task flat policy to train: "
              "it counts as 0 successes, nothing was run.", ""]

    lines += ["## Trained tasks", "", f"The models trained with no held-out demonstrations, on {seeds}.", ""]
    rows = [[t, *(cell(counts[("trained", t, s, 0)]) for s in SYSTEMS)] for t in p.trained]
    rows.append(["all", *(cell(pooled(counts, "trained", p.trained, s, 0)) for s in SYSTEMS)])
    lines += _table(["task", *SYSTEMS], rows)

    lines += ["", "## Held-out phrasings", ""]
    if p.phrasings:
        tasks = [t for t in p.trained if any(t in ts for _, ts in p.phrasings)]
        lines += ["Each episode's instruction is one of a held-out set of phrasings (recorders/task_phrasings.py; "
                  "never trained on) instead of its template; same seeds, same models. "
                  + " ".join(f"`{name}`: {', '.join(ts)}." for name, ts in p.phrasings), ""]
        rows = []
        for t in (*tasks, "all"):
            row = [t, cell(pooled(counts, "trained", tasks, HIERARCHY, 0) if t == "all" else
                           counts[("trained", t, HIERARCHY, 0)])]
            for name, ts in p.phrasings:
                if t == "all":
                    row.append(cell(pooled(counts, name, ts, HIERARCHY, 0)) + ("" if set(ts) == set(tasks) else
                                                                               f" ({len(ts)} tasks)"))
                else:
                    row.append(cell(counts[(name, t, HIERARCHY, 0)]) if t in ts else NO_PHRASINGS)
            rows.append(row + [UNREACHABLE, UNREACHABLE])
        lines += _table(["task", "hierarchy, template", *(f"hierarchy, {name}" for name, _ in p.phrasings),
                         f"{FLAT_MULTI}, any phrasing", f"{FLAT_TASK}, any phrasing"], rows)
        lines += ["", "† A flat policy is given the task's id by the evaluation (models/policy_layout.py "
                  "`task_index`), whatever the words, and reads only the colour words of the instruction "
                  "(`instruction_check.mentioned`), which every held-out phrasing keeps; its input is the template's, "
                  "so its success is its trained-task success above by construction. Nothing is measured for it "
                  "here."]
    else:
        lines.append("No trained task has held-out phrasings in recorders/task_phrasings.py.")

    lines += ["", "## Budget", ""]
    lines += _table(["setting", "value"], [[k, f"`{v}`"] for k, v in b.to_dict().items()])
    lines += ["", "How the training budget is counted: every low-level policy - the hierarchy's, the multi-task "
              f"flat one and each per-task flat one - gets the same {b.policy_steps} optimiser steps of "
              f"{b.policy_batch} windows each (same model size, learning-rate schedule and seed). The hierarchy's "
              f"planner is trained in addition ({b.planner_steps} steps of {b.planner_batch} examples, "
              f"{b.colour_swaps} colour swaps and {b.rephrasings} rephrasings per call); the flat side has no "
              "counterpart to it. Each per-task flat policy gets the whole budget for one task, so that family "
              f"spends {len(p.trained)} times the steps on the trained tasks in all. A flat policy has "
              f"{b.flat_max_call_s:g} s per motion call of the task's program for the whole episode (its loop "
              f"runs the episode in one go); the hierarchy's policy has {b.max_call_s:g} s per call.", ""]

    lines += ["## What each system sees", "",
              "- The flat policies see the arm, every cube's pose (or, with `--obs rgb`, the two cameras too), "
              "the task's id and what the instruction names (`--flat`'s goal, models/policy_layout.py "
              "`goal_vector`): the cubes and zones its colour words name, in order of mention, with their poses "
              "now and at the episode's start - the same names the planner copies, and where a swap's or a "
              "restore's cubes started, which a flat policy cannot remember. With no demonstration of a held-out "
              "task, the multi-task flat policy is asked with that task's id, whose embedding it never trained.",
              "- The hierarchy's policy sees the arm, the current call (its function and the poses of the "
              "objects and target it names, `recall` resolved from memory) and the memory's poses; its planner "
              "sees the front camera, the instruction and the calls made so far.", ""]

    lines += ["## Commands", "",
              "Every number above comes from these commands, run in this order (an eval's JSON is its standard "
              "output; `report generalisation` runs each, in-process or with `--jobs N` as N processes at a time, and "
              "skips those already done).", ""]
    total = {}
    for kind in ("record", "train", "eval"):
        steps = [s for s in p.steps if s.kind == kind]
        total[kind] = sum(seconds.get(s.slug, 0.0) for s in steps)
        lines += [f"{kind} ({len(steps)} commands, {total[kind]:.0f} s):", "", "```sh",
                  *(s.command for s in steps), "```", ""]
    lines += [f"Time: {sum(total.values()) / 60:.1f} min in all (record {total['record']:.0f} s, train "
              f"{total['train']:.0f} s, eval {total['eval']:.0f} s), as each step took when it ran.", ""]
    return "\n".join(lines)


# ---- SVG ------------------------------------------------------------------------------------------
PANEL_W, PANEL_H, MARGIN_L, MARGIN_T, MARGIN_B, GAP = 250, 230, 60, 34, 40, 56
LEGEND_H = 34


def heldout_svg(p: Plan, counts: Counts) -> str:
    panels = (POOLED, *p.held_out)
    levels = p.budget.heldout_demos
    width = MARGIN_L + len(panels) * (PANEL_W + GAP)
    height = MARGIN_T + PANEL_H + MARGIN_B + LEGEND_H
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
             '<title>Success against demonstrations of the held-out compositions (Wilson 95% intervals)</title>',
             f'<rect width="{width}" height="{height}" fill="white"/>']
    for i, panel in enumerate(panels):
        x0 = MARGIN_L + i * (PANEL_W + GAP)
        parts += _panel(x0, panel, levels, p, counts)
    legend_y = MARGIN_T + PANEL_H + MARGIN_B + 12
    for j, system in enumerate(SYSTEMS):
        lx = MARGIN_L + j * 170
        parts.append(f'<line x1="{lx}" y1="{legend_y}" x2="{lx + 22}" y2="{legend_y}" stroke="{COLOURS[system]}" '
                     'stroke-width="2.5"/>')
        parts.append(f'<text x="{lx + 28}" y="{legend_y + 4}">{escape(system)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _panel(x0: float, panel: str, levels, p: Plan, counts: Counts) -> list[str]:
    y0, plot_w = MARGIN_T, PANEL_W
    y_of = lambda rate: y0 + PANEL_H * (1 - rate)  # noqa: E731
    step = plot_w / max(len(levels), 1)
    x_of = lambda i: x0 + step * (i + 0.5)  # noqa: E731
    out = [f'<g class="panel" data-panel={quoteattr(panel)}>',
           f'<text x="{x0 + plot_w / 2}" y="{y0 - 12}" text-anchor="middle" font-weight="bold">{escape(panel)}</text>',
           f'<rect x="{x0}" y="{y0}" width="{plot_w}" height="{PANEL_H}" fill="none" stroke="#888"/>']
    out.append(f'<text transform="translate({x0 - 40},{y0 + PANEL_H / 2}) rotate(-90)" text-anchor="middle">'
               'success</text>')
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        y = y_of(tick)
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + plot_w}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end">{100 * tick:.0f}%</text>')
    for i, k in enumerate(levels):
        out.append(f'<text x="{x_of(i):.1f}" y="{y0 + PANEL_H + 16}" text-anchor="middle">{k}</text>')
    out.append(f'<text x="{x0 + plot_w / 2}" y="{y0 + PANEL_H + 32}" text-anchor="middle">demonstrations of '
               f'{"each held-out task" if panel == POOLED else escape(panel)}</text>')
    for j, system in enumerate(SYSTEMS):
        offset = (j - 1) * 9  # side by side, so equal values do not hide each other
        colour = COLOURS[system]
        points, marks = [], []
        for i, k in enumerate(levels):
            c = pooled(counts, "held-out", p.held_out, system, k) if panel == POOLED else \
                counts[("held-out", panel, system, k)]
            rate = c.successes / c.episodes
            lo, hi = wilson_interval(c.successes, c.episodes)
            x = x_of(i) + offset
            points.append(f"{x:.1f},{y_of(rate):.1f}")
            marks.append(f'<g class="point" data-demos="{k}" data-successes="{c.successes}" '
                         f'data-episodes="{c.episodes}" data-ran="{str(c.ran).lower()}">'
                         f'<line x1="{x:.1f}" y1="{y_of(lo):.1f}" x2="{x:.1f}" y2="{y_of(hi):.1f}" '
                         f'stroke="{colour}" stroke-width="1.5"/>'
                         f'<circle cx="{x:.1f}" cy="{y_of(rate):.1f}" r="3.5" fill="{colour if c.ran else "white"}" '
                         f'stroke="{colour}"/><title>{escape(system)}, {k} demos: {c.successes}/{c.episodes} '
                         f'(95% {100 * lo:.0f}-{100 * hi:.0f}%)</title></g>')
        out.append(f'<g class="series" data-series={quoteattr(system)}>')
        out.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out += marks
        out.append("</g>")
    out.append("</g>")
    return out
