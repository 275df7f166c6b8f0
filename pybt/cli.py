"""The ``pybt`` command line: ``pybt demo``, and more subcommands as they come."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pybt.errors import PyBTError


def _demo(args: argparse.Namespace) -> int:
    from pybt.demo import run_demo

    run_demo(population=args.population, epochs=args.epochs, seed=args.seed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pybt", description="Population Based Training.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="PBT of a Keras MLP on scikit-learn's bundled digits")
    demo.add_argument("--population", type=int, default=8, help="members (default 8)")
    demo.add_argument("--epochs", type=int, default=20, help="epochs per member (default 20)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except PyBTError as error:
        print(f"pybt: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
