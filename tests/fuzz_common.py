"""What the fuzz child processes (tests/fuzz_*_child.py) share."""

from __future__ import annotations

import sys
import traceback
from collections import Counter
from collections.abc import Callable


def run_property(check: Callable[[], None], seen: Counter[str]) -> None:
    """Run a hypothesis property; a violation is printed to stderr and counted as "other"
    (the parent test fails on it) instead of ending the child with a traceback."""
    try:
        check()
    except Exception as exc:
        for sub in getattr(exc, "exceptions", [exc]):
            print("property violated:", "".join(traceback.format_exception(sub))[:4000],
                  file=sys.stderr)
        seen["other"] += 1
