"""One line per goal, the same in every benchmark: ``goal <what>  measured <value>  MET``."""

from __future__ import annotations


def goal_line(goal: str, measured: str, met: bool | None) -> str:
    """The line a benchmark prints for one goal; `met` None: not measured in this run."""
    verdict = "NOT MEASURED" if met is None else "MET" if met else "MISSED"
    return f"goal {goal:<58s}  measured {measured:<24s}  {verdict}"


def print_goal(goal: str, measured: str, met: bool | None) -> bool | None:
    """Print :func:`goal_line`; returns `met`."""
    print(goal_line(goal, measured, met))
    return met
