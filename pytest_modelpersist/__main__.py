"""``python -m pytest_modelpersist``: command-line helpers.

``runtime create LABEL --tensorflow 2.15.1 [--dir DIR]`` makes a virtualenv with that
TensorFlow for ``persist_runtimes`` (README, Runtimes) and prints the ini line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the helper; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m pytest_modelpersist")
    commands = parser.add_subparsers(dest="command", required=True)
    runtime = commands.add_parser("runtime", help="other interpreters as loaders")
    actions = runtime.add_subparsers(dest="action", required=True)
    create = actions.add_parser(
        "create", help="make a virtualenv with a given TensorFlow and print its "
                       "persist_runtimes line (a venv already there is reused)")
    create.add_argument("label", help="the loader's name, as in [savedmodel-LABEL]")
    create.add_argument("requirements", nargs="*", metavar="REQUIREMENT",
                        help="pip requirements, e.g. tensorflow-cpu==2.15.1")
    create.add_argument("--tensorflow", metavar="VERSION",
                        help="tensorflow-cpu==VERSION (with numpy<2 below 2.16)")
    create.add_argument("--dir", type=Path, default=None,
                        help="where the venv goes (default .persist-runtimes/LABEL)")
    create.add_argument("--python", default=sys.executable,
                        help="the interpreter the venv is made from (default: this one); "
                             "TensorFlow wheels exist for some Python versions only")
    create.add_argument("--dry-run", action="store_true", help="print the steps only")
    args = parser.parse_args(argv)
    from .loaders.runtime_create import create_runtime

    return create_runtime(args.label, args.requirements, tensorflow=args.tensorflow,
                          directory=args.dir, base_python=args.python, dry_run=args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
