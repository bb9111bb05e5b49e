"""`python main.py tasks`: the task suite as a table."""
from __future__ import annotations

from recorders.task_suite import TASKS, make_instance


def print_tasks() -> int:
    print(f"{'task':<11} {'memory':<7} {'training':<9} example (seed 0, train split)")
    for t in TASKS.values():
        example = make_instance(t.id, 0).instruction
        print(f"{t.id:<11} {'yes' if t.needs_memory else 'no':<7} {'held out' if t.held_out else 'yes':<9} {example}")
    return 0
